"""Detection on ingest: real signed batches through POST /v1/batches open, bump and resolve
incidents with their evidence, and store every event regardless (SQLite and PostgreSQL)."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from cloud.db import Database
from cloud.ingest.models import ReceivedBatch
from tests.cloud.conftest import GATEWAY, counts
from tests.cloud.quality.scenario import (
    Chain,
    incidents,
    post_events,
    reading,
    recent,
    set_up_catalog,
)

pytestmark = pytest.mark.usefixtures("catalog")


@pytest.fixture
async def catalog(db: Database) -> None:
    """The scenario's billed catalog."""
    await set_up_catalog(db)


@pytest.fixture
def chain(gateway_key: Ed25519PrivateKey) -> Chain:
    """The test gateway's chain from seq 1."""
    return Chain(gateway_key)


async def batch_ids(db: Database) -> list[int]:
    """The stored batches' ids, in order."""
    async with db.transaction() as session:
        return list(await session.scalars(select(ReceivedBatch.id).order_by(ReceivedBatch.id)))


async def test_billed_usage_in_time_opens_nothing(
    client: httpx.AsyncClient, db: Database, chain: Chain
) -> None:
    now = recent()
    await chain.send(
        client,
        [
            reading("meter-1"),
            reading("cam-1", name="stream_start", quantity=None, unit=None, at=now),
            reading("cam-1", name="stream_stop", quantity=None, unit=None, at=now),
            reading("stranger-9", name="anything", unit="x"),  # not in the catalog
        ],
    )

    assert await counts(db) == {"batches": 1, "events": 4, "incidents": 0}


async def test_a_unit_typo_is_unbilled_usage_with_its_seqs_and_batch(
    client: httpx.AsyncClient, db: Database, chain: Chain
) -> None:
    await chain.send(client, [reading("meter-1"), reading("meter-1", unit="L")])

    (incident,) = await incidents(db)
    (batch_id,) = await batch_ids(db)
    assert (incident.kind, incident.state, incident.device_id) == (
        "unbilled_usage",
        "open",
        "meter-1",
    )
    assert (incident.gateway_id, incident.first_seq, incident.last_seq) == (GATEWAY, 2, 2)
    assert "no metric of plan basic v1 counts 'water' in 'L'" in incident.detail
    assert incident.evidence is not None
    assert incident.evidence["batch_id"] == batch_id and incident.evidence["seqs"] == [2]
    assert incident.evidence["readings"][0]["unit"] == "L"
    assert incident.count == 1
    assert (await counts(db))["events"] == 2  # stored all the same: billing decides, not ingest


async def test_repeated_occurrences_bump_one_incident(
    client: httpx.AsyncClient, db: Database, chain: Chain
) -> None:
    await chain.send(client, [reading("meter-1", unit="L")])
    await chain.send(client, [reading("meter-1", unit="L"), reading("meter-1", unit="L")])

    (incident,) = await incidents(db)
    assert (incident.kind, incident.count) == ("unbilled_usage", 2)
    assert incident.evidence is not None and incident.evidence["seqs"] == [1, 2, 3]
    assert incident.evidence["batch_id"] == (await batch_ids(db))[-1]
    assert (incident.first_seq, incident.last_seq) == (1, 3)
    assert incident.last_seen > incident.first_seen


async def test_usage_of_a_device_bound_to_nobody_is_unbound(
    client: httpx.AsyncClient, db: Database, chain: Chain
) -> None:
    before = reading("meter-1", at=datetime(2026, 9, 30, 12, tzinfo=UTC))  # before its binding
    await chain.send(client, [reading("loose-1"), reading("meter-1"), before])

    found = {(i.kind, i.device_id, i.first_seq) for i in await incidents(db)}
    assert found == {("unbound_usage", "loose-1", 1), ("unbound_usage", "meter-1", 3)}


async def test_an_event_of_a_closed_month_is_a_late_arrival(
    client: httpx.AsyncClient, db: Database, chain: Chain
) -> None:
    last_month = (recent().replace(day=1) - timedelta(days=3)).replace(hour=12)
    await chain.send(client, [reading("meter-1"), reading("meter-1", at=last_month)])

    (incident,) = await incidents(db)
    assert (incident.kind, incident.device_id, incident.first_seq) == ("late_arrival", "meter-1", 2)
    assert f"received after {last_month:%Y-%m} ended for acme" in incident.detail


