"""Direct sources (CloudEvents) through the log: the collector maps, the sink seals and stores.

With `--bus`, `POST /v1/events` does today's bounded checks in the collector (the ingest key,
the body's size, the CloudEvents envelope and the source's mapping) and appends the mapped
records, with the rejected ones, as one message to the partition of the source's gateway. The
sink does the rest in one transaction with `cloud.direct.store.store_direct`, exactly as the
one-process path: dedupe by `(origin, id)`, seal into the source's chain, store, note
duplicates, late arrivals, unknown devices and rejected records. The answer is 202 with what is
known then: how many records were received and rejected, `queued: true`, nothing stored yet.

The message id is the source and a digest of the mapped records (not of the receipt time), so a
request sent again within the duplicate window is appended once; later, `(origin, id)` makes it
a duplicate at the sink. The collector signs the body with the source's key (header
`Tollgate-Signature`) and the sink verifies it before storing, so what is published to the
ingest subjects by anything but a collector stores nothing.
"""

import functools
import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from cloud.bus.collector import append
from cloud.bus.connection import Bus
from cloud.bus.log import DIRECT, direct_msg_id, partition_of
from cloud.db import Database
from cloud.direct.mapping import RowError
from cloud.direct.service import find_source
from cloud.direct.store import Keyed, Rejected, SourceSeal, source_private_key, store_direct
from cloud.errors import InvalidBatchSignature, InvalidEvent
from cloud.metrics import count_queued
from shared import errors as contract
from shared.events import EventDraft
from shared.signing import sign, verify


def encode_direct(
    *, source_id: str, items: Sequence[Keyed], rejected: Sequence[Rejected], received_at: datetime
) -> tuple[bytes, str]:
    """The message body of one request's mapped records, and the digest of those records."""
    records: dict[str, Any] = {
        "items": [[i.origin, i.event_id, i.draft.model_dump(mode="json")] for i in items],
        "rejected": [[r.position, r.event_id, r.error.field, r.error.reason] for r in rejected],
    }
    digest = hashlib.sha256(orjson.dumps(records)).hexdigest()
    body = orjson.dumps({"source": source_id, "received_at": received_at.isoformat(), **records})
    return body, digest


def decode_direct(body: bytes) -> tuple[str, list[Keyed], list[Rejected], datetime]:
    """The source, mapped records, rejected records and receipt time of a direct message."""
    document = orjson.loads(body)
    items = [
        Keyed(origin, event_id, EventDraft.model_validate(draft))
        for origin, event_id, draft in document["items"]
    ]
    rejected = [
        Rejected(position, event_id, RowError(field, reason))
        for position, event_id, field, reason in document["rejected"]
    ]
    return document["source"], items, rejected, datetime.fromisoformat(document["received_at"])


class DirectAppender:
    """`ingest_cloudevents`' `append` with the ingest log."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def append_direct(
        self,
        source_id: str,
        seal_with: SourceSeal,
        items: Sequence[Keyed],
        rejected: Sequence[Rejected],
        received_at: datetime,
    ) -> None:
        """Append one request's mapped records; returns after the quorum's ack."""
        body, digest = encode_direct(
            source_id=source_id, items=items, rejected=rejected, received_at=received_at
        )
        partition = partition_of(seal_with.gateway_id, self.bus.config.partitions)
        msg_id = direct_msg_id(source_id, digest)
        signed = sign(source_private_key(seal_with.private_key_pem), body)
        await append(
            self.bus, partition=partition, body=body, kind=DIRECT, msg_id=msg_id, signature=signed
        )
        count_queued(events=len(items))


async def store_direct_message(db: Database, body: bytes, signature: str | None) -> int:
    """The sink's store of a direct message, in one write transaction; new events stored.

    The body must be signed with its source's key (the collector signed it after checking the
    ingest key): `InvalidBatchSignature` otherwise, and `InvalidEvent` for a body that does not
    decode; the sink drops both, nothing stored."""
    try:
        source_id, items, rejected, received_at = decode_direct(body)
    except (ValueError, KeyError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        raise InvalidEvent(f"direct message does not decode: {exc}") from exc
    async with db.transaction() as session:
        source = await find_source(session=session, source_id=source_id)
        seal_with = SourceSeal(source.gateway_id, source.private_key_pem)
    key = source_private_key(seal_with.private_key_pem).public_key()
    try:
        verify(key, body, signature or "")
    except contract.InvalidSignature as exc:
        raise InvalidBatchSignature(
            f"direct message is not signed by source {source_id!r}",
            detail={"source_id": source_id},
        ) from exc
    work = functools.partial(
        store_direct, seal_with=seal_with, items=items, rejected=rejected, received_at=received_at
    )
    outcome = await db.run_write(work)
    return outcome.stored
