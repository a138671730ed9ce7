"""The session store: an incremental, restartable recomputation of sessions from stored events.

Ingest notes every new event's (device, channel, occurred_at) in `session_work` in the batch's
own transaction (`cloud.session_work.note_events`), keeping the earliest time per pair.
`refresh_sessions` consumes that queue: for each pair it recomputes from the start of the latest
current session that began before the earliest new event (the only session such an event can
change), retires the current sessions from that point on (`current = False`; rows are never
deleted, so invoice evidence keeps pointing at what it was rated from) and inserts the new ones.

Concurrency: a refresh works in chunks of devices, each in one write transaction. On SQLite write
transactions serialize. On PostgreSQL a transaction-level advisory lock serializes refreshes, and
the chunk's work rows are locked (`FOR UPDATE SKIP LOCKED`), so an ingest transaction noting the
same pair meanwhile waits and re-inserts its row after the refresh commits: no event is lost.
"""

import asyncio
import functools
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, cast

import orjson
from sqlalchemy import (
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    text,
    true,
    type_coerce,
    update,
)
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.util import await_only

from cloud.catalog.models import Device, DeviceProfile
from cloud.catalog.session_rules import rule_of
from cloud.db import Database
from cloud.domain import BillableEvent, CloseReason, ComputedSession, EventKey, SessionRule
from cloud.ingest.models import StoredEvent
from cloud.session_work import ALL_CHANNELS, EPOCH, WORK, note_events
from cloud.sessions.models import SessionRow
from cloud.sessions.sessionizer import sessionize

CHUNK_DEVICES = 400  # devices per refresh transaction (and per IN list)
ID_CHUNK = 1_000  # ids per UPDATE ... WHERE id IN (...)
REFRESH_LOCK_KEY = 0x7011_5E55  # pg_advisory_xact_lock key of the session refresh

SESSIONS = cast(Table, SessionRow.__table__)
EVENTS = cast(Table, StoredEvent.__table__)


@dataclass(frozen=True, slots=True)
class RefreshReport:
    """What a refresh did: work pairs consumed, events read, sessions written and retired."""

    pairs: int
    events: int
    written: int
    retired: int

    def __str__(self) -> str:
        return (
            f"sessions refreshed: {self.pairs} pairs, {self.events} events, "
            f"{self.written} written, {self.retired} retired"
        )


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A current stored session (see `cloud.domain.ComputedSession`); `id` is its row id."""

    id: int
    device_id: str
    channel: str | None
    name: str
    started_at: datetime
    ended_at: datetime | None
    last_activity_at: datetime
    close_reason: CloseReason
    events: tuple[EventKey, ...]


# -- the refresh ---------------------------------------------------------------------------------


async def refresh_sessions(
    *, db: Database, as_of: datetime, progress: Callable[[int, int], None] | None = None
) -> RefreshReport:
    """Consume the session work queue (and expired still-open sessions) as of `as_of`.

    `progress(done, total)` is called after each chunk with work pairs done and to do.
    """
    await db.run_write(lambda session: enqueue_expired(session, as_of=as_of))
    if db.dialect == "postgresql":
        await db.run_write(analyze_if_stale)
    async with db.transaction() as session:
        queued = (await session.execute(select(WORK.c.device_id, WORK.c.channel))).all()
    pairs_of: dict[str, int] = defaultdict(int)
    for device_id, _channel in queued:
        pairs_of[device_id] += 1
    devices = sorted(pairs_of)
    total = len(queued)
    done = 0
    report = RefreshReport(0, 0, 0, 0)
    unanalyzed = 0
    for offset in range(0, len(devices), CHUNK_DEVICES):
        chunk = devices[offset : offset + CHUNK_DEVICES]
        part = await db.run_write(functools.partial(refresh_chunk, chunk=chunk, as_of=as_of))
        report = RefreshReport(
            report.pairs + part.pairs,
            report.events + part.events,
            report.written + part.written,
            report.retired + part.retired,
        )
        unanalyzed += part.written
        if db.dialect == "postgresql" and unanalyzed > STALE_MINIMUM:
            # A big refresh grows `sessions` from nothing: without fresh statistics the planner
            # keeps scanning it whole for every chunk (70 s of 83 s at 1M events).
            await db.run_write(analyze_sessions)
            unanalyzed = 0
        done += sum(pairs_of[device_id] for device_id in chunk)
        if progress is not None:
            progress(min(done, total), total)
        await asyncio.sleep(0)  # let other requests in between chunks
    return report


STALE_FRACTION = 0.2
STALE_MINIMUM = 50_000


def analyze_if_stale(session: Session) -> None:
    """PostgreSQL: ANALYZE the tables a refresh reads if much changed since their statistics.

    With stale statistics (right after a bulk load, before autovacuum gets to it) the planner
    reads `events` through its `occurred_at` index or a sequential scan for every chunk instead
    of through `(device_id, occurred_at)`; sampling costs well under a second.
    """
    stale = session.scalars(
        text(
            "SELECT relname FROM pg_stat_user_tables WHERE relname IN "
            "('events', 'sessions', 'session_work') AND n_mod_since_analyze > "
            "GREATEST(:minimum, :fraction * n_live_tup)"
        ),
        {"minimum": STALE_MINIMUM, "fraction": STALE_FRACTION},
    ).all()
    for table in sorted(stale):  # names from the fixed list above
        session.execute(text(f"ANALYZE {table}"))


def analyze_sessions(session: Session) -> None:
    """PostgreSQL: refresh the planner's statistics of `sessions`."""
    session.execute(text("ANALYZE sessions"))


