"""`emit`: the transactional outbox. An event becomes a message and one pending delivery per
enabled endpoint subscribed to its type, written in the caller's own transaction: they commit
with the change that caused the event (an incident, an invoice) or roll back with it, so no
event is lost between the caller's commit and the send, and none is sent for a change undone.

Sending is delivery.py's job (a scheduler job); emit does no I/O besides these inserts.
"""

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, cast

import orjson
from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from cloud.webhooks.message_ids import new_message_id
from cloud.webhooks.models import DeliveryState, WebhookDelivery, WebhookEndpoint, WebhookMessage
from cloud.webhooks.types import EventType

# Core statements on the tables (not ORM-enabled ones): callers emit inside their batch and sweep
# transactions, and the ORM's bulk path cost 3x as much per message (bench/webhooks.py).
_ENDPOINTS = cast(Table, WebhookEndpoint.__table__).c
_SUBSCRIBERS = select(_ENDPOINTS.id, _ENDPOINTS.event_types).where(_ENDPOINTS.enabled)
_INSERT_MESSAGE = insert(cast(Table, WebhookMessage.__table__))
_INSERT_DELIVERY = insert(cast(Table, WebhookDelivery.__table__))


def emit(
    session: Session, event_type: str, data: Mapping[str, Any], *, at: datetime | None = None
) -> str | None:
    """Queue `data` as an `event_type` event for every endpoint that wants it; the message id.

    None (and nothing written) when no enabled endpoint subscribes to the type. `data` must be
    JSON: Decimal and dates are written as strings. An unknown type is a ValueError (a bug).
    """
    kind = EventType(event_type)
    at = at or datetime.now(UTC)
    wanted = _subscribers(session, kind)
    if not wanted:
        return None
    message_id = new_message_id(at)
    message = {
        "id": message_id,
        "event_type": kind.value,
        "payload": as_json(data),
        "created_at": at,
    }
    session.execute(_INSERT_MESSAGE, message)
    session.execute(
        _INSERT_DELIVERY, [_pending(message_id, endpoint_id, at) for endpoint_id in wanted]
    )
    return message_id


def emit_many(
    session: Session,
    event_type: str,
    items: Iterable[Mapping[str, Any]],
    *,
    at: datetime | None = None,
) -> list[str]:
    """`emit` for many events of one type (a sweep's openings): one query for the endpoints and
    two bulk inserts, whatever the count; the message ids in item order ([] when nobody wants
    the type, and then `items` is not even read)."""
    kind = EventType(event_type)
    at = at or datetime.now(UTC)
    wanted = _subscribers(session, kind)
    if not wanted:
        return []
    payloads = [as_json(data) for data in items]
    ids = [new_message_id(at) for _ in payloads]
    if not ids:
        return []
    session.execute(
        _INSERT_MESSAGE,
        [
            {"id": message_id, "event_type": kind.value, "payload": payload, "created_at": at}
            for message_id, payload in zip(ids, payloads, strict=True)
        ],
    )
    session.execute(
        _INSERT_DELIVERY,
        [_pending(message_id, endpoint_id, at) for message_id in ids for endpoint_id in wanted],
    )
    return ids


def _subscribers(session: Session, kind: EventType) -> list[int]:
    """The enabled endpoints subscribed to `kind`, by id."""
    return sorted(row.id for row in session.execute(_SUBSCRIBERS) if kind.value in row.event_types)


async def emit_async(
    session: AsyncSession,
    event_type: str,
    data: Mapping[str, Any],
    *,
    at: datetime | None = None,
) -> str | None:
    """`emit` in an async session's transaction (the same rows, the same commit)."""
    return await session.run_sync(lambda sync: emit(sync, event_type, data, at=at))


def as_json(data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` as plain JSON values (Decimal and dates as strings); TypeError for anything else."""
    try:
        text = orjson.dumps(data, default=_json_default, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError as exc:
        raise TypeError(f"webhook data must be JSON: {exc}") from exc
    parsed: dict[str, Any] = orjson.loads(text)
    return parsed


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"webhook data must be JSON, not {type(value).__name__}")


def _pending(message_id: str, endpoint_id: int, at: datetime) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "endpoint_id": endpoint_id,
        "state": DeliveryState.PENDING.value,
        "attempts": 0,
        "next_attempt_at": at,
        "lease_until": None,
    }
