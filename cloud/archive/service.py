"""`archive_before`: move closed months of events to verified files, then out of the database.

A month is *closed* when no invoice run may still correct its invoices (`CORRECTION_MONTHS`:
runs re-rate the finalized invoices of the 12 periods before theirs from the stored events, so
at December 2026 the newest closed month is October 2025) and no draft invoice's period overlaps
it (a draft is re-rated from the stored events). That is far past `ARCHIVE_GRACE`, the day
after its end during which collectors may still cache its partition (`cloud.ingest.partitions`).
Every month with events strictly before `before` must be closed, or nothing is archived.

Per month, oldest first: the month's events, the batches they came in and each batch's whole run
of events (from the database, or from this directory's earlier archive files for months already
archived), and the gateways' keys are written to one file (`cloud.archive.files`), fsynced, read
back and verified. Only then, in one transaction that locks `events` against every writer, the
month's rows are counted again (a late event that arrived meanwhile refuses the drop: run again),
the file is recorded in `archived_months`, each gateway's archived head is raised to the month's
highest seq of it (`archived_heads`, never lowered: the chain goes on past archived events, see
`cloud.ingest.archived_heads`), and the partition is detached and dropped (PostgreSQL) or the
rows deleted (SQLite). A kill at any point loses nothing: before that commit the rows are
still stored, and a run again rewrites the same file name.

A late event of an archived month is stored as any other (its partition is created again); the
next run archives it as the month's next part (`events-YYYY-MM.part2.jsonl.gz`).

Memory: one month's events are held while its file is written (fine for millions of events of a
site; a larger deployment archives more often or per gateway range — not done here).
"""

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, column, delete, func, select, table, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.archive.files import (
    FORMAT,
    ArchiveContents,
    ArchiveInvalid,
    file_name,
    format_time,
    key_at,
    verify_archive,
    write_archive,
)
from cloud.archive.models import ArchivedMonth
from cloud.db import Database, UtcDateTime
from cloud.errors import CollectorError
from cloud.gateways.models import Gateway, GatewayKey
from cloud.ingest.archived_heads import ArchivedHead
from cloud.ingest.models import ReceivedBatch, StoredEvent
from cloud.ingest.partitions import (
    ARCHIVE_GRACE,
    Month,
    month_bounds,
    month_text,
    parse_month,
    partition_name,
    partitions,
)
from shared.events import UsageEvent

CHUNK = 500
# Invoice runs re-rate the finalized invoices of the 12 periods before theirs from the stored
# events (cloud/invoices/adjustments.py, LOOKBACK_PERIODS): a month they may still re-rate stays
# stored, or a correction would credit its archived usage away. 12 periods, the one being run,
# and one for time zones (a local month starts up to 14 h before or after the UTC one).
CORRECTION_MONTHS = 14
assert CORRECTION_MONTHS * timedelta(days=28) > ARCHIVE_GRACE  # see cloud.ingest.partitions
# The invoices table, read here without importing the invoices package (a layer above).
INVOICES = table(
    "invoices",
    column("id"),
    column("account_id"),
    column("period"),
    column("status"),
    column("period_start", UtcDateTime),
    column("period_end", UtcDateTime),
)


class ArchiveRefused(CollectorError):
    """The archive did not run (or stopped): the message says why and what to do."""

    status = 409
    code = "archive_refused"


@dataclass(frozen=True, slots=True)
class ArchivedFile:
    """One month written, verified, recorded and removed from the database."""

    month: str
    part: int
    path: Path
    event_count: int
    batch_count: int
    sha256: str


async def archive_before(
    db: Database, *, before: Month, directory: Path, now: datetime | None = None
) -> list[ArchivedFile]:
    """Archive every month with events strictly before `before`; `ArchiveRefused` if one is not
    closed (then nothing is archived)."""
    moment = now or datetime.now(UTC)
    async with db.transaction() as session:
        months = await months_with_events(session, before=before)
        for month in months:
            await check_closed(session, month, now=moment)
    return [await archive_month(db, month, directory=directory, now=moment) for month in months]