def enqueue_expired(session: Session, *, as_of: datetime) -> int:
    """Queue the pairs whose current still-open session has timed out by `as_of`; how many."""
    rows = session.execute(
        select(
            SessionRow.device_id,
            SessionRow.channel,
            SessionRow.started_at,
            SessionRow.last_activity_at,
            DeviceProfile.timeout_seconds,
        )
        .join(Device, Device.id == SessionRow.device_id)
        .join(DeviceProfile, DeviceProfile.id == Device.profile_id)
        .where(
            SessionRow.current == true(),
            SessionRow.close_reason == CloseReason.STILL_OPEN.value,
            DeviceProfile.timeout_seconds.is_not(None),
        )
    ).all()
    expired = [
        (device_id, channel, started_at)
        for device_id, channel, started_at, last_activity_at, timeout in rows
        if timeout is not None and as_of - last_activity_at > timedelta(seconds=timeout)
    ]
    note_events(session, expired)
    return len(expired)


def refresh_chunk(session: Session, *, chunk: Sequence[str], as_of: datetime) -> RefreshReport:
    """Recompute the queued pairs of these devices, in the caller's write transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REFRESH_LOCK_KEY})
    work = session.execute(
        select(WORK.c.device_id, WORK.c.channel, WORK.c.since)
        .where(WORK.c.device_id.in_(chunk))
        .with_for_update(skip_locked=True)
    ).all()
    if not work:
        return RefreshReport(0, 0, 0, 0)
    rules = device_rules(session, device_ids={device_id for device_id, _, _ in work})
    star = {device_id for device_id, channel, _ in work if channel == ALL_CHANNELS}
    whole = {device_id for device_id, _, _ in work if rules.get(device_id) is None} | star
    queued = {(d, c): since for d, c, since in work if d not in whole}
    points = recompute_points(session, queued=queued)
    retire_ids = current_ids_of_devices(session, device_ids=whole)
    retire_ids += current_ids_from_points(session, points=points)
    points.update({(d, ALL_CHANNELS): EPOCH for d in star if rules.get(d) is not None})
    events = load_events(session, points=points)
    retire(session, ids=retire_ids)
    computed = compute(events, rules=rules, as_of=as_of)
    insert_sessions(session, sessions=computed)
    session.execute(
        delete(WORK).where(
            WORK.c.device_id == bindparam("d"),
            WORK.c.channel == bindparam("c"),
            WORK.c.since == bindparam("s"),
        ),
        [{"d": device_id, "c": channel, "s": since} for device_id, channel, since in work],
    )
    return RefreshReport(
        pairs=len(work), events=len(events), written=len(computed), retired=len(retire_ids)
    )


def device_rules(session: Session, *, device_ids: Collection[str]) -> dict[str, SessionRule | None]:
    """The session rule of each device in the catalog (None: its profile forms no sessions)."""
    rows = session.execute(
        select(
            Device.id, DeviceProfile.start_on, DeviceProfile.end_on, DeviceProfile.timeout_seconds
        )
        .join(DeviceProfile, DeviceProfile.id == Device.profile_id)
        .where(Device.id.in_(device_ids))
    ).all()
    return {
        device_id: rule_of(start_on=start_on, end_on=end_on, timeout_seconds=timeout)
        for device_id, start_on, end_on, timeout in rows
    }


def current_ids_of_devices(session: Session, *, device_ids: Collection[str]) -> list[int]:
    """The ids of every current session of these devices."""
    if not device_ids:
        return []
    return list(
        session.scalars(
            select(SessionRow.id).where(
                SessionRow.current == true(), SessionRow.device_id.in_(device_ids)
            )
        )
    )


def recompute_points(
    session: Session, *, queued: dict[tuple[str, str], datetime]
) -> dict[tuple[str, str], datetime]:
    """Where each queued pair must be recomputed from: the start of its latest current session
    that started before `since` (the one session a new event at `since` can change), else
    `since`."""
    if not queued:
        return {}
    work, s = WORK, SESSIONS.c
    rows = session.execute(
        select(s.device_id, s.channel, func.max(s.started_at))
        .join(work, and_(work.c.device_id == s.device_id, work.c.channel == s.channel))
        .where(
            work.c.device_id.in_({device_id for device_id, _ in queued}),
            s.current == true(),
            s.started_at < work.c.since,
        )
        .group_by(s.device_id, s.channel)
    ).all()
    points = dict(queued)
    for device_id, channel, latest in rows:
        pair = (device_id, channel)
        if pair in points and latest is not None:  # a pair queued after our read: not ours
            points[pair] = min(points[pair], latest)
    return points


def _device_groups(points: dict[tuple[str, str], datetime]) -> list[tuple[list[str], datetime]]:
    """Devices grouped by the UTC day of their earliest point, with the group's earliest point.

    One query per group reads `device_id IN (...) AND time >= earliest`: a device with a very
    late event does not make the whole chunk read from that far back.
    """
    earliest: dict[str, datetime] = {}
    for (device_id, _), point in points.items():
        known = earliest.get(device_id)
        earliest[device_id] = point if known is None else min(known, point)
    groups: dict[object, tuple[list[str], datetime]] = {}
    for device_id, point in sorted(earliest.items()):
        devices, floor = groups.get(point.date(), ([], point))
        devices.append(device_id)
        groups[point.date()] = (devices, min(floor, point))
    return list(groups.values())


def _point(points: dict[tuple[str, str], datetime], device_id: str, channel: str | None) -> Any:
    """The pair's recompute point ("*": the device's), None if the pair is not being refreshed."""
    point = points.get((device_id, ALL_CHANNELS))
    return point if point is not None else points.get((device_id, channel or ""))


def current_ids_from_points(
    session: Session, *, points: dict[tuple[str, str], datetime]
) -> list[int]:
    """The ids of the pairs' current sessions that start at or after their recompute point."""
    s = SESSIONS.c
    ids: list[int] = []
    for devices, floor in _device_groups(points):
        rows = session.execute(
            select(s.id, s.device_id, s.channel, type_coerce(s.started_at, String)).where(
                s.current == true(), s.device_id.in_(devices), s.started_at >= floor
            )
        ).all()
        for id_, device_id, channel, started_at in rows:
            point = points.get((device_id, channel))
            if point is not None and _utc(started_at) >= point:
                ids.append(id_)
    return ids


