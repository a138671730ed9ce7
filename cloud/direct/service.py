"""Direct sources: create and describe them, take their CloudEvents, import their files.

A source is created with its mapping; the collector registers a gateway `source:<id>` for it with
a fresh Ed25519 key, and every stored event of the source is sealed into that gateway's chain
(`cloud.direct.store`). From there on it is an ordinary stored event: sessions, bindings, rating,
invoices and evidence treat it exactly like a gateway's.
"""

import functools
import hashlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from cloud.auth.service import IssuedKey, create_api_key, ingest_scope
from cloud.db import Database
from cloud.direct import cloudevents
from cloud.direct.cloudevents import CloudEventEnvelope
from cloud.direct.files import FileFormat, FileRow, file_columns, read_rows
from cloud.direct.mapping import (
    IMPORT_ORIGIN_PREFIX,
    FileColumns,
    Origin,
    RowError,
    SourceMapping,
    lookup,
    make_draft,
)
from cloud.direct.models import ImportRun, Source, SourceUri
from cloud.direct.records import MAX_ID, shown_id
from cloud.direct.schemas import (
    EventsReceipt,
    ImportReport,
    RecordError,
    SourceCreate,
    SourceView,
)
from cloud.direct.store import (
    DirectOutcome,
    Keyed,
    Rejected,
    SourceSeal,
    plan_direct,
    store_direct,
)
from cloud.direct.times import parse_file_time, parse_rfc3339
from cloud.errors import InvalidEvent, InvalidSource, SourceExists, SourceNotFound
from cloud.gateways.service import register_gateway
from cloud.incidents.counts import count_incidents
from cloud.ingest.models import StoredEvent
from cloud.settings import Limits
from shared.canonical import dump_canonical
from shared.events import EventDraft
from shared.signing import private_key_pem, public_key_pem

GATEWAY_PREFIX = "source:"
IMPORT_CHUNK_ROWS = 5_000  # rows per write transaction of an import
MAX_REPORTED_ROWS = 1_000  # rejected rows listed in an import report

Progress = Callable[[int, int], None]
# With the ingest log (cloud.bus): append a request's mapped records instead of storing them.
DirectAppend = Callable[
    [str, SourceSeal, Sequence[Keyed], Sequence[Rejected], datetime], Awaitable[None]
]


# -- sources --------------------------------------------------------------------------------------


async def add_source(*, session: AsyncSession, spec: SourceCreate) -> Source:
    """Create a source, its gateway and sealing key; `SourceExists` if the id or a URI is taken."""
    if await session.get(Source, spec.id) is not None:
        raise SourceExists(f"source {spec.id!r} exists", detail={"source": spec.id})
    taken = await session.scalars(
        select(SourceUri).where(SourceUri.uri.in_(spec.mapping.ce_sources))
    )
    for owned in taken:
        raise SourceExists(
            f"CloudEvents source {owned.uri!r} already belongs to source {owned.source_id!r}",
            detail={"uri": owned.uri, "source": owned.source_id},
        )
    key = Ed25519PrivateKey.generate()
    gateway_id = GATEWAY_PREFIX + spec.id
    await register_gateway(
        session=session,
        gateway_id=gateway_id,
        public_key=public_key_pem(key.public_key()).encode("ascii"),
    )
    source = Source(
        id=spec.id,
        gateway_id=gateway_id,
        mapping=spec.mapping.model_dump(mode="json"),
        private_key_pem=private_key_pem(key).decode("ascii"),
        created_at=datetime.now(UTC),
    )
    session.add(source)
    session.add_all(SourceUri(uri=uri, source_id=spec.id) for uri in spec.mapping.ce_sources)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent create of the same id or URI
        raise SourceExists(f"source {spec.id!r} or one of its URIs was just taken") from exc
    return source


async def find_source(*, session: AsyncSession, source_id: str) -> Source:
    """The source with that id; `SourceNotFound` otherwise."""
    source = await session.get(Source, source_id)
    if source is None:
        raise SourceNotFound(f"no source {source_id!r}", detail={"source": source_id})
    return source


def source_mapping(source: Source) -> SourceMapping:
    """The stored mapping, checked again (it was checked when stored)."""
    try:
        return SourceMapping.model_validate(source.mapping)
    except ValidationError as exc:  # only if someone edited the row by hand
        raise InvalidSource(f"the stored mapping of source {source.id!r} is invalid") from exc