async def months_with_events(session: AsyncSession, *, before: Month) -> list[Month]:
    """The months before `before` that hold events, oldest first."""
    limit = month_bounds(before)[0]
    if session.get_bind().dialect.name == "postgresql":
        connection = await session.connection()
        found = []
        for month in await connection.run_sync(partitions):
            if month < before and await session.scalar(
                text(f"SELECT EXISTS (SELECT 1 FROM {partition_name(month)})")
            ):
                found.append(month)
        return found
    times = await session.scalars(
        select(func.min(StoredEvent.occurred_at)).where(StoredEvent.occurred_at < limit)
    )
    first = next(iter(times), None)
    months: list[Month] = []
    while first is not None:
        month = (first.year, first.month)
        months.append(month)
        following = month_bounds(month)[1]
        first = await session.scalar(
            select(func.min(StoredEvent.occurred_at)).where(
                StoredEvent.occurred_at >= following, StoredEvent.occurred_at < limit
            )
        )
    return months


async def check_closed(session: AsyncSession, month: Month, *, now: datetime) -> None:
    """`ArchiveRefused` unless the month is closed (see the module)."""
    start, end = month_bounds(month)
    name = month_text(month)
    current = now.astimezone(UTC)
    if (current.year * 12 + current.month) - (month[0] * 12 + month[1]) < CORRECTION_MONTHS:
        first = month_text(_months_after(month, CORRECTION_MONTHS))
        raise ArchiveRefused(
            f"{name} is not closed: invoice runs may still correct its invoices from the stored "
            f"events (they re-rate the 12 periods before theirs); it can be archived from "
            f"{first} on; nothing was archived"
        )
    drafts = list(
        await session.execute(
            select(INVOICES.c.id, INVOICES.c.account_id, INVOICES.c.period)
            .where(
                INVOICES.c.status == "draft",
                INVOICES.c.period_start < end,
                INVOICES.c.period_end > start,
            )
            .order_by(INVOICES.c.id)
            .limit(5)
        )
    )
    if drafts:
        listed = ", ".join(f"{i} (account {a}, period {p})" for i, a, p in drafts)
        raise ArchiveRefused(
            f"{name} is not closed: draft invoice(s) {listed} cover it; finalize them first; "
            "nothing was archived"
        )


async def archive_month(
    db: Database, month: Month, *, directory: Path, now: datetime
) -> ArchivedFile:
    """Write, verify, record and remove one closed month (see the module)."""
    name = month_text(month)
    async with db.transaction() as session:
        part = 1 + (
            await session.scalar(
                select(func.coalesce(func.max(ArchivedMonth.part), 0)).where(
                    ArchivedMonth.month == name
                )
            )
            or 0
        )
        contents = await collect_month(session, month, directory=directory, now=now, part=part)
    path = directory / file_name(name, part)
    await asyncio.to_thread(write_archive, path, contents)
    try:
        summary, _ = await asyncio.to_thread(verify_archive, path)
    except ArchiveInvalid as exc:
        raise ArchiveRefused(f"{name}: the file written does not verify: {exc}") from exc
    expected = int(contents.header["event_count"])
    if summary.event_count != expected:
        raise ArchiveRefused(f"{name}: the file read back holds {summary.event_count} events")
    async with db.transaction(write=True) as session:
        await _remove_month(session, month, expected=expected)
        session.add(
            ArchivedMonth(
                month=name,
                part=part,
                file_name=path.name,
                sha256=summary.sha256,
                event_count=summary.event_count,
                batch_count=summary.batch_count,
                archived_at=datetime.now(UTC),
            )
        )
    return ArchivedFile(name, part, path, summary.event_count, summary.batch_count, summary.sha256)


