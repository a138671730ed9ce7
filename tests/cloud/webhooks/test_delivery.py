"""Delivery to REAL receivers: Starlette apps under uvicorn on loopback ports that verify every
signature with `standardwebhooks.Webhook.verify`. Nothing is mocked. The tests drive
`deliver_due` with an explicit `now` (the backoff is never slept through)."""

import asyncio
from dataclasses import replace
from datetime import timedelta

import httpx

from cloud.db import Database
from cloud.schema import migrate
from cloud.webhooks.delivery import claim_due, deliver_due, send_all
from cloud.webhooks.endpoints import enable_endpoint
from cloud.webhooks.models import DeliveryState
from cloud.webhooks.types import EventType
from tests.cloud.webhooks.conftest import (
    FAST,
    T0,
    add_endpoint,
    deliveries,
    emit_many,
    endpoint,
    run_until_settled,
)
from tests.cloud.webhooks.receiver import Receiver

SECOND = timedelta(seconds=1)
MOMENT = timedelta(minutes=1)  # a generous bound on how long one run takes (not a speed check)


async def test_a_healthy_receiver_gets_every_event_signed_once(database: Database) -> None:
    async with Receiver() as receiver:
        endpoint_id, receiver.secret = await add_endpoint(database, receiver.url)
        messages = await emit_many(database, 5)

        report = await deliver_due(database, T0, policy=FAST)

    assert (report.sent, report.succeeded, report.retrying, report.failed) == (5, 5, 0, 0)
    assert receiver.refused == []
    assert sorted(receiver.ids()) == sorted(messages)
    first = next(item for item in receiver.received if item.webhook_id == messages[0])
    assert first.body["type"] == "incident.opened"
    assert first.body["timestamp"] == "2026-12-01T09:00:00.000Z"
    assert first.body["data"] == {"incident_id": 1, "kind": "silent_device", "device": "d-0"}
    rows = await deliveries(database, endpoint_id)
    assert {row.state for row in rows} == {DeliveryState.SUCCEEDED.value}
    # delivered at the run's clock: `now` plus the moments the run took
    assert all(row.last_status == 200 and row.delivered_at for row in rows)
    assert all(T0 <= (row.delivered_at or T0) < T0 + MOMENT for row in rows)
    # Nothing is due any more: a second run sends nothing.
    assert (await deliver_due(database, T0 + timedelta(hours=1), policy=FAST)).sent == 0


async def test_an_endpoint_gets_only_the_types_it_subscribed_to(database: Database) -> None:
    async with Receiver() as incidents, Receiver() as gateways:
        _, incidents.secret = await add_endpoint(database, incidents.url, EventType.INCIDENT_OPENED)
        _, gateways.secret = await add_endpoint(database, gateways.url, EventType.GATEWAY_OFFLINE)
        messages = await emit_many(database, 2)

        await deliver_due(database, T0, policy=FAST)

    assert sorted(incidents.ids()) == sorted(messages)
    assert gateways.received == [] and gateways.refused == []


async def test_a_receiver_down_for_a_while_gets_everything_after(database: Database) -> None:
    receiver = Receiver()  # its port is free: nothing listens yet
    endpoint_id, receiver.secret = await add_endpoint(database, receiver.url)
    early = await emit_many(database, 3)

    down = await deliver_due(database, T0, policy=FAST)
    assert (down.sent, down.retrying) == (3, 3)
    rows = await deliveries(database, endpoint_id)
    assert all(row.state == "pending" and row.attempts == 1 for row in rows)
    assert all(T0 + 5 * SECOND <= row.next_attempt_at < T0 + 5 * SECOND + MOMENT for row in rows)
    assert all("ConnectError" in (row.last_error or "") for row in rows)

    # Not due yet: nothing is sent before the backoff has passed.
    assert (await deliver_due(database, T0 + timedelta(seconds=4), policy=FAST)).sent == 0
    async with receiver:
        late = await emit_many(database, 2, at=T0 + timedelta(seconds=5))
        up = await deliver_due(database, T0 + 5 * SECOND + MOMENT, policy=FAST)

    assert (up.sent, up.succeeded) == (5, 5)
    assert sorted(receiver.ids()) == sorted(early + late)
    assert receiver.refused == []
    assert (await endpoint(database, endpoint_id)).consecutive_failures == 0