async def describe_source(*, session: AsyncSession, source_id: str) -> SourceView:
    """A source with its stored event count and its data-quality incidents by kind."""
    source = await find_source(session=session, source_id=source_id)
    count, last_seq = (
        await session.execute(
            select(func.count(), func.max(StoredEvent.seq)).where(
                StoredEvent.gateway_id == source.gateway_id
            )
        )
    ).one()
    return SourceView(
        id=source.id,
        gateway_id=source.gateway_id,
        mapping=source.mapping,
        created_at=source.created_at,
        events_stored=count,
        last_seq=last_seq,
        incidents=await count_incidents(session=session, gateway_id=source.gateway_id),
    )


async def list_sources(*, session: AsyncSession) -> list[str]:
    """The ids of all sources."""
    return list(await session.scalars(select(Source.id).order_by(Source.id)))


async def create_ingest_key(*, session: AsyncSession, source_id: str, name: str) -> IssuedKey:
    """An API key that may send events and files for this source only."""
    await find_source(session=session, source_id=source_id)
    return await create_api_key(session=session, name=name, scope=ingest_scope(source_id))


async def _load(db: Database, source_id: str) -> tuple[SourceSeal, SourceMapping]:
    async with db.transaction() as session:
        source = await find_source(session=session, source_id=source_id)
        return SourceSeal(source.gateway_id, source.private_key_pem), source_mapping(source)


# -- CloudEvents ----------------------------------------------------------------------------------


async def ingest_cloudevents(
    *,
    db: Database,
    source_id: str,
    content_type: str | None,
    body: bytes,
    limits: Limits,
    append: DirectAppend | None = None,
) -> EventsReceipt:
    """Store a request's CloudEvents once each; rejected events are reported, never half-stored.

    A structured-mode event that cannot be stored is refused with `InvalidEvent`; a batch stores
    its good events and lists the rejected ones (index, id, attribute, reason) in the receipt.
    """
    mode = cloudevents.media_type(content_type)
    documents, check_values = cloudevents.read_events(
        body, mode=mode, max_events=limits.max_batch_events
    )
    seal_with, mapping = await _load(db, source_id)
    received_at = datetime.now(UTC)
    items: list[Keyed] = []
    rejected: list[Rejected] = []
    for index, document in enumerate(documents):
        try:
            keyed = keyed_cloudevent(
                document, mapping=mapping, received_at=received_at, check_values=check_values
            )
            items.append(keyed)
        except RowError as error:
            event_id = shown_id(document.get("id")) if isinstance(document, dict) else None
            rejected.append(Rejected(index, event_id, error))
    if append is not None:  # the sink stores them (cloud.bus.direct): nothing is known yet
        await append(source_id, seal_with, items, rejected, received_at)
        outcome = DirectOutcome(0, 0, None, None)
    else:
        outcome = await _store(db, seal_with, items, rejected, received_at)
    if mode == cloudevents.STRUCTURED and rejected:
        refused = rejected[0]
        raise InvalidEvent(
            f"event cannot be stored: {refused.error.field}: {refused.error.reason}",
            detail={
                "field": refused.error.field,
                "reason": refused.error.reason,
                "id": refused.event_id,
            },
        )
    return EventsReceipt(
        source=source_id,
        gateway_id=seal_with.gateway_id,
        received=len(documents),
        stored=outcome.stored,
        duplicates=outcome.duplicates,
        rejected=[record_error(r) for r in rejected],
        first_seq=outcome.first_seq,
        last_seq=outcome.last_seq,
        **({"queued": True} if append is not None else {}),  # unset: not in the answer
    )


async def _store(
    db: Database,
    seal_with: SourceSeal,
    items: Sequence[Keyed],
    rejected: Sequence[Rejected],
    received_at: datetime,
) -> DirectOutcome:
    """`store_direct` in one write transaction."""
    work = functools.partial(
        store_direct, seal_with=seal_with, items=items, rejected=rejected, received_at=received_at
    )
    return await db.run_write(work)


def keyed_cloudevent(
    document: Any, *, mapping: SourceMapping, received_at: datetime, check_values: bool = True
) -> Keyed:
    """The event one CloudEvent becomes, keyed by `(source, id)`; `RowError` if it cannot."""
    envelope = cloudevents.read_envelope(document, check_values=check_values)
    if envelope.source not in mapping.ce_sources:
        raise RowError("source", f"{envelope.source!r} is not a source this key may send")
    if not envelope.subject:
        raise RowError("subject", "required: the subject names the device")
    occurred = parse_rfc3339(envelope.time, field="time")
    draft = make_draft(
        rule=mapping.rule_for(envelope.type),
        record=envelope.data or {},
        device_id=envelope.subject,
        occurred_at=occurred.moment,
        observed_at=received_at,
        clock=mapping.clock,
        origin=_ce_origin(envelope, occurred.note),
        device_field="subject",
    )
    return Keyed(envelope.source, envelope.id, draft)


