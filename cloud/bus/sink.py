"""A sink (`tollgate-cloud sink`): consume the log durably and store every batch exactly once.

Each partition has one durable pull consumer (`sink-<partition>`) shared by every sink, with
explicit acks and `max_ack_pending` = 1 = the fetch size. A sink fetches one message of a
partition, stores it with exactly the one-process path's write (`store_batch` in one
`Database.run_write`: the gateway's row lock, the link to the stored chain on both sides,
idempotency by `(gateway_id, seq)`, the change feed's consumers in the same transaction), and
acks it only after the commit.

Order. While that message is unacked, JetStream delivers no other message of the partition to
any sink: the consumer has reached its max_ack_pending. So the next message of the partition is
handed out only after this one was committed and acked, to whichever sink asks first: a
partition's messages, and so each gateway's batches, are stored in stream order however many
sinks run. (A fetch of F > 1 with max_ack_pending = F would not be enough: a fetch that found
fewer than F messages leaves room for another sink to take the next ones while the first is
still storing.) Parallelism comes from the partitions: every sink runs one loop per partition.

Trust. The sink does not take the log's word for a batch: before storing it, it recomputes the
chain and verifies the header under the gateway's keys (`check_logged_batch`), so a message
published to the ingest subjects by anything but a collector is dropped and stores nothing
(about 3 us per event and one signature per batch, beside the store's ~100 us per event).

Exactly once. A message is acked after its commit, so a sink that dies before the ack leaves it
unacked, and JetStream delivers it again after `ack_wait` (to this sink or another); its events
are then already stored with the same hashes and the second store is a duplicate that writes
nothing but a duplicate_delivery note. A sink that dies between the commit and the ack is the
same case. Nothing is acked that is not committed.

Database down: the store is retried with exponential backoff (tenacity), forever, with the
message held (`in_progress` resets its ack_wait on each attempt), and consumption goes on when
the database is back. A refusal against the stored chain (chain_broken, seq_conflict) is filed
as the same incident as the one-process path files (`cloud.ingest.service.file_refusal`), the
refusal is recorded in the KV bucket under its gateway (the collector answers the gateway's next
batch with it, see cloud.bus.collector), and the message is terminated so it does not block its
partition. SIGTERM/SIGINT stop fetching; the message in hand is finished and acked; exit 0.
"""

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import APIError
from sqlalchemy.exc import SQLAlchemyError
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential

from cloud.bus.connection import Bus
from cloud.bus.log import (
    BATCH,
    DIRECT,
    SIGNATURE,
    SinkRefusal,
    decode_body,
    durable,
    refusal_key,
)
from cloud.db import Database
from cloud.errors import ChainBroken, CollectorError, SeqConflict
from cloud.ingest.schemas import IngestReceipt
from cloud.ingest.service import Claim, check_logged_batch, decode_logged_batch, file_refusal
from cloud.ingest.store import store_batch
from cloud.metrics import SINK_BATCHES, SINK_CONSUMER_LAG, SINK_EVENTS, SINK_STORE_SECONDS
from shared.events import Batch

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 1.0  # seconds a fetch waits for a message (and a stop waits for a fetch)
RETRY_INITIAL = 0.2
RETRY_MAX = 5.0
LAG_INTERVAL = 5.0  # seconds between consumer lag readings

T = TypeVar("T")
DirectHandler = Callable[[Database, bytes, str | None], Awaitable[int]]  # db, body, signature


def is_database_down(exc: BaseException) -> bool:
    """A failure to reach the database (retry), not a verdict on the message."""
    return isinstance(exc, SQLAlchemyError | OSError | ConnectionError)


