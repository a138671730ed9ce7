"""Ingest signed gateway batches (verify, link, dedupe, store raw) and list stored events.

A batch goes through, in order: JSON and schema validation of the whole batch in one pydantic-core
call, the gateway's key, the Ed25519 signature and the recomputed chain (`shared.signing`), then
one write transaction (`cloud.ingest.store`): the gateway's lock, the link to the stored chain, the
idempotency check by `(gateway_id, seq)` and one bulk insert of the new events. A refused batch
stores nothing; its incident is recorded in a transaction of its own.
"""

import functools
import logging
from typing import Any, NamedTuple

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from cloud.db import Database
from cloud.errors import (
    BodyTooLarge,
    ChainBroken,
    CollectorError,
    GatewayRevoked,
    InvalidBatch,
    InvalidBatchSignature,
    KeyRetired,
    MalformedJson,
    SeqConflict,
    UnknownGateway,
    error_locations,
)
from cloud.gateways.enrollment import active_gateway, retired_keys, signed_by_any
from cloud.ingest.cursor import EventCursor
from cloud.ingest.models import StoredEvent
from cloud.ingest.schemas import EventPage, EventQuery, IngestReceipt
from cloud.ingest.store import store_batch
from cloud.quality.models import IncidentKind
from cloud.quality.service import add_incident
from cloud.settings import Limits
from shared import errors as contract
from shared.events import Batch, UsageEvent
from shared.signing import batch_header, load_public_key, verify_batch

log = logging.getLogger(__name__)

MAX_REPORTED_ERRORS = 20

_INCIDENT_KINDS: dict[type[CollectorError], IncidentKind] = {
    InvalidBatch: IncidentKind.MALFORMED_BATCH,
    BodyTooLarge: IncidentKind.MALFORMED_BATCH,
    UnknownGateway: IncidentKind.UNKNOWN_GATEWAY,
    GatewayRevoked: IncidentKind.GATEWAY_REVOKED,
    KeyRetired: IncidentKind.KEY_RETIRED,
    InvalidBatchSignature: IncidentKind.INVALID_SIGNATURE,
    ChainBroken: IncidentKind.CHAIN_BROKEN,
    SeqConflict: IncidentKind.SEQ_CONFLICT,
}
_REFUSALS = tuple(_INCIDENT_KINDS)


class Claim(NamedTuple):
    """Who a (possibly refused) batch says it comes from, and which seqs it says it carries."""

    gateway_id: str
    first_seq: int | None
    last_seq: int | None


async def ingest_batch(*, db: Database, body: bytes, limits: Limits) -> IngestReceipt:
    """Verify a signed batch and store its new events once; a refusal records an incident."""
    try:
        batch = parse_batch(body)
    except InvalidBatch as exc:
        await _record_refusal(db=db, claim=claim_of_body(body), error=exc)
        raise
    try:
        check_event_count(batch, limit=limits.max_batch_events)
        return await _store(db=db, batch=batch)
    except _REFUSALS as exc:
        claim = Claim(batch.gateway_id, batch.first_seq, batch.last_seq)
        await _record_refusal(db=db, claim=claim, error=exc)
        raise


def parse_batch(body: bytes) -> Batch:
    """Validate a whole batch from JSON in one pydantic-core call."""
    try:
        return Batch.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        if any(error["type"] == "json_invalid" for error in errors):
            raise MalformedJson(f"body is not valid JSON: {errors[0]['msg']}") from exc
        raise InvalidBatch(
            f"batch is invalid: {len(errors)} error(s), first at "
            f"{'.'.join(map(str, errors[0]['loc'])) or 'the top level'}: {errors[0]['msg']}",
            detail={
                "errors": error_locations(errors[:MAX_REPORTED_ERRORS]),
                "error_count": len(errors),
            },
        ) from exc