def _ce_origin(envelope: CloudEventEnvelope, time_note: dict[str, str] | None) -> Origin:
    # `ce_time`: the time as sent, when it is finer than the microseconds stored.
    detail = {"ce_source": envelope.source, "ce_type": envelope.type, **(time_note or {})}
    return Origin("cloudevents", envelope.id, detail)


def record_error(rejected: Rejected) -> RecordError:
    """The API form of a rejected record."""
    return RecordError(
        position=rejected.position,
        id=rejected.event_id,
        field=rejected.error.field,
        reason=rejected.error.reason,
    )


# -- file imports ---------------------------------------------------------------------------------


async def import_file(
    *,
    db: Database,
    source_id: str,
    data: bytes,
    filename: str,
    file_format: FileFormat,
    dry_run: bool = False,
    progress: Progress | None = None,
    append: DirectAppend | None = None,
) -> ImportReport:
    """Import a CSV or JSON Lines file: good rows stored once each, bad rows reported.

    `InvalidImport` (nothing stored) if the file cannot be read at all. Rows are stored in
    transactions of `IMPORT_CHUNK_ROWS`; an import cut off midway is completed by importing the
    same file again, which stores only what is missing. With `append` (the ingest log) each
    chunk's mapped and rejected rows are appended as one message instead and a sink stores them
    exactly as here; the report then says `queued` and counts nothing stored yet.
    """
    queued = append is not None and not dry_run
    seal_with, mapping = await _load(db, source_id)
    rows = read_rows(data, file_format, mapping)  # checks the header before anything is stored
    total = max(1, data.count(b"\n"))
    origin = IMPORT_ORIGIN_PREFIX + source_id
    tally = _Tally()
    seen: set[tuple[str, str]] = set()
    for chunk in _chunks(rows, IMPORT_CHUNK_ROWS):
        received_at = datetime.now(UTC)
        items, rejected = map_rows(
            chunk, mapping=mapping, origin=origin, filename=filename, received_at=received_at
        )
        if dry_run:
            outcome = await _dry_run(db, items=items, seen=seen)
        elif append is not None:  # the sink stores them (cloud.bus.direct)
            await append(source_id, seal_with, items, rejected, received_at)
            outcome = DirectOutcome(0, 0, None, None)
        else:
            outcome = await _store(db, seal_with, items, rejected, received_at)
        tally.add(rows=len(chunk), outcome=outcome, rejected=rejected)
        if progress is not None:
            progress(min(chunk[-1].row, total), total)
    report = ImportReport(
        source=source_id,
        filename=filename,
        file_format=file_format.value,
        sha256=hashlib.sha256(data).hexdigest(),
        dry_run=dry_run,
        rows=tally.rows,
        stored=tally.stored,
        duplicates=tally.duplicates,
        rejected=tally.rejected,
        errors=tally.errors,
        errors_truncated=tally.rejected > len(tally.errors),
        queued=queued,
    )
    if dry_run:
        return report
    import_id = await db.run_write(functools.partial(_record, report=report))
    return report.model_copy(update={"import_id": import_id})


class _Tally:
    """Running totals of an import."""

    def __init__(self) -> None:
        self.rows = self.stored = self.duplicates = self.rejected = 0
        self.errors: list[RecordError] = []

    def add(self, *, rows: int, outcome: DirectOutcome, rejected: Sequence[Rejected]) -> None:
        self.rows += rows
        self.stored += outcome.stored
        self.duplicates += outcome.duplicates
        self.rejected += len(rejected)
        room = MAX_REPORTED_ROWS - len(self.errors)
        self.errors += [record_error(r) for r in rejected[: max(0, room)]]


