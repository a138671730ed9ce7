"""Ingest signed gateway batches (verify, link, dedupe, store raw) and list stored events.

A batch goes through, cheapest check first, so that a body from someone who proved nothing costs
microseconds per kilobyte: a bound on how many JSON values the body can hold (one count of its
separators), orjson, the envelope (an object whose `events` array holds at most the limit), the
signed header alone (`shared.events.BatchHeader`), the gateway's key, the Ed25519 signature over
the header; only then the events with pydantic, the recomputed chain (`shared.signing`) and one
write transaction (`cloud.ingest.store`): the gateway's lock, the link to the stored chain, the
idempotency check by `(gateway_id, seq)` and one bulk insert of the new events.

A refused batch stores nothing. It is filed as an incident of its gateway (in a transaction of its
own) only when its signature verified under a key the gateway holds or held: a broken chain, a
seq conflict, a retired key, a revoked gateway. Refusals of bodies that prove nothing (malformed,
oversized, invalid, unknown gateway, bad signature) are logged, never written: anyone can name
any gateway, and a write per junk request would be theirs to spend. Bad signatures of registered
gateways are also counted in memory (`signature_tally`) and filed by a job, one incident per
gateway per interval, so the operator learns of them without a write per request.

The last step, storing, is the app's choice (`Accept`): by default the batch is stored here; with
the ingest log (`cloud.bus`) the verified batch is appended to the log instead and a sink stores
it later through the same `store_batch`, filing its refusals with `file_refusal`.
"""

import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

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
    error_locations,
)
from cloud.gateways.enrollment import active_gateway, retired_keys, signed_by_any
from cloud.gateways.models import Gateway
from cloud.incidents.models import IncidentKind
from cloud.incidents.sink import record_incident
from cloud.ingest.body import check_value_count
from cloud.ingest.cursor import EventCursor
from cloud.ingest.fast_decode import decode_batch
from cloud.ingest.models import StoredEvent
from cloud.ingest.schemas import EventPage, EventQuery, IngestReceipt
from cloud.ingest.signature_tally import note_bad_signature
from cloud.ingest.store import store_batch, unknown_gateway
from cloud.settings import Limits
from shared import errors as contract
from shared.bounds import MAX_EVENTS_PER_BATCH
from shared.events import (
    HEADER_FIELDS,
    MAX_ATTRS,
    Batch,
    BatchHeader,
    UsageEvent,
)
from shared.signing import header_bytes, load_public_key, verify_events, verify_header

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BatchHeader)
EVENT_FIELDS = frozenset(UsageEvent.model_fields)

MAX_REPORTED_ERRORS = 20

# Refusals filed as incidents: each is of a batch whose signature verified.
_INCIDENT_KINDS: dict[type[CollectorError], IncidentKind] = {
    GatewayRevoked: IncidentKind.GATEWAY_REVOKED,
    KeyRetired: IncidentKind.KEY_RETIRED,
    ChainBroken: IncidentKind.CHAIN_BROKEN,
    SeqConflict: IncidentKind.SEQ_CONFLICT,
}


class SignedRefusal(Exception):
    """A refusal of a batch whose signature verified: it is filed as an incident."""

    def __init__(self, error: CollectorError) -> None:
        super().__init__(error.message)
        self.error = error


# What is done with a verified batch (its events and internal chain checked) and its body.
Accept = Callable[[Batch, bytes], Awaitable[IngestReceipt]]


class Claim(NamedTuple):
    """Who a refused batch says it comes from, and which seqs it says it carries."""

    gateway_id: str
    first_seq: int | None
    last_seq: int | None


async def ingest_batch(
    *, db: Database, body: bytes, limits: Limits, accept: Accept | None = None
) -> IngestReceipt:
    """Verify a signed batch and store its new events once; see the module for the order.

    `accept`, if given, takes the verified batch instead of storing it here (the ingest log)."""
    header: BatchHeader | None = None
    try:
        document = read_document(body, limit=limits.max_batch_events)
        header = parse_header(document)
        await check_signer(db=db, header=header)
        batch = parse_batch(body, header=header)
        return await _verify_and_store(db=db, batch=batch, body=body, accept=accept)
    except SignedRefusal as signed:
        assert header is not None
        claim = Claim(header.gateway_id, header.first_seq, header.last_seq)
        await file_refusal(db=db, claim=claim, error=signed.error)
        raise signed.error from signed.__cause__
    except CollectorError as exc:
        _log_refusal(exc, gateway_id=None if header is None else header.gateway_id)
        if isinstance(exc, InvalidBatchSignature) and header is not None:
            note_bad_signature(
                gateway_id=header.gateway_id,
                first_seq=header.first_seq,
                last_seq=header.last_seq,
                at=datetime.now(UTC),
            )
        raise