async def test_an_event_ahead_of_the_collector_is_clock_skew(
    client: httpx.AsyncClient, db: Database, chain: Chain
) -> None:
    ahead = datetime.now(UTC) + timedelta(hours=2)
    await chain.send(client, [reading("meter-1"), reading("meter-1", at=ahead)])

    (incident,) = await incidents(db)
    assert (incident.kind, incident.device_id, incident.first_seq) == ("clock_skew", "meter-1", 2)
    assert "after it was received" in incident.detail
    assert incident.evidence is not None
    assert incident.evidence["readings"][0]["occurred_at"] == ahead.isoformat()


async def test_counter_resets_and_wraps_from_the_edge_are_filed_per_device(
    client: httpx.AsyncClient, db: Database, chain: Chain
) -> None:
    await chain.send(
        client,
        [
            reading("meter-1", attrs={"register": 0, "reset": True}),
            reading("meter-1", attrs={"register": 0, "wrapped": True}),
            reading("panel-7", name="pulses", unit=None, attrs={"reset": True}),
        ],
    )

    found = {(i.kind, i.device_id, i.first_seq) for i in await incidents(db)}
    assert found == {
        ("counter_reset", "meter-1", 1),
        ("counter_wrap", "meter-1", 2),
        ("counter_reset", "panel-7", 3),
    }


async def test_a_seq_gap_opens_shrinks_and_resolves_itself_when_filled(
    client: httpx.AsyncClient, db: Database, chain: Chain
) -> None:
    first = chain.seal([reading("meter-1") for _ in range(3)])  # 1..3
    hole = chain.seal([reading("meter-1") for _ in range(4)])  # 4..7
    after = chain.seal([reading("meter-1") for _ in range(2)])  # 8..9

    await post_events(client, first, chain.key)
    await post_events(client, after, chain.key)
    (opened,) = await incidents(db)
    assert (opened.kind, opened.state, opened.device_id) == ("seq_gap", "open", None)
    assert opened.evidence is not None and opened.evidence["missing"] == [[4, 7]]
    assert (opened.first_seq, opened.last_seq) == (4, 7)

    await post_events(client, hole[:2], chain.key)  # 4..5
    (shrunk,) = await incidents(db)
    assert shrunk.state == "open" and shrunk.evidence is not None
    assert shrunk.evidence["missing"] == [[6, 7]] and shrunk.count == 1

    await post_events(client, hole[2:], chain.key)  # 6..7
    (resolved,) = await incidents(db)
    assert resolved.state == "resolved" and resolved.resolved_by == "collector"
    last_batch = (await batch_ids(db))[-1]
    assert resolved.resolved_reason == f"missing seqs filled by batch {last_batch}"
    assert (await counts(db))["events"] == 9


async def test_a_second_gap_grows_the_open_incident(
    client: httpx.AsyncClient, db: Database, chain: Chain
) -> None:
    events = chain.seal([reading("meter-1") for _ in range(9)])

    await post_events(client, events[:2], chain.key)  # 1..2
    await post_events(client, events[4:6], chain.key)  # 5..6, missing 3..4
    await post_events(client, events[8:], chain.key)  # 9, missing 7..8 too

    (incident,) = await incidents(db)
    assert incident.evidence is not None and incident.evidence["missing"] == [[3, 4], [7, 8]]
    assert (incident.count, incident.first_seq, incident.last_seq) == (2, 3, 8)
    assert "4 seq(s) missing in 2 range(s)" in incident.detail


async def test_a_duplicate_delivery_bumps_one_lifecycle_incident(
    client: httpx.AsyncClient, db: Database, chain: Chain
) -> None:
    events = await chain.send(client, [reading("meter-1"), reading("meter-1")])

    await post_events(client, events, chain.key)
    await post_events(client, events, chain.key)

    (incident,) = await incidents(db)
    assert (incident.kind, incident.state, incident.count) == ("duplicate_delivery", "open", 2)
    assert incident.evidence == {"seqs": [1, 2]}
