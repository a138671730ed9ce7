"""Gateway batches through the ingest log: appended by the collector, stored once by sinks."""

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from cloud.ingest.models import StoredEvent
from tests.cloud.bus.conftest import BusApp
from tests.cloud.conftest import GATEWAY, counts, make_events, post


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