class Sink:
    """One sink process's consumers, one loop per partition."""

    def __init__(
        self,
        *,
        bus: Bus,
        db: Database,
        name: str,
        direct: DirectHandler,
        stopping: asyncio.Event | None = None,
    ) -> None:
        self.bus = bus
        self.db = db
        self.name = name
        self.direct = direct
        self.stopping = stopping or asyncio.Event()
        self.handled = 0  # messages acked
        self.retries = 0  # store attempts that failed on the database

    def stop(self) -> None:
        """Finish the messages in hand and return from `run`."""
        self.stopping.set()

    async def run(self) -> None:
        """Consume every partition until `stop`."""
        partitions = range(self.bus.config.partitions)
        loops = [self.consume(partition) for partition in partitions]
        await asyncio.gather(*loops, self.watch_lag())

    async def consume(self, partition: int) -> None:
        """The loop of one partition: fetch one message, store it, ack it after the commit."""
        subscription = await self.until_done(
            f"consumer of partition {partition}",
            functools.partial(
                self.bus.js.pull_subscribe,
                self.bus.subject(partition),
                durable=durable(partition),
                stream=self.bus.config.stream,
                config=self.bus.consumer_config(partition),
            ),
        )
        try:
            while not self.stopping.is_set():
                try:
                    messages = await subscription.fetch(1, timeout=FETCH_TIMEOUT)
                except NatsTimeout:
                    continue
                except NatsError as exc:  # a node or the connection is away: wait, go on
                    log.warning("sink %s partition %d: fetch failed: %r", self.name, partition, exc)
                    await asyncio.sleep(RETRY_INITIAL)
                    continue
                for message in messages:  # fetched is handled, even when stopping
                    try:
                        await self.handle(message)
                    except Exception:  # a bug, not the message's fault: try it again later
                        log.exception("sink %s: failed on a message, redelivered later", self.name)
                        with contextlib.suppress(NatsError):
                            await message.nak(delay=RETRY_MAX)
        finally:
            with contextlib.suppress(NatsError):
                await subscription.unsubscribe()

    async def handle(self, message: Msg) -> None:
        """Store one message (retrying while the database is down) and ack it after commit."""
        started = time.perf_counter()
        try:
            kind, body = decode_body(message.data, message.headers)
        except ValueError as exc:
            log.error("sink %s: dropping a message that is not ours: %s", self.name, exc)
            await self.drop(message)
            return
        outcome = "stored"
        try:
            if kind == BATCH:
                try:
                    batch = decode_logged_batch(body)
                except CollectorError as exc:  # not what a collector appends: never storable
                    log.error("sink %s: dropping an invalid batch: %s", self.name, exc)
                    await self.drop(message)
                    SINK_BATCHES.labels("refused").inc()
                    return
                try:
                    check = functools.partial(check_logged_batch, db=self.db, batch=batch)
                    await self.stored(message, check)
                except CollectorError as exc:  # no gateway signed this: never stored
                    log.error("sink %s: dropping a batch no gateway signed: %s", self.name, exc)
                    await self.drop(message)
                    SINK_BATCHES.labels("refused").inc()
                    return
                try:
                    receipt = await self.stored(message, functools.partial(self.store, batch))
                except (ChainBroken, SeqConflict) as refusal:
                    await self.refuse(message, batch, refusal)
                    SINK_BATCHES.labels("refused").inc()
                    return
                outcome = "stored" if receipt.stored else "duplicate"
                SINK_EVENTS.inc(receipt.stored)
            elif kind == DIRECT:
                signature = (message.headers or {}).get(SIGNATURE)
                work = functools.partial(self.direct, self.db, body, signature)
                stored = await self.stored(message, work)
                outcome = "stored" if stored else "duplicate"
                SINK_EVENTS.inc(stored)
        except CollectorError as exc:  # e.g. the gateway or source is gone: nothing to store
            log.error("sink %s: message refused (%s): %s", self.name, exc.code, exc.message)
            await self.drop(message)
            SINK_BATCHES.labels("refused").inc()
            return
        await self.ack(message)
        self.handled += 1
        SINK_BATCHES.labels(outcome).inc()
        SINK_STORE_SECONDS.observe(time.perf_counter() - started)

    async def store(self, batch: Batch) -> IngestReceipt:
        """`store_batch` in one write transaction, as the one-process path does."""
        return await self.db.run_write(functools.partial(store_batch, batch=batch))

    async def stored(self, message: Msg, work: Callable[[], Awaitable[T]]) -> T:
        """`work()`, retried with backoff while the database is down, the message held."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(is_database_down),
            wait=wait_exponential(multiplier=RETRY_INITIAL, max=RETRY_MAX),
            before_sleep=lambda state: log.warning(
                "sink %s: database unavailable (attempt %d): %r",
                self.name,
                state.attempt_number,
                state.outcome.exception() if state.outcome else None,
            ),
            reraise=True,
        ):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    self.retries += 1
                    await self.hold(message)
                return await work()
        raise AssertionError("unreachable")  # pragma: no cover - AsyncRetrying returns or raises

    async def refuse(self, message: Msg, batch: Batch, error: CollectorError) -> None:
        """File the incident, record the refusal for the gateway's next batch, drop the message."""
        claim = Claim(batch.gateway_id, batch.first_seq, batch.last_seq)
        await self.stored(
            message, functools.partial(file_refusal, db=self.db, claim=claim, error=error)
        )
        record = SinkRefusal(
            gateway_id=batch.gateway_id,
            code=error.code,
            message=error.message,
            first_seq=batch.first_seq,
            last_seq=batch.last_seq,
            detail=error.detail,
        )
        key = refusal_key(batch.gateway_id)
        await self.until_done("refusal record", lambda: self.bus.refusals.put(key, record.encode()))
        await self.drop(message)

    async def drop(self, message: Msg) -> None:
        """Terminate a message that will never be stored (no redelivery)."""
        try:
            await message.term()
        except NatsError as exc:  # redelivered later: refused (and counted) again, nothing stored
            log.warning("sink %s: term not sent: %r", self.name, exc)

    async def until_done(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """A JetStream call, retried while the cluster cannot answer (a leader re-elected after
        a node died answers nothing for a few seconds: timeouts, no responders, 503)."""
        delay = RETRY_INITIAL
        while True:
            try:
                return await call()
            except NatsError as exc:
                if self.stopping.is_set():
                    raise
                log.warning("sink %s: %s failed, retrying: %r", self.name, what, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    async def hold(self, message: Msg) -> None:
        """Tell JetStream the message is still being worked on (resets its ack_wait)."""
        try:
            await message.in_progress()
        except NatsError as exc:
            log.warning("sink %s: cannot hold a message: %r", self.name, exc)

    async def ack(self, message: Msg) -> None:
        """Ack after the commit; a lost ack only means a redelivery that stores nothing."""
        try:
            await message.ack_sync(timeout=5.0)
        except (NatsError, APIError) as exc:
            log.warning(
                "sink %s: ack not confirmed (a redelivery will be a duplicate): %r", self.name, exc
            )

    async def watch_lag(self) -> None:
        """Keep `tollgate_sink_consumer_lag{partition}` current while running."""
        while not self.stopping.is_set():
            for partition in range(self.bus.config.partitions):
                try:
                    lag = await consumer_lag(self.bus, partition)
                except (NatsError, APIError):
                    continue
                SINK_CONSUMER_LAG.labels(str(partition)).set(lag)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), LAG_INTERVAL)


async def consumer_lag(bus: Bus, partition: int) -> int:
    """Messages of a partition not stored yet: pending in its consumer plus delivered unacked."""
    info = await bus.js.consumer_info(bus.config.stream, durable(partition))
    return (info.num_pending or 0) + (info.num_ack_pending or 0)
