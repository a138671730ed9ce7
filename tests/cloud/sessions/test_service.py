"""The session store on SQLite and PostgreSQL, fed through the real ingest path."""

import asyncio

import pytest

from cloud.catalog.models import Device
from cloud.db import Database
from cloud.domain import CloseReason
from cloud.errors import ChainBroken
from cloud.ingest.service import ingest_batch
from cloud.session_work import EPOCH, enqueue_device, note_events
from cloud.sessions.models import SessionRow
from cloud.sessions.service import RefreshReport, refresh_sessions, sessions_overlapping
from cloud.settings import Limits
from tests.cloud.sessions.support import (
    CAMERA,
    LOCK,
    add_device,
    add_profile,
    at,
    current,
    row_count,
    work,
)
from tests.support.batches import batch_body, chain_events
from tests.support.usage import GatewayFeed, usage


def seqs(sessions: list) -> list[list[int]]:  # type: ignore[type-arg]
    """The event seqs of each session."""
    return [[seq for _, seq in s.events] for s in sessions]


async def test_refresh_after_ingest_computes_sessions(db: Database) -> None:
    await add_profile(db, "camera", CAMERA)
    await add_device(db, "cam-1", "camera")
    feed = await GatewayFeed("gw-s1").register(db)
    await feed.send(
        db,
        [
            usage("cam-1", "stream_start", at(0), channel="main"),
            usage("cam-1", "bitrate", at(5), channel="main"),
            usage("cam-1", "stream_stop", at(30), channel="main"),
            usage("cam-1", "stream_start", at(40), channel="main"),
            usage("cam-1", "stream_start", at(41), channel="aux"),  # another pair
        ],
    )
    assert await work(db) == {("cam-1", "main"): at(0), ("cam-1", "aux"): at(41)}
    report = await refresh_sessions(db=db, as_of=at(60))
    assert report == RefreshReport(pairs=2, events=5, written=3, retired=0)
    sessions = await current(db, "cam-1")
    assert [(s.channel, s.started_at, s.ended_at, s.close_reason) for s in sessions] == [
        ("aux", at(41), None, CloseReason.STILL_OPEN),
        ("main", at(0), at(30), CloseReason.DEACTIVATED),
        ("main", at(40), None, CloseReason.STILL_OPEN),
    ]
    assert seqs(sessions) == [[5], [1, 2, 3], [4]]
    assert sessions[1].events == (("gw-s1", 1), ("gw-s1", 2), ("gw-s1", 3))
    assert await work(db) == {}  # consumed
    # Nothing queued: a second refresh does nothing.
    assert await refresh_sessions(db=db, as_of=at(61)) == RefreshReport(0, 0, 0, 0)


async def test_late_event_recomputes_only_from_its_session_and_only_its_pair(
    db: Database,
) -> None:
    await add_profile(db, "camera", CAMERA)
    await add_device(db, "cam-a", "camera")
    await add_device(db, "cam-b", "camera")
    feed = await GatewayFeed("gw-s2").register(db)
    drafts = []
    for device in ("cam-a", "cam-b"):
        for name, minute in [
            ("stream_start", 0),
            ("stream_stop", 20),
            ("stream_start", 30),
            ("stream_stop", 40),
            ("stream_start", 50),
            ("stream_stop", 60),
        ]:
            drafts.append(usage(device, name, at(minute)))
    await feed.send(db, drafts)
    await refresh_sessions(db=db, as_of=at(90))
    before_a, before_b = await current(db, "cam-a"), await current(db, "cam-b")
    assert len(before_a) == len(before_b) == 3
    # A late activity at minute 35, inside cam-a's second session (started at 30).
    await feed.send(db, [usage("cam-a", "bitrate", at(35))])
    assert await work(db) == {("cam-a", ""): at(35)}
    report = await refresh_sessions(db=db, as_of=at(91))
    # Recomputed from 30: events at 30, 35, 40, 50, 60 read; sessions 2 and 3 replaced.
    assert report == RefreshReport(pairs=1, events=5, written=2, retired=2)
    after_a = await current(db, "cam-a")
    assert after_a[0] == before_a[0]  # the first session's row is untouched (same id)
    assert [s.id for s in after_a[1:]] != [s.id for s in before_a[1:]]
    assert seqs(after_a) == [[1, 2], [3, 13, 4], [5, 6]]
    assert await current(db, "cam-b") == before_b  # the other pair was not touched
    # The replaced rows are kept, no longer current.
    assert await row_count(db) == 8 and await row_count(db, current_only=True) == 6
    async with db.transaction() as session:
        old = await session.get(SessionRow, before_a[1].id)
    assert old is not None and old.current is False and old.event_count == 2


