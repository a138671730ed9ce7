"""Storing a verified batch: one write transaction with a blocking `Session` (`Database.run_write`).

Under the gateway's lock the batch must link to the stored chain on both sides; its events are
split into those already stored with the same hash (a duplicate delivery, acknowledged again) and
new ones, stored with one bulk insert. A stored seq arriving with another hash refuses the whole
batch, and so does a broken link: the transaction is rolled back and nothing is stored. The new
events are published on the change feed (`cloud.ingest.feed`) inside the same transaction.

Archived months are part of the chain too: the gateway's archived head
(`cloud.ingest.archived_heads`) counts as a stored event in the links, and every seq at or below
it is a duplicate. It is read in the statement that reads the stored links (`chain_links`), so
the hot path keeps one round trip, and under the same lock on `events` that the archive waits for.
"""

from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import false, insert, select, true, union_all
from sqlalchemy.orm import Session

from cloud.errors import ChainBroken, SeqConflict, UnknownGateway
from cloud.gateways.models import Gateway
from cloud.incidents.models import IncidentKind
from cloud.incidents.sink import record_incident
from cloud.ingest.archived_heads import ArchivedHead
from cloud.ingest.bulk_insert import insert_events
from cloud.ingest.feed import StoredBatch, publish
from cloud.ingest.models import ReceivedBatch, StoredEvent
from cloud.ingest.partitions import ensure_partitions
from cloud.ingest.schemas import IngestReceipt
from shared.events import GENESIS_HASH, Batch, UsageEvent

MAX_REPORTED_SEQS = 20


class StoredLink(NamedTuple):
    """The chain hashes of one stored event."""

    prev_hash: str
    hash: str


def store_batch(session: Session, *, batch: Batch) -> IngestReceipt:
    """Store a verified batch's new events once, in the session's (write) transaction."""
    lock_gateway(session, gateway_id=batch.gateway_id)
    return store_locked_batch(session, batch=batch)


def store_locked_batch(session: Session, *, batch: Batch) -> IngestReceipt:
    """`store_batch` for a caller already holding the gateway's lock in this transaction."""
    links, archived_seq = chain_links(session, batch=batch)
    # a rewritten stored seq is a conflict before a broken link
    fresh = new_events(batch, links, archived_seq=archived_seq)
    check_links(batch, links)
    duplicates = len(batch.events) - len(fresh)
    batch_id: int | None = None
    received_at = datetime.now(UTC)
    if fresh:
        batch_id, received_at = insert_new(session, batch=batch, events=fresh)
    publish(
        session,
        StoredBatch(
            gateway_id=batch.gateway_id,
            batch_id=batch_id,
            received_at=received_at,
            events=fresh,
            duplicates=duplicates,
        ),
    )
    if duplicates:
        record_incident(
            session,
            gateway_id=batch.gateway_id,
            kind=IncidentKind.DUPLICATE_DELIVERY,
            first_seq=batch.first_seq,
            last_seq=batch.last_seq,
            detail=f"{duplicates} of {len(batch.events)} events already stored",
            evidence={"seqs": _seqs_not_in(batch, fresh)},
        )
    return IngestReceipt(
        gateway_id=batch.gateway_id,
        first_seq=batch.first_seq,
        last_seq=batch.last_seq,
        stored=len(fresh),
        duplicates=duplicates,
    )


def lock_gateway(session: Session, *, gateway_id: str) -> None:
    """Lock the gateway's row until the transaction ends; `UnknownGateway` if it is gone."""
    # PostgreSQL: serializes this gateway's batches across collector processes. SQLite ignores
    # FOR UPDATE; its write transactions already start with BEGIN IMMEDIATE (see cloud.db).
    locked = session.scalar(select(Gateway.id).where(Gateway.id == gateway_id).with_for_update())
    if locked is None:
        raise unknown_gateway(gateway_id)


def stored_links(session: Session, *, batch: Batch) -> dict[int, StoredLink]:
    """Stored events from just before the batch to just after it, by seq."""
    rows = session.execute(
        select(StoredEvent.seq, StoredEvent.prev_hash, StoredEvent.hash).where(
            StoredEvent.gateway_id == batch.gateway_id,
            StoredEvent.seq.between(batch.first_seq - 1, batch.last_seq + 1),
        )
    )
    return {seq: StoredLink(prev_hash, hash_) for seq, prev_hash, hash_ in rows}