def _chunks(rows: Iterable[FileRow], size: int) -> Iterator[list[FileRow]]:
    chunk: list[FileRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _dry_run(
    db: Database, *, items: Sequence[Keyed], seen: set[tuple[str, str]]
) -> DirectOutcome:
    """What storing `items` would do, given what is stored and what the file had before."""
    unseen = [item for item in items if (item.origin, item.event_id) not in seen]
    async with db.transaction() as session:
        fresh, _ = await session.run_sync(lambda sync: plan_direct(sync, items=unseen))
    seen.update((item.origin, item.event_id) for item in items)
    return DirectOutcome(len(fresh), len(items) - len(fresh), None, None)


def map_rows(
    rows: Sequence[FileRow],
    *,
    mapping: SourceMapping,
    origin: str,
    filename: str,
    received_at: datetime,
) -> tuple[list[Keyed], list[Rejected]]:
    """The file rows as keyed events, and the rows that cannot be stored."""
    columns = file_columns(mapping)
    zone = None if columns.time_zone is None else ZoneInfo(columns.time_zone)
    items: list[Keyed] = []
    rejected: list[Rejected] = []
    for row in rows:
        try:
            if row.error is not None:
                raise row.error
            assert row.record is not None
            items.append(
                keyed_row(
                    row,
                    mapping=mapping,
                    columns=columns,
                    zone=zone,
                    origin=origin,
                    filename=filename,
                    received_at=received_at,
                )
            )
        except RowError as error:
            rejected.append(Rejected(row.row, _row_id(row, columns), error))
    return items, rejected


def keyed_row(
    row: FileRow,
    *,
    mapping: SourceMapping,
    columns: FileColumns,
    zone: ZoneInfo | None,
    origin: str,
    filename: str,
    received_at: datetime,
) -> Keyed:
    """The event one file row becomes, keyed by its id column or its content's SHA-256."""
    assert row.record is not None
    record = row.record
    event_type = None
    if columns.type is not None:
        event_type = _text(record, columns.type, "an event type is required")
    try:
        rule = mapping.rule_for(event_type)
    except RowError as error:
        raise RowError(columns.type or "type", error.reason) from None
    row_id = None if columns.id is None else _row_id_text(record, columns.id)
    occurred = parse_file_time(
        lookup(record, columns.time),
        field=columns.time,
        zone=zone,
        ambiguous=columns.ambiguous_times,
        missing=columns.missing_times,
    )
    detail: dict[str, str | int] = {"import_file": filename, "import_row": row.row}
    detail.update(occurred.note or {})
    draft = make_draft(
        rule=rule,
        record=record,
        device_id=_text(record, columns.device, "a device id is required"),
        occurred_at=occurred.moment,
        observed_at=received_at,
        clock=mapping.clock,
        origin=Origin("import", row_id or "", detail),
        device_field=columns.device,
    )
    if row_id is None:
        row_id = content_id(draft)
        draft = draft.model_copy(update={"attrs": {**draft.attrs, "origin_id": row_id}})
    return Keyed(origin, row_id, draft)


def _text(record: dict[str, Any], column: str, missing: str) -> str:
    value = lookup(record, column)
    if value is None or value == "":
        raise RowError(column, missing)
    return value if isinstance(value, str) else str(value)


def _row_id_text(record: dict[str, Any], column: str) -> str:
    row_id = _text(record, column, "a row id is required")
    if len(row_id) > MAX_ID:
        raise RowError(column, f"is {len(row_id):,} characters long; a row id may have {MAX_ID}")
    return row_id


def _row_id(row: FileRow, columns: FileColumns) -> str | None:
    if row.record is None or columns.id is None:
        return None
    value = lookup(row.record, columns.id)
    return shown_id(value if value is None or isinstance(value, str) else str(value))


def content_id(draft: EventDraft) -> str:
    """A row's id when the file has none: the SHA-256 of what it means (not where it was)."""
    meaning = {
        "device_id": draft.device_id,
        "channel": draft.channel,
        "name": draft.name,
        "kind": draft.kind.value,
        "quantity": None if draft.quantity is None else str(draft.quantity),
        "unit": draft.unit,
        "occurred_at": draft.occurred_at.isoformat(),
    }
    return hashlib.sha256(dump_canonical(meaning)).hexdigest()


def _record(session: Session, *, report: ImportReport) -> int:
    result = session.execute(
        insert(ImportRun)
        .values(
            source_id=report.source,
            filename=report.filename[-255:],
            sha256=report.sha256,
            file_format=report.file_format,
            rows=report.rows,
            stored=report.stored,
            duplicates=report.duplicates,
            rejected=report.rejected,
            errors=[error.model_dump(mode="json") for error in report.errors],
            created_at=datetime.now(UTC),
        )
        .returning(ImportRun.id)
    )
    return int(result.scalar_one())
