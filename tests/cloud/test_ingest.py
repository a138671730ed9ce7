"""POST /v1/batches accepts signed batches, stores each event once and answers idempotently."""

import gzip
from decimal import Decimal

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from cloud.db import Database
from cloud.ingest.models import ReceivedBatch, StoredEvent
from tests.cloud.conftest import GATEWAY, JSON, READER, counts, incident_kinds, make_events, post
from tests.support.batches import batch_body, chain_events, draft


async def test_signed_batch_is_stored_and_listed_exactly(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    events = make_events(1, 10)

    response = await post(client, events, gateway_key)

    assert response.status_code == 200
    assert response.json() == {
        "gateway_id": GATEWAY,
        "first_seq": 1,
        "last_seq": 10,
        "stored": 10,
        "duplicates": 0,
    }
    assert await counts(db) == {"batches": 1, "events": 10, "incidents": 0}
    listed = (await client.get("/v1/events", headers=READER, params={"gateway_id": GATEWAY})).json()
    assert listed == {"events": [event.to_wire() for event in events], "next_cursor": None}


async def test_batch_header_is_kept_for_re_verification(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    events = make_events(1, 5)
    await post(client, events, gateway_key)

    async with db.transaction() as session:
        stored = (await session.scalars(select(ReceivedBatch))).one()
        batch_ids = set(await session.scalars(select(StoredEvent.batch_id)))
    assert (stored.gateway_id, stored.first_seq, stored.last_seq) == (GATEWAY, 1, 5)
    assert (stored.prev_hash, stored.last_hash) == (events[0].prev_hash, events[-1].hash)
    assert stored.event_count == 5 and stored.signature
    assert stored.received_at.utcoffset() is not None
    assert batch_ids == {stored.id}


async def test_duplicate_batch_is_acknowledged_and_stored_once(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    events = make_events(1, 10)
    await post(client, events, gateway_key)

    response = await post(client, events, gateway_key)

    assert response.status_code == 200
    assert response.json()["stored"] == 0 and response.json()["duplicates"] == 10
    assert await counts(db) == {"batches": 1, "events": 10, "incidents": 1}
    assert await incident_kinds(db) == ["duplicate_delivery"]


async def test_overlapping_batch_stores_only_the_new_half(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    chain = make_events(1, 15)
    await post(client, chain[:10], gateway_key)

    response = await post(client, chain[5:], gateway_key)

    assert response.status_code == 200
    assert response.json() == {
        "gateway_id": GATEWAY,
        "first_seq": 6,
        "last_seq": 15,
        "stored": 5,
        "duplicates": 5,
    }
    assert await counts(db) == {"batches": 2, "events": 15, "incidents": 1}
    listed = (await client.get("/v1/events", headers=READER, params={"limit": 1000})).json()[
        "events"
    ]
    assert [event["hash"] for event in listed] == [event.hash for event in chain]


async def test_gzip_body_is_accepted(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    body = gzip.compress(batch_body(make_events(1, 20), gateway_key))

    response = await client.post(
        "/v1/batches", content=body, headers={**JSON, "Content-Encoding": "gzip"}
    )

    assert response.status_code == 200
    assert response.json()["stored"] == 20
    assert (await counts(db))["events"] == 20


async def test_quantities_and_times_round_trip_exactly(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    quantities = ["0.1", "1234567890123456789.123456789", "-3", "0", "1E+3"]
    events = chain_events(
        [draft(n, quantity=q) for n, q in enumerate(quantities, start=1)], gateway_id=GATEWAY
    )
    assert (await post(client, events, gateway_key)).status_code == 200

    listed = (await client.get("/v1/events", headers=READER)).json()["events"]
    assert [event["quantity"] for event in listed] == [
        "0.1",
        "1234567890123456789.123456789",
        "-3",
        "0",
        "1000",
    ]
    assert listed == [event.to_wire() for event in events]
    async with db.transaction() as session:
        stored = list(await session.scalars(select(StoredEvent).order_by(StoredEvent.seq)))
    assert all(type(row.quantity) is Decimal for row in stored)
    assert stored[1].quantity == Decimal("1234567890123456789.123456789")
    assert [row.occurred_at for row in stored] == [event.occurred_at for event in events]


async def test_thirty_digits_each_side_round_trip_exactly(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    """What was signed is what is stored and served (PostgreSQL once turned 10**131072 into 0)."""
    quantities = [
        "123456789012345678901234567890.123456789012345678901234567891",
        "-999999999999999999999999999999.999999999999999999999999999999",
        "0.000000000000000000000000000001",
        "100000000000000000000000000000",
    ]
    events = chain_events(
        [draft(n, quantity=q) for n, q in enumerate(quantities, start=1)], gateway_id=GATEWAY
    )
    assert (await post(client, events, gateway_key)).status_code == 200

    listed = (await client.get("/v1/events", headers=READER)).json()["events"]
    assert [event["quantity"] for event in listed] == quantities
    assert listed == [event.to_wire() for event in events]
    async with db.transaction() as session:
        stored = list(await session.scalars(select(StoredEvent.quantity).order_by(StoredEvent.seq)))
    assert stored == [Decimal(q) for q in quantities]