def load_events(
    session: Session, *, points: dict[tuple[str, str], datetime]
) -> list[BillableEvent]:
    """The stored events of the pairs from their recompute points on ("*": every channel).

    Only what sessions are made of is read: `kind`, `quantity` and `unit` are left empty;
    `attrs["report"]` becomes `report` (a status report confirms a session, see the sessionizer).
    occurred_at is read raw: SQLite's text parsed by `fromisoformat` (C), not SQLAlchemy's regex.
    """
    e = EVENTS.c
    events: list[BillableEvent] = []
    for devices, floor in _device_groups(points):
        rows = session.execute(
            select(
                e.gateway_id,
                e.seq,
                e.device_id,
                e.channel,
                e.name,
                type_coerce(e.occurred_at, String),
                e.attrs["report"].as_string(),
            ).where(e.device_id.in_(devices), e.occurred_at >= floor)
        ).all()
        for gateway_id, seq, device_id, channel, name, raw_time, report in rows:
            point = _point(points, device_id, channel)
            occurred_at = _utc(raw_time)
            if point is not None and occurred_at >= point:
                events.append(
                    BillableEvent(
                        gateway_id,
                        seq,
                        device_id,
                        channel,
                        name,
                        "",
                        None,
                        None,
                        occurred_at,
                        report,
                    )
                )
    return events


