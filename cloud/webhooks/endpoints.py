"""Webhook endpoints: register a receiver for some event types, read, enable, disable, delete.

A new endpoint gets a secret `whsec_` + base64 of 32 random bytes (the Standard Webhooks
format): answered once by `create_endpoint`, never by a read. Disabling stops its deliveries
from being claimed (they wait, and new events are not queued for it); enabling clears the
failure count and makes its waiting deliveries due at once.
"""

import base64
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.errors import WebhookEndpointNotFound
from cloud.webhooks.models import DeliveryState, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from cloud.webhooks.types import EventType

SECRET_PREFIX = "whsec_"


@dataclass(frozen=True, slots=True)
class NewEndpoint:
    """A registered endpoint and its secret, shown only now."""

    endpoint: WebhookEndpoint
    secret: str


def new_endpoint_secret() -> str:
    """A fresh signing secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


async def create_endpoint(
    *,
    session: AsyncSession,
    url: str,
    event_types: list[EventType],
    description: str = "",
    now: datetime | None = None,
) -> NewEndpoint:
    """Register `url` for `event_types` (enabled); the row and its secret."""
    secret = new_endpoint_secret()
    row = WebhookEndpoint(
        url=url,
        description=description,
        event_types=sorted({kind.value for kind in event_types}),
        secret=secret,
        enabled=True,
        consecutive_failures=0,
        created_at=now or datetime.now(UTC),
    )
    session.add(row)
    await session.flush()
    return NewEndpoint(endpoint=row, secret=secret)


async def list_endpoints(*, session: AsyncSession) -> list[WebhookEndpoint]:
    """Every endpoint, oldest first."""
    return list(await session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


async def get_endpoint(
    *, session: AsyncSession, endpoint_id: int, lock: bool = False
) -> WebhookEndpoint:
    """The endpoint `endpoint_id` (its row locked if `lock`), or WebhookEndpointNotFound."""
    row = await session.get(WebhookEndpoint, endpoint_id, with_for_update=lock)
    if row is None:
        raise WebhookEndpointNotFound(
            f"no webhook endpoint {endpoint_id}", detail={"endpoint_id": endpoint_id}
        )
    return row


async def disable_endpoint(
    *, session: AsyncSession, endpoint_id: int, reason: str, now: datetime | None = None
) -> WebhookEndpoint:
    """Stop delivering to the endpoint (its pending deliveries wait); the row."""
    row = await get_endpoint(session=session, endpoint_id=endpoint_id)
    if row.enabled:
        row.enabled = False
        row.disabled_at = now or datetime.now(UTC)
        row.disabled_reason = reason
    return row


async def enable_endpoint(
    *, session: AsyncSession, endpoint_id: int, now: datetime | None = None
) -> WebhookEndpoint:
    """Deliver to the endpoint again: failures forgotten, its waiting deliveries due now."""
    row = await get_endpoint(session=session, endpoint_id=endpoint_id)
    moment = now or datetime.now(UTC)
    row.enabled = True
    row.disabled_at = None
    row.disabled_reason = None
    row.consecutive_failures = 0
    row.failing_since = None
    await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.state == DeliveryState.PENDING.value,
            WebhookDelivery.next_attempt_at > moment,
        )
        .values(next_attempt_at=moment)
    )
    return row


async def delete_endpoint(*, session: AsyncSession, endpoint_id: int) -> int:
    """Delete the endpoint with its deliveries and their log; how many deliveries went."""
    # The endpoint's row first: delivery records lock endpoints before deliveries too.
    await get_endpoint(session=session, endpoint_id=endpoint_id, lock=True)
    deliveries = select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint_id)
    await session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(deliveries)))
    gone = await session.execute(
        delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    )
    await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))
    return int(gone.rowcount)  # type: ignore[attr-defined]
