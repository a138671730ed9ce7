"""emit: the message and its deliveries commit or roll back with the caller's change."""

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from cloud.db import Database
from cloud.webhooks.endpoints import disable_endpoint
from cloud.webhooks.models import WebhookDelivery, WebhookMessage
from cloud.webhooks.outbox import emit, emit_async, emit_many
from cloud.webhooks.types import EventType
from tests.cloud.webhooks.conftest import T0, add_endpoint, deliveries

URL = "http://127.0.0.1:9/hooks"


async def _count(db: Database) -> tuple[int, int]:
    async with db.transaction() as session:
        messages = await session.scalar(select(func.count()).select_from(WebhookMessage))
        sent = await session.scalar(select(func.count()).select_from(WebhookDelivery))
    return messages or 0, sent or 0


async def test_nothing_is_written_when_no_endpoint_wants_the_type(database: Database) -> None:
    await add_endpoint(database, URL, EventType.INVOICE_DRAFTED)

    message = await database.run_write(lambda s: emit(s, "gateway.online", {"gateway_id": "g"}))

    assert message is None
    assert await _count(database) == (0, 0)


async def test_one_pending_delivery_per_enabled_subscribed_endpoint(database: Database) -> None:
    wants, _ = await add_endpoint(database, URL, EventType.GATEWAY_OFFLINE)
    also, _ = await add_endpoint(database, URL)  # every type
    off, _ = await add_endpoint(database, URL, EventType.GATEWAY_OFFLINE)
    await add_endpoint(database, URL, EventType.INVOICE_FINALIZED)
    async with database.transaction(write=True) as session:
        await disable_endpoint(session=session, endpoint_id=off, reason="test")

    message = await database.run_write(
        lambda s: emit(s, "gateway.offline", {"gateway_id": "g", "since": T0}, at=T0)
    )

    rows = await deliveries(database)
    assert [(row.endpoint_id, row.state, row.attempts) for row in rows] == [
        (wants, "pending", 0),
        (also, "pending", 0),
    ]
    assert {row.message_id for row in rows} == {message}
    assert all(row.next_attempt_at == T0 for row in rows)


async def test_a_rolled_back_change_takes_its_message_with_it(database: Database) -> None:
    await add_endpoint(database, URL)

    def change_then_fail(session: object) -> None:
        emit(session, "incident.opened", {"incident_id": 1})  # type: ignore[arg-type]
        raise RuntimeError("the caller's change failed")

    with pytest.raises(RuntimeError, match="caller's change"):
        await database.run_write(change_then_fail)
    with pytest.raises(RuntimeError, match="caller's change"):
        async with database.transaction(write=True) as session:
            await emit_async(session, "incident.opened", {"incident_id": 2})
            raise RuntimeError("the caller's change failed")

    assert await _count(database) == (0, 0)


async def test_emit_async_commits_with_the_caller(database: Database) -> None:
    await add_endpoint(database, URL)

    async with database.transaction(write=True) as session:
        message = await emit_async(
            session,
            EventType.USAGE_THRESHOLD_REACHED,
            {"amount": Decimal("10.50"), "period_start": date(2026, 12, 1)},
        )

    async with database.transaction() as session:
        stored = await session.get(WebhookMessage, message)
    assert stored is not None and stored.event_type == "usage.threshold_reached"
    assert stored.payload == {"amount": "10.50", "period_start": "2026-12-01"}


async def test_unknown_types_and_data_that_is_not_json_are_bugs(database: Database) -> None:
    await add_endpoint(database, URL)

    with pytest.raises(ValueError, match=r"incident\.exploded"):
        await database.run_write(lambda s: emit(s, "incident.exploded", {}))
    with pytest.raises(TypeError, match="must be JSON"):
        await database.run_write(lambda s: emit(s, "incident.opened", {"x": object()}))
    assert await _count(database) == (0, 0)


async def test_emit_many_queues_a_sweep_s_events_in_two_inserts(database: Database) -> None:
    first, _ = await add_endpoint(database, URL, EventType.INCIDENT_OPENED)
    second, _ = await add_endpoint(
        database, URL, EventType.INCIDENT_OPENED, EventType.GATEWAY_OFFLINE
    )
    items = [{"incident_id": n} for n in range(250)]

    ids = await database.run_write(lambda s: emit_many(s, "incident.opened", items, at=T0))
    nobody = await database.run_write(lambda s: emit_many(s, "gateway.online", items, at=T0))

    assert len(set(ids)) == 250 and nobody == []
    async with database.transaction() as session:
        payloads = dict(
            (await session.execute(select(WebhookMessage.id, WebhookMessage.payload))).all()
        )
    assert [payloads[i] for i in ids] == items
    rows = await deliveries(database)
    assert len(rows) == 500
    assert {(row.endpoint_id, row.message_id) for row in rows} == {
        (endpoint_id, i) for i in ids for endpoint_id in (first, second)
    }