async def test_late_start_splits_a_session(db: Database) -> None:
    await add_profile(db, "camera", CAMERA)
    await add_device(db, "cam-1", "camera")
    feed = await GatewayFeed("gw-s3").register(db)
    await feed.send(
        db,
        [
            usage("cam-1", "stream_start", at(0)),
            usage("cam-1", "bitrate", at(10)),
            usage("cam-1", "bitrate", at(20)),
            usage("cam-1", "stream_stop", at(40)),
        ],
    )
    await refresh_sessions(db=db, as_of=at(60))
    [whole] = await current(db, "cam-1")
    assert seqs([whole]) == [[1, 2, 3, 4]]
    await feed.send(db, [usage("cam-1", "stream_start", at(15))])  # arrives late, seq 5
    report = await refresh_sessions(db=db, as_of=at(61))
    assert report == RefreshReport(pairs=1, events=5, written=2, retired=1)
    first, second = await current(db, "cam-1")
    assert (first.started_at, first.ended_at, first.close_reason) == (
        at(0),
        at(15),
        CloseReason.SUPERSEDED,
    )
    assert (second.started_at, second.ended_at, second.close_reason) == (
        at(15),
        at(40),
        CloseReason.DEACTIVATED,
    )
    assert seqs([first, second]) == [[1, 2], [5, 3, 4]]
    async with db.transaction() as session:
        kept = await session.get(SessionRow, whole.id)
    assert kept is not None and kept.current is False and kept.event_count == 4


async def test_timeout_is_re_evaluated_by_as_of(db: Database) -> None:
    await add_profile(db, "lock", LOCK)  # timeout 600 s
    await add_device(db, "lock-1", "lock")
    feed = await GatewayFeed("gw-s4").register(db)
    await feed.send(db, [usage("lock-1", "opened", at(0)), usage("lock-1", "jolt", at(5))])
    await refresh_sessions(db=db, as_of=at(8))
    [open_] = await current(db, "lock-1")
    assert open_.close_reason is CloseReason.STILL_OPEN and open_.ended_at is None
    # As of 15: idle exactly 10 minutes, not more: nothing to do.
    assert await refresh_sessions(db=db, as_of=at(15)) == RefreshReport(0, 0, 0, 0)
    # As of 15 and a bit: timed out at the last activity (5).
    report = await refresh_sessions(db=db, as_of=at(15.5))
    assert report == RefreshReport(pairs=1, events=2, written=1, retired=1)
    [closed] = await current(db, "lock-1")
    assert (closed.ended_at, closed.close_reason) == (at(5), CloseReason.TIMED_OUT)
    assert await refresh_sessions(db=db, as_of=at(30)) == RefreshReport(0, 0, 0, 0)
    # A late activity within the timeout (at 12) revives it: still open again (as of 20).
    await feed.send(db, [usage("lock-1", "jolt", at(12))])
    await refresh_sessions(db=db, as_of=at(20))
    [revived] = await current(db, "lock-1")
    assert revived.close_reason is CloseReason.STILL_OPEN and seqs([revived]) == [[1, 2, 3]]


async def test_device_created_later_gets_its_history(db: Database) -> None:
    feed = await GatewayFeed("gw-s5").register(db)
    await feed.send(
        db,
        [
            usage("cam-9", "stream_start", at(0), channel="main"),
            usage("cam-9", "stream_stop", at(10), channel="main"),
            usage("cam-9", "stream_start", at(20), channel="aux"),
        ],
    )
    # Not in the catalog: the work is consumed, nothing written.
    assert await refresh_sessions(db=db, as_of=at(30)) == RefreshReport(2, 0, 0, 0)
    assert await work(db) == {}
    await add_profile(db, "camera", CAMERA)
    await add_device(db, "cam-9", "camera")
    async with db.transaction(write=True) as session:
        await enqueue_device(session=session, device_id="cam-9")
    assert await work(db) == {("cam-9", "*"): EPOCH}
    report = await refresh_sessions(db=db, as_of=at(30))
    assert report == RefreshReport(pairs=1, events=3, written=2, retired=0)
    sessions = await current(db, "cam-9")
    assert [(s.channel, s.close_reason) for s in sessions] == [
        ("aux", CloseReason.STILL_OPEN),
        ("main", CloseReason.DEACTIVATED),
    ]
    # The profile loses its rule (no start_on) and the device is re-queued: retired, none new.
    await add_profile(db, "plain", {"start_on": [], "end_on": [], "timeout_seconds": None})
    async with db.transaction(write=True) as session:
        device = await session.get(Device, "cam-9")
        assert device is not None
        device.profile_id = "plain"
        await enqueue_device(session=session, device_id="cam-9")
    report = await refresh_sessions(db=db, as_of=at(31))
    assert report == RefreshReport(pairs=1, events=0, written=0, retired=2)
    assert await current(db, "cam-9") == []