def _utc(value: str | datetime) -> datetime:
    """A stored time as UTC-aware: SQLite's naive UTC text, or PostgreSQL's aware datetime."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def retire(session: Session, *, ids: Sequence[int]) -> None:
    """Mark these sessions as no longer current (kept for the evidence pointing at them)."""
    for offset in range(0, len(ids), ID_CHUNK):
        session.execute(
            update(SESSIONS)
            .where(SESSIONS.c.id.in_(ids[offset : offset + ID_CHUNK]))
            .values(current=False)
        )


def compute(
    events: Iterable[BillableEvent], *, rules: dict[str, SessionRule | None], as_of: datetime
) -> list[ComputedSession]:
    """Sessionize the events of each (device, channel) under its device's rule."""
    by_pair: dict[tuple[str, str | None], list[BillableEvent]] = defaultdict(list)
    for event in events:
        by_pair[(event.device_id, event.channel)].append(event)
    computed: list[ComputedSession] = []
    for (device_id, _channel), pair_events in by_pair.items():
        rule = rules.get(device_id)
        if rule is not None:
            computed.extend(sessionize(pair_events, rule, as_of=as_of))
    return computed


class SessionInsert(NamedTuple):
    """The compiled session insert, its positional column order and each column's processor."""

    sql: str
    columns: tuple[str, ...]
    processors: dict[str, Callable[[Any], Any]]


@functools.lru_cache(maxsize=8)
def compile_session_insert(dialect: Dialect) -> SessionInsert:
    """`INSERT INTO sessions` of every column but the id, compiled once per dialect."""
    names = [column.name for column in SESSIONS.c if column.name != "id"]
    statement = SESSIONS.insert().values({name: bindparam(name) for name in names})
    compiled = statement.compile(dialect=dialect)
    columns = tuple(compiled.positiontup or ())
    processors: dict[str, Callable[[Any], Any]] = {}
    for name in columns:
        process = SESSIONS.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors[name] = process
    return SessionInsert(compiled.string, columns, processors)


