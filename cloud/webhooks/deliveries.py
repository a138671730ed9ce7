"""The delivery log (deliveries with their attempts) and replay of a finished delivery.

Replay puts a failed or succeeded delivery back to pending, due now, with a fresh attempt
budget and the same message (so the same `webhook-id`: a receiver that already has it can drop
it). Its earlier attempts stay in the log.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.errors import DeliveryNotReplayable, WebhookDeliveryNotFound
from cloud.webhooks.models import DeliveryState, WebhookAttempt, WebhookDelivery, WebhookMessage

MAX_LOGGED_ATTEMPTS = 50  # the newest ones, per delivery, in a listing


@dataclass(frozen=True, slots=True)
class DeliveryEntry:
    """A delivery, its message's type and its newest attempts (oldest first)."""

    delivery: WebhookDelivery
    event_type: str
    attempts: Sequence[WebhookAttempt]


async def list_deliveries(
    *,
    session: AsyncSession,
    endpoint_id: int | None = None,
    state: DeliveryState | None = None,
    limit: int = 100,
) -> list[DeliveryEntry]:
    """The newest `limit` deliveries (filtered by endpoint and state), newest first."""
    query = (
        select(WebhookDelivery, WebhookMessage.event_type)
        .join(WebhookMessage, WebhookMessage.id == WebhookDelivery.message_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if state is not None:
        query = query.where(WebhookDelivery.state == state.value)
    rows = (await session.execute(query)).all()
    logs = await _attempts(session, [row[0].id for row in rows])
    return [
        DeliveryEntry(delivery=delivery, event_type=kind, attempts=logs.get(delivery.id, []))
        for delivery, kind in rows
    ]


async def _attempts(
    session: AsyncSession, delivery_ids: Sequence[int]
) -> dict[int, list[WebhookAttempt]]:
    if not delivery_ids:
        return {}
    found: dict[int, list[WebhookAttempt]] = {}
    rows = await session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(delivery_ids))
        .order_by(WebhookAttempt.id)
    )
    for row in rows:
        found.setdefault(row.delivery_id, []).append(row)
    return {key: value[-MAX_LOGGED_ATTEMPTS:] for key, value in found.items()}


async def replay_delivery(
    *, session: AsyncSession, delivery_id: int, now: datetime | None = None
) -> WebhookDelivery:
    """Send a finished delivery again (same message id); 409 while it is still pending."""
    row = await session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if row is None:
        raise WebhookDeliveryNotFound(
            f"no webhook delivery {delivery_id}", detail={"delivery_id": delivery_id}
        )
    if row.state == DeliveryState.PENDING.value:
        raise DeliveryNotReplayable(
            f"delivery {delivery_id} is still pending (attempt {row.attempts} made): only a "
            "failed or succeeded delivery can be replayed",
            detail={"delivery_id": delivery_id, "state": row.state},
        )
    row.state = DeliveryState.PENDING.value
    row.attempts = 0
    row.next_attempt_at = now or datetime.now(UTC)
    row.lease_until = None
    row.delivered_at = None
    return row
