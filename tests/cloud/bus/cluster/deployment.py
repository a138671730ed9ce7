"""One deployment of the ingest log for a cluster test: collectors and sinks as real processes on
a three-node JetStream cluster, one database, and the gateways that post to it."""

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from firmware_sims.processes import run_command
from tests.support.ingest_fleet import (
    BusCollector,
    SimGateway,
    SinkWorker,
    bus_environment,
    chain_problems,
    prepare_database,
    send_batches,
    stored_events,
)
from tests.support.nats_cluster import NatsCluster
from tests.support.waiting import free_port

STREAM = "TOLLGATE_INGEST"  # the cluster is the test's own: the default stream name
PARTITIONS = 4
REPLICAS = 3
STORED_SECONDS = 90.0  # a generous limit for everything to be stored, not a speed check
POLL_SECONDS = 0.25


@dataclass
class Deployment:
    """Collectors and sinks of one test, the gateways, and which collector each one posts to."""

    cluster: NatsCluster
    db_url: str
    work: Path
    gateways: list[SimGateway]
    collectors: list[BusCollector] = field(default_factory=list)
    sinks: list[SinkWorker] = field(default_factory=list)
    clients: list[httpx.AsyncClient] = field(default_factory=list)
    killed: list[SinkWorker] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """The processes' bus settings."""
        return bus_environment(stream=STREAM, replicas=REPLICAS, partitions=PARTITIONS)

    @property
    def total(self) -> int:
        """Events every gateway sends in all."""
        return sum(len(gateway.events) for gateway in self.gateways)

    async def start(self, *, collectors: int, sinks: Sequence[str]) -> None:
        """Start the sinks and the collectors at once (a process takes seconds to import);
        return when the collectors serve and the sinks consume."""
        async with asyncio.TaskGroup() as group:
            for name in sinks:
                group.create_task(self.add_sink(name))
            group.create_task(self.add_collectors(collectors))

    async def add_collectors(self, count: int) -> None:
        """Start `count` more collectors (at once) and wait until each serves."""
        started = [
            BusCollector(
                bus=self.cluster.url,
                db_url=self.db_url,
                port=free_port(),
                log_path=self.work / f"collector-{len(self.collectors) + i}.log",
                env=self.env,
            )
            for i in range(count)
        ]
        self.collectors.extend(started)
        async with asyncio.TaskGroup() as group:
            for collector in started:
                group.create_task(collector.start())
        self.clients.extend(httpx.AsyncClient(base_url=c.url) for c in started)

    async def add_sink(self, name: str) -> SinkWorker:
        """Start one more sink worker."""
        sink = SinkWorker(
            bus=self.cluster.url,
            db_url=self.db_url,
            name=name,
            log_path=self.work / f"sink-{name}.log",
            env=self.env,
        )
        self.sinks.append(sink)
        await sink.start()
        return sink

    async def kill_sink(self, sink: SinkWorker) -> None:
        """kill -9 a sink: its fetched, unacked messages are delivered again after ack_wait."""
        self.killed.append(sink)
        await sink.kill()

    def routes(self) -> dict[str, httpx.AsyncClient]:
        """Gateway i posts to collector i mod (number of collectors)."""
        return {
            gateway.gateway_id: self.clients[i % len(self.clients)]
            for i, gateway in enumerate(self.gateways)
        }

    async def send(self, batches: slice) -> None:
        """Every gateway posts its `batches` (in order, until each is answered 2xx)."""
        await send_batches(self.routes(), self.gateways, batches)

    async def wait_stored(self, at_least: int) -> int:
        """Poll the database until it holds `at_least` events; the count. A sink that exited
        (other than one the test killed) fails at once."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STORED_SECONDS
        while True:
            for sink in self.sinks:
                if sink not in self.killed:
                    sink.check()  # a sink that exited by itself fails the test with its log
            count = await stored_events(self.db_url)
            if count is not None and count >= at_least:
                return count
            if loop.time() > deadline:
                raise AssertionError(
                    f"gave up after {STORED_SECONDS}s: {count} of {at_least} events stored"
                )
            await asyncio.sleep(POLL_SECONDS)

    async def wait_log_acked(self) -> dict[str, object]:
        """Poll the nodes' monitoring until every node holds the stream (3 replicas) and no
        message is left in it (work-queue retention: a message leaves once a sink acked it);
        the replicas' states."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STORED_SECONDS
        while True:
            replicas = self.cluster.stream_replicas(STREAM)
            if len(replicas) == REPLICAS and all(r["messages"] == 0 for r in replicas.values()):
                return replicas
            if loop.time() > deadline:
                raise AssertionError(f"gave up waiting for every message acked: {replicas}")
            await asyncio.sleep(POLL_SECONDS)

    async def bus_status(self) -> dict[str, Any]:
        """What `python -m cloud.cli bus status --bus URL` prints (JSON)."""
        printed = await run_command(
            sys.executable, "-m", "cloud.cli", "bus", "status", "--bus", self.cluster.url,
            log_path=self.work / "bus-status.log", env=self.env,
        )  # fmt: skip
        status: dict[str, Any] = orjson.loads(printed)
        return status

    async def problems(self) -> list[str]:
        """Everything that breaks "every event exactly once, contiguous, no chain incidents"."""
        return await chain_problems(self.db_url, self.gateways)

    def stream_leader(self) -> int:
        """The index of the node that leads the stream now."""
        replicas = self.cluster.stream_replicas(STREAM)
        leaders = [name for name, replica in replicas.items() if replica["leader"]]
        assert len(leaders) == 1, replicas
        return [node.name for node in self.cluster.nodes].index(leaders[0])

    async def close(self) -> list[int]:
        """Close the clients and stop every process at once (SIGTERM); the sinks' exit codes
        (uvicorn re-raises the SIGTERM it handled, so a collector's code says nothing)."""
        for client in self.clients:
            await client.aclose()
        self.clients.clear()
        async with asyncio.TaskGroup() as group:
            for collector in self.collectors:
                group.create_task(collector.terminate())
            stopped = [group.create_task(sink.terminate()) for sink in self.sinks]
        return [task.result() for task in stopped]


@contextlib.asynccontextmanager
async def deployment(
    cluster: NatsCluster, db_url: str, work: Path, gateways: Sequence[SimGateway]
) -> AsyncIterator[Deployment]:
    """A migrated database with the gateways registered; processes started by the test."""
    await prepare_database(db_url, gateways)
    deployed = Deployment(cluster=cluster, db_url=db_url, work=work, gateways=list(gateways))
    try:
        yield deployed
    finally:
        await deployed.close()