async def collect_month(
    session: AsyncSession, month: Month, *, directory: Path, now: datetime, part: int
) -> ArchiveContents:
    """The file's contents for a month: header, gateways, batches with their whole runs."""
    start, end = month_bounds(month)
    in_month = (StoredEvent.occurred_at >= start, StoredEvent.occurred_at < end)
    own = await session.scalar(select(func.count()).select_from(StoredEvent).where(*in_month))
    batch_ids = sorted(
        await session.scalars(select(StoredEvent.batch_id).where(*in_month).distinct())
    )
    headers: list[ReceivedBatch] = []
    for chunk in _chunks(batch_ids):
        headers.extend(
            await session.scalars(select(ReceivedBatch).where(ReceivedBatch.id.in_(chunk)))
        )
    headers.sort(key=lambda b: (b.gateway_id, b.first_seq, b.id))
    runs = await _run_events(session, headers)
    missing = [
        (b.gateway_id, seq)
        for b in headers
        for seq in range(b.first_seq, b.last_seq + 1)
        if (b.gateway_id, seq) not in runs
    ]
    if missing:
        runs.update(await _archived_events(session, directory, set(missing)))
    gateways = await _gateways(session, {b.gateway_id for b in headers})
    batches = []
    for header in headers:
        gateway = gateways[header.gateway_id]
        events = []
        for seq in range(header.first_seq, header.last_seq + 1):
            event = runs.get((header.gateway_id, seq))
            if event is None:
                raise ArchiveRefused(
                    f"{month_text(month)}: batch {header.id} of {header.gateway_id} needs seq "
                    f"{seq}, which is neither stored nor in an archive file in {directory}"
                )
            events.append(event)
        batches.append(
            {
                "kind": "batch",
                "id": header.id,
                "gateway_id": header.gateway_id,
                "first_seq": header.first_seq,
                "last_seq": header.last_seq,
                "prev_hash": header.prev_hash,
                "last_hash": header.last_hash,
                "signature": header.signature,
                "received_at": format_time(header.received_at),
                "public_key_pem": key_at(
                    gateway["keys"], gateway["public_key_pem"], header.received_at
                ),
                "events": events,
            }
        )
    header_line = {
        "kind": "archive",
        "format": FORMAT,
        "month": month_text(month),
        "part": part,
        "created_at": format_time(now),
        "event_count": own or 0,
        "batch_count": len(batches),
        "gateway_count": len(gateways),
    }
    return ArchiveContents(header=header_line, gateways=gateways, batches=batches)


async def archived_file_names(session: AsyncSession) -> list[str]:
    """The names of every recorded archive file, oldest month first."""
    return list(
        await session.scalars(
            select(ArchivedMonth.file_name).order_by(ArchivedMonth.month, ArchivedMonth.part)
        )
    )


async def archived_ranges(session: AsyncSession) -> list[tuple[datetime, datetime]]:
    """The [start, end) of every archived month (UTC), oldest first."""
    return [month_bounds(parse_month(month)) for month in await archived_months(session)]


async def archived_months(session: AsyncSession) -> list[str]:
    """Every month with a recorded archive file (`YYYY-MM`), oldest first."""
    return sorted(set(await session.scalars(select(ArchivedMonth.month))))


async def _remove_month(session: AsyncSession, month: Month, *, expected: int) -> None:
    start, end = month_bounds(month)
    name = month_text(month)
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        # every writer holds a lock on `events` from its first read; this waits for them all
        await session.execute(text("LOCK TABLE events IN ACCESS EXCLUSIVE MODE"))
    stored = await session.scalar(
        select(func.count())
        .select_from(StoredEvent)
        .where(StoredEvent.occurred_at >= start, StoredEvent.occurred_at < end)
    )
    if stored != expected:
        raise ArchiveRefused(
            f"{name}: {stored} events are stored now, the file holds {expected} (late events "
            "arrived while archiving); nothing of this month was removed: run archive again"
        )
    await _raise_heads(session, month)
    if postgres:
        partition = partition_name(month)
        await session.execute(text(f"ALTER TABLE events DETACH PARTITION {partition}"))
        await session.execute(text(f"DROP TABLE {partition}"))
    else:
        await session.execute(
            delete(StoredEvent).where(
                and_(StoredEvent.occurred_at >= start, StoredEvent.occurred_at < end)
            )
        )


