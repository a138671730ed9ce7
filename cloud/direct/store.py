"""Storing direct events: dedupe by `(origin, id)`, seal into the source's chain, store as a batch.

One write transaction with a blocking `Session` (`Database.run_write`). Under the source gateway's
row lock, the idempotency keys already stored are looked up; the new events are sealed after the
last stored one, or after the archived head when that is newer (`shared.chain.seal`), signed as
one batch with the source's key and stored by the gateway path's own `store_locked_batch` (bulk
insert, session work, the same links checks; the lock is already held). Duplicates, late
arrivals, unknown devices and rejected records become data-quality incidents of the source's
gateway, in the same transaction. `plan_direct` is the read-only half, for dry runs.
"""

import functools
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import String, Table, any_, bindparam, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from cloud.catalog.models import Device
from cloud.direct.mapping import RowError
from cloud.direct.models import DirectEventKey
from cloud.incidents.models import IncidentKind
from cloud.incidents.sink import record_incident
from cloud.ingest.archived_heads import archived_head
from cloud.ingest.models import StoredEvent
from cloud.ingest.store import lock_gateway, store_locked_batch
from shared.chain import seal
from shared.events import GENESIS_HASH, Batch, EventDraft, UsageEvent
from shared.signing import batch_header, load_private_key, sign

LATE_AFTER = timedelta(hours=24)  # an event received later than this after it occurred is late
LOOKUP_CHUNK = 500  # keys per IN (...) lookup
KEY_COLUMNS = ("event_id", "origin", "gateway_id", "seq")  # the compiled key insert's order
MAX_NAMED = 20  # device ids or reasons named in one incident's detail


class Keyed(NamedTuple):
    """A mapped record: its idempotency key and the event it becomes."""

    origin: str
    event_id: str
    draft: EventDraft


class Rejected(NamedTuple):
    """A record that could not be mapped: its position (row or index) and why."""

    position: int
    event_id: str | None
    error: RowError


class DirectOutcome(NamedTuple):
    """What became of a request's (or an import chunk's) records."""

    stored: int
    duplicates: int
    first_seq: int | None
    last_seq: int | None


class SourceSeal(NamedTuple):
    """The gateway a source's events are chained under, and the PEM key that signs them."""

    gateway_id: str
    private_key_pem: str


def plan_direct(session: Session, *, items: Sequence[Keyed]) -> tuple[list[Keyed], int]:
    """The records not stored yet (first of each key), and how many are duplicates."""
    known = stored_keys(session, keys=[(item.origin, item.event_id) for item in items])
    fresh: list[Keyed] = []
    for item in items:
        key = (item.origin, item.event_id)
        if key not in known:
            known.add(key)
            fresh.append(item)
    return fresh, len(items) - len(fresh)


def store_direct(
    session: Session,
    *,
    seal_with: SourceSeal,
    items: Sequence[Keyed],
    rejected: Sequence[Rejected],
    received_at: datetime,
) -> DirectOutcome:
    """Store the new records as the next run of the source's chain; record quality incidents."""
    lock_gateway(session, gateway_id=seal_with.gateway_id)
    fresh, duplicates = plan_direct(session, items=items)
    outcome = DirectOutcome(0, duplicates, None, None)
    if fresh:
        events = seal_events(session, seal_with=seal_with, drafts=[item.draft for item in fresh])
        store_locked_batch(session, batch=signed_batch(seal_with, events))
        insert_keys(session, items=fresh, events=events)
        outcome = DirectOutcome(len(events), duplicates, events[0].seq, events[-1].seq)
        note_late(session, gateway_id=seal_with.gateway_id, events=events, now=received_at)
        note_unknown_devices(session, gateway_id=seal_with.gateway_id, events=events)
    note_duplicates(session, gateway_id=seal_with.gateway_id, count=duplicates, of=len(items))
    note_rejected(session, gateway_id=seal_with.gateway_id, rejected=rejected)
    return outcome


