"""Monthly partitions of `events` on PostgreSQL: each batch's months exist before its insert.

Migration 0017 partitions `events` by RANGE (occurred_at), one partition per UTC month named
`events_YYYY_MM`. `ensure_partitions` runs in the batch's write transaction before anything is
inserted (`cloud.ingest.store.insert_new`) and creates the partitions its events' months lack, so
an event of a month far from now still gets its month. The hot path is a set lookup: the months
known to exist are cached per process and engine.

Only *hot* months are cached: a month whose end lies less than `ARCHIVE_GRACE` in the past, which
`tollgate-cloud archive` never archives (it keeps far more: cloud/archive/service.py), so its
partition cannot be dropped under a running collector. An event of an older month (late, or a
backfill) looks its partition up every time: the archive drops one only under ACCESS EXCLUSIVE
on `events`, which waits for every transaction that read it, and a batch's transaction has read
its stored neighbours before it gets here, so the look-up and the insert see the same partitions
(a late event either commits first, and the archive's recount keeps the month, or comes after
the drop and creates the partition again).

Creating one is safe when several processes need the same month at once: a transaction-level
advisory lock per month serializes the creators and each looks again under it. The partition is
created as a plain table and then attached (`ALTER TABLE ... ATTACH PARTITION`, which takes
SHARE UPDATE EXCLUSIVE on the parent, not ACCESS EXCLUSIVE like `CREATE TABLE ... PARTITION OF`):
batches of other months keep reading and inserting meanwhile, and a creator waiting for another
one holds nothing that one needs. Attaching gives the new partition the parent's indexes and
foreign keys. SQLite has one table: nothing to do.
"""

import weakref
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from shared.events import UsageEvent

ARCHIVE_GRACE = timedelta(days=1)  # a month is archivable this long after its end at the earliest
# the advisory lock class of partition creators (pg_advisory_xact_lock(int4, int4)): the second
# key is the month as YYYYMM
CREATE_LOCK = 1_701_701

Month = tuple[int, int]  # (year, month)

_known: "weakref.WeakKeyDictionary[Engine, set[Month]]" = weakref.WeakKeyDictionary()
_partitioned: "weakref.WeakKeyDictionary[Engine, bool]" = weakref.WeakKeyDictionary()


def ensure_partitions(session: Session, events: Sequence[UsageEvent]) -> None:
    """Create the month partitions `events` need (PostgreSQL), in the session's transaction."""
    if not events:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return
    engine = connection.engine
    known = _known.get(engine)
    hot_from = hot_floor(datetime.now(UTC))
    times = [event.occurred_at for event in events]
    # the earliest and the latest in one known month: a third of the cost of a set of months
    first, last = min(times), max(times)
    if known is not None and first.tzinfo is UTC and last.tzinfo is UTC:
        month = (first.year, first.month)
        if month == (last.year, last.month) and month in known and month >= hot_from:
            return
    months = {month_of(moment) for moment in times}
    if not _is_partitioned(connection, engine):
        return
    known = _known.setdefault(engine, set())
    for month in sorted(months):
        if month in known and month >= hot_from:
            continue
        ensure_month(connection, month)
        if month >= hot_from:
            known.add(month)


def ensure_month(connection: Connection, month: Month) -> bool:
    """Create and attach the month's partition unless it exists; True if it was created."""
    name = partition_name(month)
    if _exists(connection, name):
        return False
    connection.execute(
        text("SELECT pg_advisory_xact_lock(:lock, :key)"),
        {"lock": CREATE_LOCK, "key": month_key(month)},
    )
    if _exists(connection, name):  # another process created it while this one waited
        return False
    start, end = month_bounds(month)
    connection.exec_driver_sql(f"CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS)")
    connection.exec_driver_sql(
        f"ALTER TABLE events ATTACH PARTITION {name} "
        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    )
    return True


def partitions(connection: Connection) -> list[Month]:
    """The months that have a partition attached to `events`, oldest first."""
    rows = connection.execute(
        text(
            "SELECT child.relname FROM pg_inherits "
            "JOIN pg_class child ON child.oid = pg_inherits.inhrelid "
            "WHERE pg_inherits.inhparent = 'events'::regclass"
        )
    )
    return sorted(parse_partition_name(name) for (name,) in rows)


def hot_floor(now: datetime) -> Month:
    """The oldest month that cannot be archived at `now` (it ended less than the grace ago)."""
    moment = now - ARCHIVE_GRACE
    return moment.year, moment.month


def month_of(moment: datetime) -> Month:
    """The UTC month of an aware time."""
    utc = moment.astimezone(UTC)
    return utc.year, utc.month


def month_bounds(month: Month) -> tuple[datetime, datetime]:
    """The first instant of the month and of the next one (UTC)."""
    year, number = month
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return start, end


def month_text(month: Month) -> str:
    """`YYYY-MM`."""
    return f"{month[0]:04d}-{month[1]:02d}"


def parse_month(value: str) -> Month:
    """A `YYYY-MM` month; ValueError otherwise."""
    parsed = date.fromisoformat(f"{value}-01") if len(value) == 7 else None
    if parsed is None:
        raise ValueError(f"{value!r} is not a month (YYYY-MM)")
    return parsed.year, parsed.month


def partition_name(month: Month) -> str:
    """`events_YYYY_MM`."""
    return f"events_{month[0]:04d}_{month[1]:02d}"


def parse_partition_name(name: str) -> Month:
    """The month of `events_YYYY_MM`."""
    _, year, number = name.split("_")
    return int(year), int(number)


def month_key(month: Month) -> int:
    """The month as the advisory lock's second key, YYYYMM."""
    return month[0] * 100 + month[1]


def months_between(first: Month, last: Month) -> Iterable[Month]:
    """Every month from `first` to `last`, both included."""
    year, number = first
    while (year, number) <= last:
        yield year, number
        year, number = (year + 1, 1) if number == 12 else (year, number + 1)


def forget(engine: Engine) -> None:
    """Drop the process's cache for an engine (after a migration rebuilt the table)."""
    _known.pop(engine, None)
    _partitioned.pop(engine, None)


def _is_partitioned(connection: Connection, engine: Engine) -> bool:
    cached = _partitioned.get(engine)
    if cached is None:
        cached = bool(
            connection.scalar(
                text(
                    "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table "
                    "WHERE partrelid = to_regclass('events'))"
                )
            )
        )
        _partitioned[engine] = cached
    return cached


def _exists(connection: Connection, name: str) -> bool:
    # a scan of pg_class under the statement's snapshot, not to_regclass: a name lookup may
    # answer from this backend's cached "no such relation" after another one created it
    found = connection.scalar(
        text(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class "
            "WHERE relname = :name AND relnamespace = current_schema()::regnamespace)"
        ),
        {"name": name},
    )
    return found is True
