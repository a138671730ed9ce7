"""The outbox on a real SQLite file: chain, lease/ack, dead letters, budget, quarantine, resync."""

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from edge.errors import OutboxFull
from edge.outbox import CounterValue, Outbox
from shared.chain import verify_chain
from shared.events import GENESIS_HASH, UsageEvent
from tests.support.batches import draft

GW = "gw-test"


def open_outbox(path: Path, budget: int = 64 * 1024 * 1024) -> Outbox:
    return Outbox(path, gateway_id=GW, budget_bytes=budget)


def events_of(wires: tuple[bytes, ...]) -> list[UsageEvent]:
    return [UsageEvent.model_validate_json(wire) for wire in wires]


async def test_append_assigns_contiguous_seqs_and_a_valid_chain(tmp_path: Path) -> None:
    async with open_outbox(tmp_path / "o.sqlite") as outbox:
        assert await outbox.append([draft(n) for n in range(3)]) == [1, 2, 3]
        assert await outbox.append([draft(n) for n in range(3, 5)]) == [4, 5]
        lease = await outbox.lease(100)
    assert lease is not None and (lease.first_seq, lease.last_seq) == (1, 5)
    assert lease.prev_hash == GENESIS_HASH
    assert verify_chain(events_of(lease.wires), prev_hash=GENESIS_HASH) == lease.last_hash


async def test_events_and_counters_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    at = datetime(2026, 11, 1, tzinfo=UTC)
    async with open_outbox(path) as outbox:
        await outbox.append([draft(1)], [CounterValue("panel-1", "door_open", 77, at)])
    async with open_outbox(path) as outbox:
        assert await outbox.counter_values() == {("panel-1", "door_open"): 77}
        assert await outbox.append([draft(2)]) == [2]
        lease = await outbox.lease(10)
    assert lease is not None and [e.seq for e in events_of(lease.wires)] == [1, 2]


async def test_lease_release_ack(tmp_path: Path) -> None:
    async with open_outbox(tmp_path / "o.sqlite") as outbox:
        await outbox.append([draft(n) for n in range(5)])
        first = await outbox.lease(2)
        second = await outbox.lease(2)
        assert first is not None and second is not None
        assert (first.first_seq, second.first_seq) == (1, 3)
        assert second.prev_hash == first.last_hash
        await outbox.release(second)
        await outbox.ack(first)
        again = await outbox.lease(10)
        assert again is not None and (again.first_seq, again.last_seq) == (3, 5)
        await outbox.ack(again)
        assert await outbox.lease(10) is None
        stats = await outbox.stats()
    assert (stats.last_seq, stats.acked_seq, stats.backlog) == (5, 5, 0)


async def test_acked_events_are_gone_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    async with open_outbox(path) as outbox:
        await outbox.append([draft(n) for n in range(4)])
        lease = await outbox.lease(2)
        assert lease is not None
        await outbox.ack(lease)
    async with open_outbox(path) as outbox:
        rest = await outbox.lease(10)
    assert rest is not None and (rest.first_seq, rest.last_seq) == (3, 4)


async def test_dead_letter_keeps_events_and_reason(tmp_path: Path) -> None:
    async with open_outbox(tmp_path / "o.sqlite") as outbox:
        await outbox.append([draft(n) for n in range(3)])
        lease = await outbox.lease(2)
        assert lease is not None
        await outbox.dead_letter(lease, status=409, reason='{"error": "chain_broken"}')
        letters = await outbox.dead_letters()
        rest = await outbox.lease(10)
        db = sqlite3.connect(outbox.path)
        stored = db.execute("SELECT events FROM dead_letters").fetchone()[0]
        db.close()
    assert [(d["first_seq"], d["last_seq"], d["status"]) for d in letters] == [(1, 2, 409)]
    assert "chain_broken" in letters[0]["reason"]
    assert [e["seq"] for e in orjson.loads(stored)] == [1, 2]
    assert rest is not None and rest.first_seq == 3