async def test_a_receiver_answering_500_is_retried_then_failed_and_disabled(
    database: Database,
) -> None:
    """The stated policy end to end: 10 attempts of 3 quick tries over ~29 h, then the
    delivery is failed and the endpoint, failing > 24 h and > 10 times, disabled."""
    async with Receiver(failing=True) as receiver:
        endpoint_id, receiver.secret = await add_endpoint(database, receiver.url)
        await emit_many(database, 2)

        reports = await run_until_settled(database)

    assert len(reports) == FAST.max_attempts
    assert reports[-1].failed == 2 and reports[-1].disabled_endpoints == [endpoint_id]
    assert receiver.received == [] and receiver.refused == []  # signed right, answered 500
    stored = await endpoint(database, endpoint_id)
    assert not stored.enabled
    assert stored.disabled_reason is not None and "HTTP 500" in stored.disabled_reason
    assert stored.disabled_at is not None and stored.disabled_at - T0 > timedelta(hours=24)
    for row in await deliveries(database, endpoint_id):
        assert (row.state, row.attempts, row.last_status) == ("failed", 10, 500)
        assert "on purpose" in (row.last_response or "")


async def test_a_disabled_endpoint_s_deliveries_wait_and_go_once_enabled(
    database: Database,
) -> None:
    quick_to_disable = replace(FAST, disable_after_failures=3, disable_after=timedelta(minutes=1))
    async with Receiver(failing=True) as receiver:
        endpoint_id, receiver.secret = await add_endpoint(database, receiver.url)
        messages = await emit_many(database, 3)

        reports = await run_until_settled(database, quick_to_disable)
        stored = await endpoint(database, endpoint_id)
        assert not stored.enabled and stored.disabled_reason
        assert reports[-1].disabled_endpoints == [endpoint_id]
        waiting = await deliveries(database, endpoint_id)
        assert {row.state for row in waiting} == {"pending"}

        # Disabled: far past every backoff, nothing is claimed.
        later = T0 + timedelta(days=3)
        assert (await deliver_due(database, later, policy=quick_to_disable)).sent == 0

        receiver.failing = False
        async with database.transaction(write=True) as session:
            await enable_endpoint(session=session, endpoint_id=endpoint_id, now=later)
        report = await deliver_due(database, later, policy=quick_to_disable)

    assert report.succeeded == 3
    assert sorted(receiver.ids()) == sorted(messages)
    assert (await endpoint(database, endpoint_id)).consecutive_failures == 0


async def test_a_collector_restart_with_deliveries_pending_delivers_them(db_url: str) -> None:
    """Collector 1 claims and sends, then dies before recording (its Database closed); collector
    2 (a new Database) takes the leased deliveries once the lease passes. Every event arrives;
    the duplicates carry the same webhook-id."""
    async with Receiver() as receiver:
        async with Database(db_url) as first:
            await migrate(first.engine)
            endpoint_id, receiver.secret = await add_endpoint(first, receiver.url)
            messages = await emit_many(first, 4)
            claimed = await first.run_write(lambda s: claim_due(s, now=T0, policy=FAST))
            async with httpx.AsyncClient() as http:
                await send_all(http, claimed[:2], FAST)  # then the process dies

        async with Database(db_url) as second:
            within_lease = await deliver_due(second, T0 + timedelta(seconds=30), policy=FAST)
            assert within_lease.sent == 0  # collector 1's lease still holds them
            after = await deliver_due(second, T0 + FAST.lease, policy=FAST)
            rows = await deliveries(second, endpoint_id)

    assert after.succeeded == 4
    assert {row.state for row in rows} == {"succeeded"}
    assert sorted(set(receiver.ids())) == sorted(messages)
    assert len(receiver.ids()) == 6  # two were sent twice, with the same id
    assert receiver.refused == []


async def test_two_collectors_running_at_once_send_each_delivery_once(db_url: str) -> None:
    """Two Databases (two collectors) run deliver_due together in rounds of 10: the claims'
    leases (and SKIP LOCKED on PostgreSQL) hand each delivery to one of them."""
    small_rounds = replace(FAST, batch_size=10)
    async with Receiver() as receiver, Database(db_url) as one, Database(db_url) as two:
        await migrate(one.engine)
        _, receiver.secret = await add_endpoint(one, receiver.url)
        messages = await emit_many(one, 60)

        reports = await asyncio.gather(
            deliver_due(one, T0, policy=small_rounds), deliver_due(two, T0, policy=small_rounds)
        )

    assert sum(report.succeeded for report in reports) == 60
    assert sorted(receiver.ids()) == sorted(messages)  # each once: no duplicate
