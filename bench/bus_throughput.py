"""Throughput through the three-node JetStream cluster: 1 and 2 collectors x 1 and 2 sinks.

One real cluster of three nats-server nodes on loopback (tests/support/nats_cluster.py) holds
the ingest log with 3 replicas. For each configuration a fresh PostgreSQL database and a fresh
stream get `python -m cloud.cli serve --bus` collectors and `python -m cloud.cli sink` workers as
real processes; the gateways (their chains built and signed before the clock starts) post their
batches in order, all gateways at once, gateway i to collector i mod N, resending on a 5xx as the
forwarder does. Each gateway's first batch warms the processes up and is not timed. Printed per
configuration:

- accepted: events/s from the first timed post until the last 202 (the collectors and the log
  alone: signature and chain checks, the append acked by a quorum of replicas);
- end to end: events/s from the first timed post until the database holds every event (polled).

Afterwards every configuration's database is checked: every event stored once, seqs 1..N.

    .venv/bin/python -m bench.bus_throughput [--events 40000] [--gateways 8] [--batch-size 1000]
"""

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.collector_ingest import fresh_database
from tests.support.ingest_fleet import (
    BusCollector,
    SimGateway,
    SinkWorker,
    build_gateways,
    bus_environment,
    chain_problems,
    prepare_database,
    send_batches,
    stored_events,
)
from tests.support.nats_cluster import NatsCluster
from tests.support.waiting import free_port

CONFIGURATIONS = ((1, 1), (1, 2), (2, 1), (2, 2))  # (collectors, sinks)
REPLICAS = 3
POLL_SECONDS = 0.05
STORED_LIMIT = 600.0  # seconds: a configuration that stores nothing for this long has failed


@dataclass(frozen=True)
class Measured:
    """One configuration's rates, events/s."""

    collectors: int
    sinks: int
    accepted: float
    end_to_end: float


async def wait_stored(url: str, count: int, sinks: Sequence[SinkWorker]) -> None:
    """Poll until the database holds `count` events (a sink that exits is a failure)."""
    deadline = time.perf_counter() + STORED_LIMIT
    while (await stored_events(url) or 0) < count:
        for sink in sinks:
            sink.check()
        if time.perf_counter() > deadline:
            raise SystemExit(f"bus bench: fewer than {count} events stored after {STORED_LIMIT}s")
        await asyncio.sleep(POLL_SECONDS)


async def measure(
    cluster: NatsCluster,
    work: Path,
    gateways: Sequence[SimGateway],
    *,
    collectors: int,
    sinks: int,
    partitions: int,
) -> Measured:
    """Run one configuration on a fresh database and stream."""
    env = bus_environment(
        stream=f"BENCH_{collectors}C{sinks}S", replicas=REPLICAS, partitions=partitions
    )
    async with fresh_database("postgresql") as url:
        await prepare_database(url, gateways)
        workers = [
            SinkWorker(
                bus=cluster.url, db_url=url, name=f"s{i}", log_path=work / f"sink-{i}.log", env=env
            )
            for i in range(sinks)
        ]
        servers = [
            BusCollector(
                bus=cluster.url, db_url=url, port=free_port(), log_path=work / f"c-{i}.log", env=env
            )
            for i in range(collectors)
        ]
        clients = [httpx.AsyncClient(base_url=server.url) for server in servers]
        try:
            async with asyncio.TaskGroup() as group:
                for worker in workers:
                    group.create_task(worker.start())
                for server in servers:
                    group.create_task(server.start())
            routes = {g.gateway_id: clients[i % collectors] for i, g in enumerate(gateways)}
            warm_up, timed = slice(0, 1), slice(1, None)
            await send_batches(routes, gateways, warm_up)
            await wait_stored(url, sum(g.events_in(warm_up) for g in gateways), workers)
            total = sum(len(g.events) for g in gateways)

            started = time.perf_counter()
            await send_batches(routes, gateways, timed)
            accepted = time.perf_counter() - started
            await wait_stored(url, total, workers)
            end_to_end = time.perf_counter() - started
            problems = await chain_problems(url, gateways)
            if problems:
                raise SystemExit(f"bus bench: stored events are wrong: {problems[:5]}")
        finally:
            for client in clients:
                await client.aclose()
            for child in [*servers, *workers]:
                await child.terminate()
    count = sum(g.events_in(timed) for g in gateways)
    return Measured(collectors, sinks, count / accepted, count / end_to_end)


async def main() -> None:
    """Build the chains once, start the cluster once, measure every configuration."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000, help="total events")
    parser.add_argument("--gateways", type=int, default=8, help="gateways sending at once")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=8)
    args = parser.parse_args()
    if args.events // args.gateways <= args.batch_size:
        parser.error("each gateway needs more than one batch (its first one is not timed)")

    gateways = build_gateways(
        args.gateways, events=args.events // args.gateways, batch_size=args.batch_size, prefix="bus"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="tollgate-bus-bench-") as tmp:
        root = Path(tmp)
        with NatsCluster(root / "nats") as cluster:
            for collectors, sinks in CONFIGURATIONS:
                work = root / f"{collectors}c{sinks}s"
                work.mkdir()
                rows.append(
                    await measure(
                        cluster,
                        work,
                        gateways,
                        collectors=collectors,
                        sinks=sinks,
                        partitions=args.partitions,
                    )
                )
    per_gateway = args.events // args.gateways
    print(
        f"ingest through a 3-node JetStream cluster (R{REPLICAS}, {args.partitions} partitions), "
        f"PostgreSQL: {args.gateways} gateways x {per_gateway} events, "
        f"batches of {args.batch_size} (first batch of each gateway not timed)"
    )
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"{os.cpu_count()} cores, load average {load} (1, 5, 15 min) at the end")
    print(f"{'collectors':>10} {'sinks':>6} {'accepted ev/s':>14} {'end to end ev/s':>16}")
    for row in rows:
        print(
            f"{row.collectors:>10} {row.sinks:>6} {row.accepted:>14,.0f} {row.end_to_end:>16,.0f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