async def test_full_outbox_refuses_and_writes_nothing(tmp_path: Path) -> None:
    async with open_outbox(tmp_path / "o.sqlite", budget=200_000) as outbox:
        appended = 0
        with pytest.raises(OutboxFull, match="budget"):
            for n in range(10_000):
                await outbox.append(
                    [draft(n)], [CounterValue("panel-1", "p", n, datetime.now(UTC))]
                )
                appended += 1
        before = await outbox.stats()
        counters = await outbox.counter_values()
        with pytest.raises(OutboxFull):
            await outbox.append([draft(1)], [CounterValue("panel-1", "p", -5, datetime.now(UTC))])
        after = await outbox.stats()
        assert not await outbox.has_room() or after.used_bytes <= 200_000
        assert after.last_seq == before.last_seq == appended > 0
        assert await outbox.counter_values() == counters == {("panel-1", "p"): appended - 1}
        assert after.used_bytes <= 200_000
        # Draining makes room again, and numbering continues where it stopped.
        while (lease := await outbox.lease(1000)) is not None:
            await outbox.ack(lease)
        assert await outbox.has_room()
        assert await outbox.append([draft(1)]) == [appended + 1]


async def test_corrupt_file_is_quarantined_not_deleted(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    async with open_outbox(path) as outbox:
        assert [p.name.startswith("o.sqlite.corrupt-") for p in outbox.quarantined] == [True]
        assert outbox.quarantined[0].read_bytes().startswith(b"this is not a database")
        assert await outbox.append([draft(1)]) == [1]
        assert not await outbox.is_synced()


async def test_damaged_pages_are_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    async with open_outbox(path) as outbox:
        await outbox.append([draft(n) for n in range(2000)])
    data = bytearray(path.read_bytes())
    data[8192:16384] = b"\xff" * 8192  # overwrite b-tree pages in the middle of the file
    path.write_bytes(bytes(data))
    async with open_outbox(path) as outbox:
        assert len(outbox.quarantined) == 1
        assert (await outbox.stats()).last_seq == 0


async def test_resync_renumbers_unsent_events_onto_the_cloud_chain(tmp_path: Path) -> None:
    cloud_hash = "ab" * 32
    async with open_outbox(tmp_path / "o.sqlite") as outbox:
        assert not await outbox.is_synced()
        await outbox.append([draft(n) for n in range(3)])
        await outbox.resync(cloud_last_seq=41, cloud_last_hash=cloud_hash)
        assert await outbox.is_synced()
        assert await outbox.append([draft(9)]) == [45]
        lease = await outbox.lease(10)
    assert lease is not None and (lease.first_seq, lease.last_seq) == (42, 45)
    events = events_of(lease.wires)
    assert [e.occurred_at for e in events] == [draft(n).occurred_at for n in (0, 1, 2, 9)]
    assert verify_chain(events, prev_hash=cloud_hash) == lease.last_hash


async def test_entering_twice_is_an_error(tmp_path: Path) -> None:
    outbox = open_outbox(tmp_path / "o.sqlite")
    async with outbox:
        with pytest.raises(RuntimeError, match="already open"):
            await outbox.__aenter__()


async def test_resync_keeps_numbering_that_already_continues_the_cloud(tmp_path: Path) -> None:
    async with open_outbox(tmp_path / "o.sqlite") as outbox:
        await outbox.append([draft(n) for n in range(3)])
        before = await outbox.lease(10)
        assert before is not None
        await outbox.release(before)
        await outbox.resync(cloud_last_seq=0, cloud_last_hash=GENESIS_HASH)
        assert await outbox.is_synced()
        after = await outbox.lease(10)
    assert after == before


async def test_events_from_sources_without_a_log_are_written_past_the_budget(
    tmp_path: Path,
) -> None:
    async with open_outbox(tmp_path / "o.sqlite", budget=100_000) as outbox:
        with pytest.raises(OutboxFull):
            for n in range(10_000):
                await outbox.append([draft(n)])
        last = (await outbox.stats()).last_seq
        seqs = await outbox.append([draft(1), draft(2)], enforce_budget=False)
        assert seqs == [last + 1, last + 2]
        with pytest.raises(OutboxFull):  # the budget still holds for everyone else
            await outbox.append([draft(3)])