def chain_links(session: Session, *, batch: Batch) -> tuple[dict[int, StoredLink], int]:
    """`stored_links` with the gateway's archived head among them when it lies in the batch's
    range (the event it names is no longer stored), and the head's seq (0: nothing archived)."""
    near = (batch.first_seq - 1, batch.last_seq + 1)
    stored = select(
        StoredEvent.seq, StoredEvent.prev_hash, StoredEvent.hash, false().label("archived")
    ).where(StoredEvent.gateway_id == batch.gateway_id, StoredEvent.seq.between(*near))
    head = select(
        ArchivedHead.seq, ArchivedHead.prev_hash, ArchivedHead.hash, true().label("archived")
    ).where(ArchivedHead.gateway_id == batch.gateway_id)
    links: dict[int, StoredLink] = {}
    archived_seq = 0
    for seq, prev_hash, hash_, archived in session.execute(union_all(stored, head)):
        if archived:
            archived_seq = seq
            if near[0] <= seq <= near[1]:
                links.setdefault(seq, StoredLink(prev_hash, hash_))
        else:
            links[seq] = StoredLink(prev_hash, hash_)
    return links, archived_seq


def check_links(batch: Batch, links: dict[int, StoredLink]) -> None:
    """The batch must link to the stored event before it and to the stored event after it."""
    if batch.first_seq == 1 and batch.prev_hash != GENESIS_HASH:
        raise _broken(batch.first_seq, "seq 1 must link to the genesis hash (64 zeros)")
    before = links.get(batch.first_seq - 1)
    if before is not None and before.hash != batch.prev_hash:
        raise _broken(
            batch.first_seq,
            f"batch links to {batch.prev_hash[:12]}..., but stored seq "
            f"{batch.first_seq - 1} has hash {before.hash[:12]}...",
        )
    after = links.get(batch.last_seq + 1)
    if after is not None and after.prev_hash != batch.last_hash:
        raise _broken(
            batch.last_seq,
            f"batch ends at {batch.last_hash[:12]}..., but stored seq "
            f"{batch.last_seq + 1} links to {after.prev_hash[:12]}...",
        )


def new_events(
    batch: Batch, links: dict[int, StoredLink], *, archived_seq: int = 0
) -> list[UsageEvent]:
    """The batch's events not stored yet; `SeqConflict` if a stored seq has another hash.

    A seq at or below `archived_seq` (the gateway's archived head) is never new: its event is
    in an archive file. Only the head's own hash is compared (it is in `links`); the seqs below
    it are no longer in the database, so their hashes cannot be compared without reading the
    files, and they are counted as duplicates unchecked. A batch that rewrote one of them still
    fails its link check wherever it touches the head or a stored event. The head keeps no
    gaps: a seq below it that never arrived before its month was archived is answered as a
    duplicate too, and not stored (see `cloud.ingest.archived_heads`).
    """
    fresh: list[UsageEvent] = []
    conflicts: list[int] = []
    for event in batch.events:
        stored = links.get(event.seq)
        if stored is None:
            if event.seq > archived_seq:
                fresh.append(event)
        elif stored.hash != event.hash:
            conflicts.append(event.seq)
    if conflicts:
        raise SeqConflict(
            f"{len(conflicts)} seq(s) already stored with a different hash, first {conflicts[0]}",
            detail={"seqs": conflicts[:MAX_REPORTED_SEQS], "conflict_count": len(conflicts)},
        )
    return fresh


def insert_new(session: Session, *, batch: Batch, events: list[UsageEvent]) -> tuple[int, datetime]:
    """Insert the batch header and its new events; the batch's row id and receipt time."""
    ensure_partitions(session, events)  # first: see cloud.ingest.partitions on lock order
    received_at = datetime.now(UTC)
    batch_id = session.scalar(
        insert(ReceivedBatch)
        .values(
            gateway_id=batch.gateway_id,
            first_seq=batch.first_seq,
            last_seq=batch.last_seq,
            prev_hash=batch.prev_hash,
            last_hash=batch.last_hash,
            signature=batch.signature,
            received_at=received_at,
            event_count=len(events),
        )
        .returning(ReceivedBatch.id)
    )
    assert batch_id is not None
    insert_events(session=session, events=events, batch_id=batch_id, received_at=received_at)
    return batch_id, received_at


def unknown_gateway(gateway_id: str) -> UnknownGateway:
    """The error for a batch whose gateway is not registered."""
    return UnknownGateway(
        f"gateway {gateway_id!r} is not registered", detail={"gateway_id": gateway_id}
    )


def _seqs_not_in(batch: Batch, fresh: list[UsageEvent]) -> list[int]:
    new = {event.seq for event in fresh}
    return [event.seq for event in batch.events if event.seq not in new]


def _broken(seq: int, message: str) -> ChainBroken:
    return ChainBroken(message, detail={"seq": seq})
