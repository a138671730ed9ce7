"""The JetStream connection, the stream and the refusals bucket, as one async context manager.

`open_bus(config)` connects to the cluster's servers, creates the stream (work-queue retention:
a message leaves the stream once a sink has acked it, after its commit) and the replicated KV
bucket of sink refusals if they do not exist yet, with the configured replicas. Whichever of
`serve --bus` and `sink` starts first creates them; a second creation with the same configuration
is a no-op, so several processes may start at once.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import nats
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BucketNotFoundError, NotFoundError, ServiceUnavailableError
from nats.js.kv import KeyValue

from cloud.bus.log import durable, refusals_bucket, subject, subject_prefix
from cloud.settings import Settings

DUPLICATE_WINDOW = 10 * 60.0  # seconds: a gateway's retry of an appended batch is dropped
ACK_WAIT = 10.0  # seconds before an unacked message (a dead sink's) is delivered again
# One message of a partition out at a time across all sinks: see cloud.bus.sink.
MAX_ACK_PENDING = 1
CONNECT_TIMEOUT = 5.0
SET_UP_ATTEMPTS = 20  # about 30 s of a cluster without a JetStream leader at start


@dataclass(frozen=True)
class BusConfig:
    """Where the log is and how it is laid out."""

    servers: tuple[str, ...]
    stream: str
    partitions: int
    replicas: int

    @classmethod
    def of(cls, settings: Settings) -> "BusConfig":
        """The bus of `settings` (which must name one)."""
        assert settings.bus_url is not None
        return cls(
            servers=tuple(s.strip() for s in settings.bus_url.split(",") if s.strip()),
            stream=settings.bus_stream,
            partitions=settings.bus_partitions,
            replicas=settings.bus_replicas,
        )


@dataclass
class Bus:
    """An open connection to the log."""

    config: BusConfig
    nc: Client
    js: JetStreamContext
    refusals: KeyValue

    def subject(self, partition: int) -> str:
        """The subject of a partition."""
        return subject(self.config.stream, partition)

    def consumer_config(self, partition: int) -> ConsumerConfig:
        """The durable pull consumer of a partition."""
        return ConsumerConfig(
            durable_name=durable(partition),
            filter_subject=self.subject(partition),
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            max_ack_pending=MAX_ACK_PENDING,
            ack_wait=ACK_WAIT,
            max_deliver=-1,
            num_replicas=self.config.replicas,
        )


log = logging.getLogger(__name__)


@asynccontextmanager
async def open_bus(config: BusConfig, *, create: bool = True) -> AsyncIterator[Bus]:
    """Connect, make sure the stream and the refusals bucket exist, and close on exit.

    `create=False` (bus status) creates nothing: a missing stream is `NotFoundError`."""
    nc = await nats.connect(
        servers=list(config.servers),
        connect_timeout=CONNECT_TIMEOUT,
        max_reconnect_attempts=-1,  # a node restarting is not the end of a collector
        reconnect_time_wait=0.5,
    )
    try:
        js = nc.jetstream()
        if create:
            refusals = await _set_up(js, config)
        else:
            await js.stream_info(config.stream)
            refusals = await js.key_value(refusals_bucket(config.stream))
        yield Bus(config=config, nc=nc, js=js, refusals=refusals)
    finally:
        if not nc.is_closed:
            await nc.drain()


async def _set_up(js: JetStreamContext, config: BusConfig) -> KeyValue:
    # A cluster electing a leader (a node just died or started) answers nothing for a while.
    delay = 0.2
    for _ in range(SET_UP_ATTEMPTS):
        try:
            await ensure_stream(js, config)
            return await ensure_refusals(js, config)
        except (NatsTimeout, NoRespondersError, ServiceUnavailableError) as exc:
            log.warning("ingest log not answering yet (%r), retrying", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
    await ensure_stream(js, config)
    return await ensure_refusals(js, config)


async def ensure_stream(js: JetStreamContext, config: BusConfig) -> None:
    """Create the stream unless it exists (an existing one is left as it is)."""
    try:
        await js.stream_info(config.stream)
        return
    except NotFoundError:
        pass
    await js.add_stream(
        StreamConfig(
            name=config.stream,
            subjects=[f"{subject_prefix(config.stream)}.*"],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            num_replicas=config.replicas,
            duplicate_window=DUPLICATE_WINDOW,
        )
    )
    log.info("created stream %s (%d replicas)", config.stream, config.replicas)


async def ensure_refusals(js: JetStreamContext, config: BusConfig) -> KeyValue:
    """The KV bucket of sink refusals, created unless it exists."""
    bucket = refusals_bucket(config.stream)
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        return await js.create_key_value(bucket=bucket, history=1, replicas=config.replicas)
