"""The collector's side of the log (`serve --bus`): append verified batches, answer after the ack.

`cloud.ingest.service.ingest_batch` does every check of the one-process path, in its order, up
to and including the recomputed internal chain; then, instead of storing, it hands the batch and
its verified body to `LogAppender.accept_batch`. That appends the body to the gateway's partition
with its idempotent message id and awaits JetStream's publish ack, which the stream leader sends
once a quorum of the stream's replicas stored the message. Only then the gateway gets 202 with
`queued: true`. A failed or timed-out append is 503 `bus_unavailable`, which the gateway retries
(forever: its outbox keeps the events); a retry of a batch that was appended after all is dropped
by the stream's duplicate window, or later by the sink's `(gateway_id, seq)` check.

Refusal feedback: a batch that a sink refused against the stored chain (chain_broken,
seq_conflict) is recorded in the replicated KV bucket under its gateway. The gateway's next
batch is appended as usual, and then answered 409 with the recorded code, its message and a
detail naming the refused range and `"at": "sink"` (`"this_batch": "queued"`): the record is
deleted with the revision read (so of several collectors exactly one answers it), once.
"""

import logging

from nats.errors import ConnectionClosedError, NoRespondersError, OutboundBufferLimitError
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import APIError, KeyNotFoundError
from nats.js.kv import KeyValue

from cloud.bus.connection import Bus
from cloud.bus.log import (
    BATCH,
    SinkRefusal,
    batch_msg_id,
    encode_body,
    partition_of,
    refusal_key,
)
from cloud.errors import BodyTooLarge, ChainBroken, CollectorError, SeqConflict
from cloud.ingest.schemas import IngestReceipt
from cloud.metrics import count_queued
from shared.events import Batch

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 5.0  # seconds for the quorum's ack; the gateway's own timeout is longer
_REFUSALS: dict[str, type[CollectorError]] = {
    ChainBroken.code: ChainBroken,
    SeqConflict.code: SeqConflict,
}
# What a lost node, a lost quorum or a lost connection raise while appending.
APPEND_FAILURES = (NatsTimeout, NoRespondersError, ConnectionClosedError, APIError, NatsError)


class BusUnavailable(CollectorError):
    """503: the ingest log did not confirm the append (no quorum, no connection): retry."""

    status = 503
    code = "bus_unavailable"


class LogAppender:
    """`ingest_batch`'s `accept` with the ingest log: append, await the ack, answer queued."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def accept_batch(self, batch: Batch, body: bytes) -> IngestReceipt:
        """Append a verified batch; its receipt (`queued`), or the gateway's sink refusal."""
        pending = await self._recorded_refusal(batch.gateway_id)
        msg_id = batch_msg_id(batch.gateway_id, batch.first_seq, batch.last_seq, batch.last_hash)
        partition = partition_of(batch.gateway_id, self.bus.config.partitions)
        await append(self.bus, partition=partition, body=body, kind=BATCH, msg_id=msg_id)
        count_queued(events=len(batch.events))
        if pending is not None and await self._clear(batch.gateway_id, pending[1]):
            raise refusal_error(pending[0])
        return IngestReceipt(
            gateway_id=batch.gateway_id,
            first_seq=batch.first_seq,
            last_seq=batch.last_seq,
            stored=0,
            duplicates=0,
            queued=True,
        )

    async def _recorded_refusal(self, gateway_id: str) -> tuple[SinkRefusal, int] | None:
        kv: KeyValue = self.bus.refusals
        try:
            entry = await kv.get(refusal_key(gateway_id))
        except KeyNotFoundError:
            return None
        except APPEND_FAILURES as exc:
            raise unavailable(exc) from exc
        if entry.value is None:
            return None
        return SinkRefusal.decode(entry.value), entry.revision or 0

    async def _clear(self, gateway_id: str, revision: int) -> bool:
        try:
            await self.bus.refusals.delete(refusal_key(gateway_id), last=revision)
        except APIError:
            return False  # another collector answered it first (or it was recorded again)
        return True


async def append(
    bus: Bus, *, partition: int, body: bytes, kind: str, msg_id: str, signature: str | None = None
) -> None:
    """Append `body` to a partition and await the quorum's ack; `BusUnavailable` if it fails."""
    payload, headers = encode_body(
        body, kind="batch" if kind == BATCH else "direct", msg_id=msg_id, signature=signature
    )
    if len(payload) > bus.nc.max_payload:
        raise BodyTooLarge(
            f"batch is {len(payload)} bytes on the log, at most {bus.nc.max_payload} fit a message",
            detail={"bytes": len(payload), "limit_bytes": bus.nc.max_payload},
        )
    try:
        await bus.js.publish(
            bus.subject(partition),
            payload,
            timeout=PUBLISH_TIMEOUT,
            stream=bus.config.stream,
            headers=headers,
        )
    except (*APPEND_FAILURES, OutboundBufferLimitError) as exc:
        raise unavailable(exc) from exc


def unavailable(exc: BaseException) -> BusUnavailable:
    """The 503 of a failed exchange with the log."""
    log.warning("ingest log unavailable: %s: %s", type(exc).__name__, exc)
    return BusUnavailable(
        "the ingest log did not confirm the batch; retry later",
        detail={"reason": type(exc).__name__},
    )


def refusal_error(refusal: SinkRefusal) -> CollectorError:
    """The 409 that tells a gateway of its batch refused at the sink."""
    error = _REFUSALS.get(refusal.code, ChainBroken)
    return error(
        f"batch {refusal.first_seq}..{refusal.last_seq} was refused when stored: {refusal.message}",
        detail=refusal.answer_detail(),
    )