def stored_keys(session: Session, *, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of `keys` are stored already."""
    # Per origin, `event_id IN (...) AND origin = :o`: one seek per id in the primary key
    # (event_id, origin) on both databases. A row value `(origin, event_id) IN (...)` scanned the
    # whole index on SQLite and took PostgreSQL ~80 ms to plan (bench/direct_ingest.py).
    ids_of: dict[str, list[str]] = {}
    for origin, event_id in dict.fromkeys(keys):
        ids_of.setdefault(origin, []).append(event_id)
    found: set[tuple[str, str]] = set()
    postgresql = session.get_bind().dialect.name == "postgresql"
    for origin, event_ids in ids_of.items():
        for start in range(0, len(event_ids), LOOKUP_CHUNK):
            chunk = event_ids[start : start + LOOKUP_CHUNK]
            # PostgreSQL: one array parameter rather than an IN list of 500 parameters.
            matches = (
                DirectEventKey.event_id == any_(bindparam("event_ids", chunk, type_=ARRAY(String)))
                if postgresql
                else DirectEventKey.event_id.in_(chunk)
            )
            rows = session.scalars(
                select(DirectEventKey.event_id).where(DirectEventKey.origin == origin, matches)
            )
            found.update((origin, event_id) for event_id in rows)
    return found


def seal_events(
    session: Session, *, seal_with: SourceSeal, drafts: Sequence[EventDraft]
) -> list[UsageEvent]:
    """`drafts` sealed as the next seqs of the source's chain, after its newest event: the last
    stored one or the archived head (a source whose events were all archived goes on from it)."""
    last = session.execute(
        select(StoredEvent.seq, StoredEvent.hash)
        .where(StoredEvent.gateway_id == seal_with.gateway_id)
        .order_by(StoredEvent.seq.desc())
        .limit(1)
    ).first()
    heads = [(0, GENESIS_HASH), archived_head(session, gateway_id=seal_with.gateway_id)]
    if last is not None:
        heads.append((last[0], last[1]))
    seq, prev_hash = max(head for head in heads if head is not None)
    events: list[UsageEvent] = []
    for draft in drafts:
        seq += 1
        event = seal(draft, gateway_id=seal_with.gateway_id, seq=seq, prev_hash=prev_hash)
        events.append(event)
        prev_hash = event.hash
    return events


def signed_batch(seal_with: SourceSeal, events: Sequence[UsageEvent]) -> Batch:
    """The events as one batch, signed with the source's key like a gateway signs its own."""
    first, last = events[0], events[-1]
    header = batch_header(
        gateway_id=seal_with.gateway_id,
        first_seq=first.seq,
        last_seq=last.seq,
        prev_hash=first.prev_hash,
        last_hash=last.hash,
    )
    # Built here from sealed events: `Batch`'s validation would only re-check what seal() made.
    return Batch.model_construct(
        gateway_id=seal_with.gateway_id,
        first_seq=first.seq,
        last_seq=last.seq,
        prev_hash=first.prev_hash,
        last_hash=last.hash,
        signature=sign(source_private_key(seal_with.private_key_pem), header),
        events=tuple(events),
    )


@functools.lru_cache(maxsize=64)
def source_private_key(pem: str) -> Ed25519PrivateKey:
    """A source's signing key from its PEM (cached: loading a PEM costs more than signing)."""
    return load_private_key(pem.encode("ascii"))


def insert_keys(session: Session, *, items: Sequence[Keyed], events: Sequence[UsageEvent]) -> None:
    """Remember each stored record's key, in one executemany of a compiled INSERT."""
    connection = session.connection()
    rows = [
        (item.event_id, item.origin, event.gateway_id, event.seq)
        for item, event in zip(items, events, strict=True)
    ]
    connection.exec_driver_sql(_compiled_key_insert(connection.dialect), rows)


@functools.lru_cache(maxsize=8)
def _compiled_key_insert(dialect: Dialect) -> str:
    # Positional, in this column order; the generic executemany of dictionaries costs more than
    # the insert itself at import sizes (same reasoning as cloud.ingest.bulk_insert).
    table = DirectEventKey.__table__
    assert isinstance(table, Table)
    statement = insert(table).values({name: bindparam(name) for name in KEY_COLUMNS})
    compiled = statement.compile(dialect=dialect)
    assert tuple(compiled.positiontup or ()) == KEY_COLUMNS
    return compiled.string


def note_late(
    session: Session, *, gateway_id: str, events: Sequence[UsageEvent], now: datetime
) -> None:
    """An incident for the events received more than `LATE_AFTER` after they occurred."""
    late = [event for event in events if now - event.occurred_at > LATE_AFTER]
    if late:
        oldest = min(event.occurred_at for event in late)
        record_incident(
            session,
            gateway_id=gateway_id,
            kind=IncidentKind.LATE_ARRIVAL,
            first_seq=late[0].seq,
            last_seq=late[-1].seq,
            evidence={"seqs": [event.seq for event in late]},
            detail=f"{len(late)} event(s) arrived more than {LATE_AFTER} after they occurred, "
            f"the oldest from {oldest.isoformat()}",
        )


def note_unknown_devices(
    session: Session, *, gateway_id: str, events: Sequence[UsageEvent]
) -> None:
    """An incident naming the devices the catalog does not know (their usage stays unbilled)."""
    named = sorted({event.device_id for event in events})
    known: set[str] = set()
    for start in range(0, len(named), LOOKUP_CHUNK):
        chunk = named[start : start + LOOKUP_CHUNK]
        known.update(session.scalars(select(Device.id).where(Device.id.in_(chunk))))
    unknown = [device for device in named if device not in known]
    if unknown:
        record_incident(
            session,
            gateway_id=gateway_id,
            kind=IncidentKind.UNKNOWN_DEVICE,
            first_seq=events[0].seq,
            last_seq=events[-1].seq,
            detail=f"{len(unknown)} device(s) not in the catalog, held as unbilled: "
            + ", ".join(unknown[:MAX_NAMED])
            + (" ..." if len(unknown) > MAX_NAMED else ""),
        )


def note_duplicates(session: Session, *, gateway_id: str, count: int, of: int) -> None:
    """An incident for records whose `(origin, id)` was stored before (or twice in one go)."""
    if count:
        record_incident(
            session,
            gateway_id=gateway_id,
            kind=IncidentKind.DUPLICATE_DELIVERY,
            detail=f"{count} of {of} events already stored (same source and id)",
        )


def note_rejected(session: Session, *, gateway_id: str, rejected: Iterable[Rejected]) -> None:
    """An incident for the records that could not be stored, with the first reasons."""
    rejected = list(rejected)
    if rejected:
        reasons = "; ".join(
            f"#{r.position} {r.error.field}: {r.error.reason}" for r in rejected[:MAX_NAMED]
        )
        record_incident(
            session,
            gateway_id=gateway_id,
            kind=IncidentKind.REJECTED_EVENT,
            detail=f"{len(rejected)} record(s) rejected: {reasons}",
        )