async def test_note_events_keeps_the_earliest_since_and_joins_the_transaction(
    db: Database,
) -> None:
    def note(minutes: list[float], fail: bool = False) -> None:
        def write(session: object) -> None:
            note_events(session, [("dev-1", None, at(m)) for m in minutes])  # type: ignore[arg-type]
            if fail:
                raise RuntimeError("rolled back")

        return write  # type: ignore[return-value]

    await db.run_write(note([30, 20, 25]))  # type: ignore[arg-type]
    assert await work(db) == {("dev-1", ""): at(20)}
    await db.run_write(note([40]))  # type: ignore[arg-type]
    assert await work(db) == {("dev-1", ""): at(20)}  # later events do not move it
    with pytest.raises(RuntimeError):
        await db.run_write(note([1], fail=True))  # type: ignore[arg-type]
    assert await work(db) == {("dev-1", ""): at(20)}  # rolled back with the transaction
    await db.run_write(note([10]))  # type: ignore[arg-type]
    assert await work(db) == {("dev-1", ""): at(10)}


async def test_a_refused_batch_leaves_no_work(db: Database) -> None:
    feed = await GatewayFeed("gw-s6").register(db)
    await feed.send(db, [usage("cam-1", "stream_start", at(0))])
    await refresh_sessions(db=db, as_of=at(1))
    assert await work(db) == {}
    # Seq 2 claiming to follow a hash that is not seq 1's: the chain is broken, refused.
    events = chain_events(
        [usage("cam-1", "stream_stop", at(5))], gateway_id="gw-s6", first_seq=2, prev_hash="f" * 64
    )
    with pytest.raises(ChainBroken):
        await ingest_batch(db=db, body=batch_body(events, feed.key), limits=Limits())
    assert await work(db) == {}


async def test_sessions_overlapping_bounds(db: Database) -> None:
    await add_profile(db, "camera", CAMERA)
    for device in ("cam-1", "cam-2"):
        await add_device(db, device, "camera")
    feed = await GatewayFeed("gw-s7").register(db)
    await feed.send(
        db,
        [
            usage("cam-1", "stream_start", at(0)),
            usage("cam-1", "stream_stop", at(10)),  # [0, 10)
            usage("cam-1", "stream_start", at(20)),
            usage("cam-1", "stream_stop", at(20)),  # zero-length at 20
            usage("cam-2", "stream_start", at(30)),  # open from 30
        ],
    )
    await refresh_sessions(db=db, as_of=at(40))

    async def between(start: float, end: float, devices: list[str] | None = None) -> list[int]:
        async with db.transaction() as session:
            found = await sessions_overlapping(
                session=session, start=at(start), end=at(end), device_ids=devices
            )
        return [s.events[0][1] for s in found]  # identified by their start event's seq

    assert await between(0, 100) == [1, 3, 5]
    assert await between(10, 20) == []  # ends exactly at 10; the zero-length one is at 20
    assert await between(9, 20) == [1]
    assert await between(20, 21) == [3]
    assert await between(19, 20) == []
    assert await between(1000, 2000) == [5]  # still open: open to the future
    assert await between(0, 30) == [1, 3]  # the open one starts at 30, not before
    assert await between(0, 100, ["cam-2"]) == [5]
    assert await between(0, 100, [f"dev-{n}" for n in range(600)] + ["cam-1"]) == [1, 3]


async def test_two_refreshes_at_once_do_not_double_write(db: Database) -> None:
    await add_profile(db, "camera", CAMERA)
    feed = await GatewayFeed("gw-s8").register(db)
    drafts = []
    for n in range(30):
        await add_device(db, f"cam-{n}", "camera")
        drafts += [
            usage(f"cam-{n}", "stream_start", at(0)),
            usage(f"cam-{n}", "stream_stop", at(5)),
            usage(f"cam-{n}", "stream_start", at(9)),
        ]
    await feed.send(db, drafts)
    first, second = await asyncio.gather(
        refresh_sessions(db=db, as_of=at(10)), refresh_sessions(db=db, as_of=at(10))
    )
    # Every pair is consumed once in all: 2 sessions each, written once.
    assert first.pairs + second.pairs == 30
    assert first.written + second.written == 60
    assert await row_count(db) == await row_count(db, current_only=True) == 60