async def _raise_heads(session: AsyncSession, month: Month) -> None:
    """Raise each gateway's archived head to its highest seq in the month (a higher one stays)."""
    start, end = month_bounds(month)
    in_month = (StoredEvent.occurred_at >= start, StoredEvent.occurred_at < end)
    top = (
        select(StoredEvent.gateway_id, func.max(StoredEvent.seq).label("seq"))
        .where(*in_month)
        .group_by(StoredEvent.gateway_id)
        .subquery()
    )
    rows = await session.execute(
        select(StoredEvent.gateway_id, StoredEvent.seq, StoredEvent.prev_hash, StoredEvent.hash)
        .join(top, and_(StoredEvent.gateway_id == top.c.gateway_id, StoredEvent.seq == top.c.seq))
        .where(*in_month)
    )
    heads = [
        {"gateway_id": g, "seq": seq, "prev_hash": prev_hash, "hash": hash_}
        for g, seq, prev_hash, hash_ in rows
    ]
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    for chunk in _chunks(heads):
        upsert = dialect.insert(ArchivedHead).values(chunk)
        await session.execute(
            upsert.on_conflict_do_update(
                index_elements=[ArchivedHead.gateway_id],
                set_={
                    "seq": upsert.excluded.seq,
                    "prev_hash": upsert.excluded.prev_hash,
                    "hash": upsert.excluded.hash,
                },
                where=upsert.excluded.seq > ArchivedHead.seq,
            )
        )


async def _run_events(
    session: AsyncSession, headers: Sequence[ReceivedBatch]
) -> dict[tuple[str, int], dict[str, Any]]:
    """The stored events of the batches' runs, read by merged seq ranges per gateway."""
    ranges: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for header in headers:
        ranges[header.gateway_id].append((header.first_seq, header.last_seq))
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for gateway_id, spans in ranges.items():
        for first, last in _merged(spans):
            rows = await session.scalars(
                select(StoredEvent).where(
                    StoredEvent.gateway_id == gateway_id, StoredEvent.seq.between(first, last)
                )
            )
            for row in rows:
                found[(row.gateway_id, row.seq)] = _wire(row)
    return found


async def _archived_events(
    session: AsyncSession, directory: Path, wanted: set[tuple[str, int]]
) -> dict[tuple[str, int], dict[str, Any]]:
    """Events of months already archived, from their verified files in `directory`."""
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for name in await archived_file_names(session):
        path = directory / name
        try:
            _, contents = await asyncio.to_thread(verify_archive, path)
        except ArchiveInvalid as exc:  # a file moved away: it may not hold the events wanted
            if not await asyncio.to_thread(path.exists):
                continue
            raise ArchiveRefused(f"an earlier archive file does not verify: {exc}") from exc
        for key, event in contents.events().items():
            if key in wanted:
                found[key] = event
        if wanted <= found.keys():
            break
    return found


async def _gateways(session: AsyncSession, ids: set[str]) -> dict[str, dict[str, Any]]:
    ordered = sorted(ids)
    history: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for chunk in _chunks(ordered):
        for key in await session.scalars(
            select(GatewayKey)
            .where(GatewayKey.gateway_id.in_(chunk))
            .order_by(GatewayKey.gateway_id, GatewayKey.valid_from)
        ):
            history[key.gateway_id].append(
                {
                    "public_key_pem": key.public_key_pem,
                    "valid_from": format_time(key.valid_from),
                    "valid_to": None if key.valid_to is None else format_time(key.valid_to),
                }
            )
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(ordered):
        for gateway in await session.scalars(select(Gateway).where(Gateway.id.in_(chunk))):
            found[gateway.id] = {
                "kind": "gateway",
                "gateway_id": gateway.id,
                "public_key_pem": gateway.public_key_pem,
                "keys": history[gateway.id],
            }
    return found


def _wire(row: StoredEvent) -> dict[str, Any]:
    return UsageEvent.model_validate(row, from_attributes=True).to_wire()


def _months_after(month: Month, count: int) -> Month:
    index = month[0] * 12 + month[1] - 1 + count
    return index // 12, index % 12 + 1


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for first, last in sorted(spans):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def _chunks(values: Sequence[Any]) -> Iterable[list[Any]]:
    for index in range(0, len(values), CHUNK):
        yield list(values[index : index + CHUNK])