def claim_of_body(body: bytes) -> Claim | None:
    """The gateway id and seqs an invalid batch claims, if they can be read at all."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:  # pydantic's parser is laxer (NaN, huge integers)
        return None
    if not isinstance(document, dict):
        return None
    gateway_id = document.get("gateway_id")
    if not isinstance(gateway_id, str) or not 0 < len(gateway_id) <= 128:
        return None
    seqs = [document.get(key) for key in ("first_seq", "last_seq")]
    first, last = (seq if type(seq) is int and 0 < seq < 2**63 else None for seq in seqs)
    return Claim(gateway_id, first, last)


def check_event_count(batch: Batch, *, limit: int) -> None:
    """Refuse a batch carrying more events than one request may."""
    if len(batch.events) > limit:
        raise BodyTooLarge(
            f"batch carries {len(batch.events)} events, at most {limit} are accepted",
            detail={"events": len(batch.events), "limit_events": limit},
        )


def verify_signed(batch: Batch, public_key: Ed25519PublicKey) -> None:
    """Check the signature and recompute the chain; contract errors become ours."""
    try:
        verify_batch(batch, public_key)
    except contract.InvalidSignature as exc:
        raise InvalidBatchSignature(str(exc), detail={"gateway_id": batch.gateway_id}) from exc
    except contract.ChainBroken as exc:
        raise ChainBroken(str(exc), detail={"seq": exc.seq}) from exc


async def _store(*, db: Database, batch: Batch) -> IngestReceipt:
    # Verified before the write transaction, so that checking one batch overlaps with storing
    # another instead of holding the write lock.
    try:
        verify_signed(batch, await _public_key(db=db, gateway_id=batch.gateway_id))
    except InvalidBatchSignature:
        if await _signed_by_retired_key(db=db, batch=batch):
            raise KeyRetired(
                f"batch is signed with a retired key of gateway {batch.gateway_id!r}: "
                "the gateway must sign with the key it rotated to",
                detail={"gateway_id": batch.gateway_id},
            ) from None
        raise
    receipt = await db.run_write(functools.partial(store_batch, batch=batch))
    log.debug(
        "batch %s %d..%d: %d stored, %d duplicates",
        batch.gateway_id,
        batch.first_seq,
        batch.last_seq,
        receipt.stored,
        receipt.duplicates,
    )
    return receipt


async def _public_key(*, db: Database, gateway_id: str) -> Ed25519PublicKey:
    async with db.transaction() as session:
        gateway = await active_gateway(session=session, gateway_id=gateway_id)
    return load_public_key(gateway.public_key_pem.encode("ascii"))


async def _signed_by_retired_key(*, db: Database, batch: Batch) -> bool:
    # Only on a refusal: tells a gateway that missed its own key rotation from a forgery.
    async with db.transaction() as session:
        pems = await retired_keys(session=session, gateway_id=batch.gateway_id)
    header = batch_header(
        gateway_id=batch.gateway_id,
        first_seq=batch.first_seq,
        last_seq=batch.last_seq,
        prev_hash=batch.prev_hash,
        last_hash=batch.last_hash,
    )
    return signed_by_any(pems, header, batch.signature)


async def _record_refusal(*, db: Database, claim: Claim | None, error: CollectorError) -> None:
    log.warning("batch refused (%s): %s", error.code, error.message)
    if claim is not None:
        # Its own transaction: the refused batch's was rolled back, the incident must stay.
        await db.run_write(functools.partial(_add_refusal, claim=claim, error=error))


def _add_refusal(session: Session, *, claim: Claim, error: CollectorError) -> None:
    add_incident(
        session=session,
        gateway_id=claim.gateway_id,
        kind=_INCIDENT_KINDS[type(error)],
        detail=error.message,
        first_seq=claim.first_seq,
        last_seq=claim.last_seq,
    )


async def list_events(*, session: AsyncSession, query: EventQuery) -> EventPage:
    """One page of stored events matching `query`, in `(gateway_id, seq)` order."""
    statement = select(StoredEvent).order_by(StoredEvent.gateway_id, StoredEvent.seq)
    if query.gateway_id is not None:
        statement = statement.where(StoredEvent.gateway_id == query.gateway_id)
    if query.device_id is not None:
        statement = statement.where(StoredEvent.device_id == query.device_id)
    if query.since is not None:
        statement = statement.where(StoredEvent.occurred_at >= query.since)
    if query.until is not None:
        statement = statement.where(StoredEvent.occurred_at < query.until)
    if query.after is not None:
        position = tuple_(StoredEvent.gateway_id, StoredEvent.seq)
        statement = statement.where(position > tuple_(query.after.gateway_id, query.after.seq))
    rows = list(await session.scalars(statement.limit(query.limit + 1)))
    page = rows[: query.limit]
    more = len(rows) > query.limit
    cursor = EventCursor(page[-1].gateway_id, page[-1].seq).encode() if more else None
    return EventPage.model_validate(
        {"events": [wire_event(row) for row in page], "next_cursor": cursor}
    )


def wire_event(row: StoredEvent) -> dict[str, Any]:
    """A stored event in the exact wire form the gateway sent (`UsageEvent.to_wire()`)."""
    return UsageEvent.model_validate(row, from_attributes=True).to_wire()