def read_document(body: bytes, *, limit: int) -> dict[str, Any]:
    """The batch document, if the body is a JSON object whose `events` array is within `limit`."""
    check_value_count(body, max_events=limit)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(f"body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise _invalid([], "a batch is a JSON object")
    events = document.get("events")
    if not isinstance(events, list):
        raise _invalid(["events"], "a batch carries an array of events")
    check_event_count(len(events), limit=limit)
    check_event_shapes(events)
    return document


def check_event_shapes(events: list[Any]) -> None:
    """Each event an object of at most its fields, with at most `MAX_ATTRS` attrs.

    Pydantic reports every extra key and every bad attr of an event; bounding the shape first
    bounds the errors a refusal can build to one event's worth (the events are `fail_fast`).
    """
    for index, event in enumerate(events):
        if type(event) is not dict:
            raise _invalid(["events", index], "an event is a JSON object")
        if len(event) > len(EVENT_FIELDS):
            raise _invalid(["events", index], f"an event has at most {len(EVENT_FIELDS)} fields")
        attrs = event.get("attrs")
        if type(attrs) is dict and len(attrs) > MAX_ATTRS:
            message = f"at most {MAX_ATTRS} attrs, got {len(attrs)}"
            raise _invalid(["events", index, "attrs"], message)


def check_event_count(count: int, *, limit: int) -> None:
    """Refuse a batch carrying more events than one request may."""
    if count > limit:
        raise BodyTooLarge(
            f"batch carries {count} events, at most {limit} are accepted",
            detail={"events": count, "limit_events": limit},
        )


def parse_header(document: dict[str, Any]) -> BatchHeader:
    """The signed header of a batch document (its events are not looked at)."""
    fields = {name: document[name] for name in HEADER_FIELDS if name in document}
    return _validated(BatchHeader, fields)


def parse_batch(body: bytes, *, header: BatchHeader) -> Batch:
    """The whole batch, events included, validated in one pydantic-core call from the JSON.

    (From the bytes again: pydantic validates JSON faster than the Python objects orjson made.)
    The forms gateways send are decoded by msgspec instead (`cloud.ingest.fast_decode`, twice
    as fast), which returns what pydantic would or leaves the batch to pydantic.
    """
    fast = decode_batch(body, header=header)
    if fast is not None:
        return fast
    batch = _validated(Batch, body)
    if any(getattr(batch, name) != getattr(header, name) for name in HEADER_FIELDS):
        # Both parsers keep the last of duplicate keys; this holds them to it.
        raise _invalid([], "the batch header reads differently on a second parse")
    return batch


def _validated(model: type[M], document: dict[str, Any] | bytes) -> M:
    try:
        if isinstance(document, bytes):
            return model.model_validate_json(document)
        return model.model_validate(document)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        if errors[0]["type"] == "json_invalid":  # e.g. nested deeper than pydantic's limit
            raise MalformedJson(f"body is not valid JSON: {errors[0]['msg']}") from exc
        where = ".".join(map(str, errors[0]["loc"])) or "the top level"
        raise InvalidBatch(
            f"batch is invalid: {len(errors)} error(s), first at {where}: {errors[0]['msg']}",
            detail={
                "errors": error_locations(errors[:MAX_REPORTED_ERRORS]),
                "error_count": len(errors),
            },
        ) from exc


def _invalid(loc: list[str | int], message: str) -> InvalidBatch:
    where = ".".join(map(str, loc)) or "the top level"
    return InvalidBatch(
        f"batch is invalid: 1 error(s), first at {where}: {message}",
        detail={"errors": [{"loc": loc, "msg": message, "type": "type_error"}], "error_count": 1},
    )


async def check_signer(*, db: Database, header: BatchHeader) -> None:
    """The header must be signed by the gateway's current key, and the gateway not revoked.

    `UnknownGateway` and `InvalidBatchSignature` prove nothing about the gateway; a retired key
    that verifies, or a revoked gateway's own signature, are `SignedRefusal`s (filed).
    """
    async with db.transaction() as session:
        revoked: GatewayRevoked | None = None
        try:
            gateway = await active_gateway(session=session, gateway_id=header.gateway_id)
        except GatewayRevoked as exc:
            revoked = exc
            gateway = await _registered(session=session, gateway_id=header.gateway_id)
        if _signed_by(load_public_key(gateway.public_key_pem.encode("ascii")), header):
            if revoked is not None:
                raise SignedRefusal(revoked)
            return
        # Only on a refusal: tells a gateway that missed its own key rotation from a forgery.
        pems = await retired_keys(session=session, gateway_id=header.gateway_id)
    if signed_by_any(pems, header_bytes(header), header.signature):
        raise SignedRefusal(revoked or _key_retired(header.gateway_id))
    if revoked is not None:
        raise revoked
    raise InvalidBatchSignature(
        "batch signature does not verify under the gateway key",
        detail={"gateway_id": header.gateway_id},
    )


def decode_logged_batch(body: bytes) -> Batch:
    """A batch body read back from the ingest log, decoded as the collector decodes one (the
    bounded envelope, then msgspec, else pydantic); a CollectorError if it is no batch."""
    header = parse_header(read_document(body, limit=MAX_EVENTS_PER_BATCH))
    return parse_batch(body, header=header)


async def check_logged_batch(*, db: Database, batch: Batch) -> None:
    """A batch read back from the ingest log must be one its gateway signed: the chain
    recomputes to the signed last hash and the header verifies under one of the gateway's keys,
    the current one or one rotated away since (the collector checked it was current when it
    appended; a rotation may come before a sink stores it). `InvalidBatchSignature` or
    `ChainBroken` otherwise: the log holds what no collector appended (whoever can publish to
    the ingest subjects cannot get an event stored that no gateway signed)."""
    try:
        verify_events(batch)
    except contract.ChainBroken as exc:
        raise ChainBroken(str(exc), detail={"seq": exc.seq}) from exc
    async with db.transaction() as session:
        gateway = await _registered(session=session, gateway_id=batch.gateway_id)
        pems = [gateway.public_key_pem]
        pems += await retired_keys(session=session, gateway_id=batch.gateway_id)
    if not signed_by_any(pems, header_bytes(batch), batch.signature):
        raise InvalidBatchSignature(
            "batch signature does not verify under any key of the gateway",
            detail={"gateway_id": batch.gateway_id},
        )


async def _registered(*, session: AsyncSession, gateway_id: str) -> Gateway:
    gateway = await session.get(Gateway, gateway_id)
    if gateway is None:
        raise unknown_gateway(gateway_id)
    return gateway


def _signed_by(public_key: Ed25519PublicKey, header: BatchHeader) -> bool:
    try:
        verify_header(header, public_key)
    except contract.InvalidSignature:
        return False
    return True


def _key_retired(gateway_id: str) -> KeyRetired:
    return KeyRetired(
        f"batch is signed with a retired key of gateway {gateway_id!r}: "
        "the gateway must sign with the key it rotated to",
        detail={"gateway_id": gateway_id},
    )


async def _verify_and_store(
    *, db: Database, batch: Batch, body: bytes, accept: Accept | None
) -> IngestReceipt:
    # The chain is recomputed before the write transaction, so that checking one batch overlaps
    # with storing another instead of holding the write lock.
    try:
        verify_events(batch)
    except contract.ChainBroken as exc:
        raise SignedRefusal(ChainBroken(str(exc), detail={"seq": exc.seq})) from exc
    if accept is not None:
        return await accept(batch, body)
    try:
        receipt = await db.run_write(functools.partial(store_batch, batch=batch))
    except (ChainBroken, SeqConflict) as exc:
        raise SignedRefusal(exc) from exc
    log.debug(
        "batch %s %d..%d: %d stored, %d duplicates",
        batch.gateway_id,
        batch.first_seq,
        batch.last_seq,
        receipt.stored,
        receipt.duplicates,
    )
    return receipt


def _log_refusal(error: CollectorError, *, gateway_id: str | None) -> None:
    # Not filed: the body proved nothing about the gateway it names (see the module docstring).
    log.warning(
        "batch refused (%s, not filed): %s",
        error.code,
        error.message,
        extra={"reason": error.code, "claimed_gateway_id": gateway_id, "filed": False},
    )


async def file_refusal(*, db: Database, claim: Claim, error: CollectorError) -> None:
    """File the refusal of a batch whose signature verified as an incident of its gateway."""
    log.warning(
        "batch refused (%s, filed for %s): %s",
        error.code,
        claim.gateway_id,
        error.message,
        extra={"reason": error.code, "gateway_id": claim.gateway_id, "filed": True},
    )
    # Its own transaction: the refused batch's was rolled back, the incident must stay.
    await db.run_write(functools.partial(_add_refusal, claim=claim, error=error))


def _add_refusal(session: Session, *, claim: Claim, error: CollectorError) -> None:
    record_incident(
        session,
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
