"""Gateway batches through the ingest log: appended by the collector, stored once by sinks."""

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from cloud.bus.sink import consumer_lag
from cloud.ingest.models import ReceivedBatch, StoredEvent
from tests.cloud.bus.conftest import BusApp
from tests.cloud.conftest import GATEWAY, counts, incident_kinds, make_events, post, register
from tests.support.waiting import eventually


async def stored_seqs(bus_app: BusApp, gateway_id: str = GATEWAY) -> list[int]:
    async with bus_app.db.transaction() as session:
        rows = await session.scalars(
            select(StoredEvent.seq)
            .where(StoredEvent.gateway_id == gateway_id)
            .order_by(StoredEvent.seq)
        )
        return list(rows)


async def test_a_batch_is_queued_then_stored_once(
    bus_app: BusApp, gateway_key: Ed25519PrivateKey
) -> None:
    events = make_events(1, 10)

    response = await post(bus_app.client, events, gateway_key)

    assert response.status_code == 202
    assert response.json() == {
        "gateway_id": GATEWAY,
        "first_seq": 1,
        "last_seq": 10,
        "stored": 0,
        "duplicates": 0,
        "queued": True,
    }
    assert await counts(bus_app.db) == {"batches": 0, "events": 0, "incidents": 0}
    bus_app.start_sink("a")
    await bus_app.wait_events(10)
    assert await stored_seqs(bus_app) == list(range(1, 11))
    assert await counts(bus_app.db) == {"batches": 1, "events": 10, "incidents": 0}


async def _count_is(bus_app: BusApp, expected: int) -> bool:
    return (await counts(bus_app.db))["events"] == expected


async def batch_order(bus_app: BusApp) -> list[tuple[str, int]]:
    """The stored batches' (gateway, first_seq) in the order they were stored."""
    async with bus_app.db.transaction() as session:
        rows = await session.execute(
            select(ReceivedBatch.gateway_id, ReceivedBatch.first_seq).order_by(ReceivedBatch.id)
        )
        return [(gateway_id, first_seq) for gateway_id, first_seq in rows]


async def test_a_batch_sent_again_and_an_overlapping_one_store_each_event_once(
    bus_app: BusApp, gateway_key: Ed25519PrivateKey
) -> None:
    events = make_events(1, 15)
    first = [await post(bus_app.client, events[:10], gateway_key) for _ in range(3)]
    overlapping = await post(bus_app.client, events[5:], gateway_key)  # 6..15

    assert [r.status_code for r in first] == [202, 202, 202]
    assert overlapping.status_code == 202
    bus_app.start_sink("a")
    await bus_app.wait_events(15)
    await eventually(lambda: _drained(bus_app), what="the log drained")
    assert await stored_seqs(bus_app) == list(range(1, 16))
    assert await batch_order(bus_app) == [(GATEWAY, 1), (GATEWAY, 6)]
    # The re-sends were dropped by the stream's duplicate window: only the overlap is a duplicate.
    assert await incident_kinds(bus_app.db) == ["duplicate_delivery"]


async def _drained(bus_app: BusApp) -> bool:
    bus_app.check_sinks()
    lags = [await consumer_lag(bus_app.bus, p) for p in range(bus_app.bus.config.partitions)]
    return sum(lags) == 0


async def test_two_sinks_store_every_gateways_batches_in_order(
    bus_app: BusApp, gateway_key: Ed25519PrivateKey
) -> None:
    gateways = [GATEWAY, "site-042-gw2", "site-042-gw3"]
    for gateway_id in gateways[1:]:
        await register(bus_app.db, gateway_id, gateway_key)
    bus_app.start_sink("a")
    bus_app.start_sink("b")
    for gateway_id in gateways:
        chain = make_events(1, 60, gateway_id=gateway_id)
        for start in range(0, 60, 5):
            response = await post(bus_app.client, chain[start : start + 5], gateway_key)
            assert response.status_code == 202, response.text

    await bus_app.wait_events(180)

    order = await batch_order(bus_app)
    for gateway_id in gateways:
        assert [seq for gw, seq in order if gw == gateway_id] == list(range(1, 60, 5))
        assert await stored_seqs(bus_app, gateway_id) == list(range(1, 61))
    assert await incident_kinds(bus_app.db) == []
    assert all(sink.handled for sink in bus_app.sinks), "both sinks stored batches"