def insert_sessions(session: Session, *, sessions: Sequence[ComputedSession]) -> None:
    """Insert computed sessions as current rows: COPY on PostgreSQL, one executemany on SQLite."""
    if not sessions:
        return
    connection = session.connection()
    now = datetime.now(UTC)
    values: dict[str, list[Any]] = {
        "device_id": [s.device_id for s in sessions],
        "channel": [s.channel or "" for s in sessions],
        "name": [s.name for s in sessions],
        "started_at": [s.started_at for s in sessions],
        "ended_at": [s.ended_at for s in sessions],
        "last_activity_at": [s.last_activity_at for s in sessions],
        "close_reason": [s.close_reason.value for s in sessions],
        "start_gateway_id": [s.start_order[1] for s in sessions],
        "start_seq": [s.start_order[2] for s in sessions],
        "event_keys": [s.events for s in sessions],
        "event_count": [len(s.events) for s in sessions],
    }
    same = {"current": True, "computed_at": now}
    if connection.dialect.name == "postgresql":
        _copy_sessions(connection, values=values, same=same, count=len(sessions))
        return
    # Like `cloud.ingest.bulk_insert`: the column types' own bind processors, column by column,
    # and the driver's executemany (SQLAlchemy's per-row dictionaries cost more than the insert).
    insert = compile_session_insert(connection.dialect)
    columns = []
    for name in insert.columns:
        process = insert.processors.get(name)
        if name in same:
            value = same[name] if process is None else process(same[name])
            columns.append([value] * len(sessions))
            continue
        column = values[name]
        columns.append(column if process is None else [process(value) for value in column])
    connection.exec_driver_sql(insert.sql, list(zip(*columns, strict=True)))


def _copy_sessions(
    connection: Connection, *, values: dict[str, list[Any]], same: dict[str, Any], count: int
) -> None:
    """COPY the rows in through asyncpg (twice as fast as an executemany of INSERTs).

    Runs inside `AsyncSession.run_sync`, whose greenlet lets `await_only` wait for asyncpg.
    asyncpg's binary COPY takes aware datetimes as they are and JSON as text.
    """
    values = {**values, "event_keys": [_dump_keys(keys) for keys in values["event_keys"]]}
    names = [*values, *same]
    columns = [*values.values(), *([value] * count for value in same.values())]
    driver = connection.connection.driver_connection
    assert driver is not None
    await_only(
        driver.copy_records_to_table(
            SESSIONS.name, records=list(zip(*columns, strict=True)), columns=names
        )
    )


def _dump_keys(keys: tuple[EventKey, ...]) -> str:
    return orjson.dumps(keys).decode("utf-8")


# -- reading -------------------------------------------------------------------------------------

MAX_IN_LIST = 500  # more device ids than this: filter in Python rather than a giant IN list


async def sessions_overlapping(
    *,
    session: AsyncSession,
    start: datetime,
    end: datetime,
    device_ids: Collection[str] | None = None,
) -> list[StoredSession]:
    """Current sessions overlapping [start, end), ordered by device, channel and start.

    A still-open session is open to the future; a zero-length session counts when it starts in
    [start, end).
    """
    c = SESSIONS.c
    query = select(
        c.id,
        c.device_id,
        c.channel,
        c.name,
        type_coerce(c.started_at, String),  # raw: parsed by `_utc` (see `load_events`)
        type_coerce(c.ended_at, String),
        type_coerce(c.last_activity_at, String),
        c.close_reason,
        c.event_keys,
    ).where(
        c.current == true(),
        c.started_at < end,
        or_(c.ended_at.is_(None), c.ended_at > start, c.started_at >= start),
    )
    wanted = None if device_ids is None else set(device_ids)
    if wanted is not None and len(wanted) <= MAX_IN_LIST:
        query = query.where(c.device_id.in_(wanted))
    result = await session.execute(query.order_by(c.device_id, c.channel, c.started_at, c.id))
    return [
        StoredSession(
            id=id_,
            device_id=device_id,
            channel=channel or None,
            name=name,
            started_at=_utc(started_at),
            ended_at=None if ended_at is None else _utc(ended_at),
            last_activity_at=_utc(last_activity_at),
            close_reason=CloseReason(close_reason),
            events=tuple([(gateway_id, seq) for gateway_id, seq in event_keys]),
        )
        for (
            id_,
            device_id,
            channel,
            name,
            started_at,
            ended_at,
            last_activity_at,
            close_reason,
            event_keys,
        ) in result.all()
        if wanted is None or device_id in wanted
    ]
