"""Simulated gateways, collectors and sinks around the JetStream ingest log, as real processes.

The cluster tests (tests/cloud/bus/cluster/) and the cluster bench (bench/bus_throughput.py) use
the same pieces:

- `SimGateway`: a gateway's signed chain cut into batches, built before anything is measured;
- `deliver`: one batch posted the way the edge forwarder does it (the same bytes again on a 5xx,
  a retryable 4xx, a timeout or a refused connection, until a 2xx; any other answer is a failure);
- `BusCollector` / `SinkWorker`: `python -m cloud.cli serve --bus ...` and `... sink ...`;
- `prepare_database` / `stored_events` / `chain_problems`: a migrated database with the gateways
  registered, and what it holds afterwards (every event once, seqs 1..N, the sent hashes, no
  chain incidents).
"""

import asyncio
import contextlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.db import Database
from cloud.gateways.service import register_gateway
from cloud.schema import migrate
from edge.forwarder import RETRYABLE_STATUS
from firmware_sims.processes import ProcessFailed, _Child, _tail
from shared.events import UsageEvent
from shared.signing import public_key_pem
from tests.support.batches import batch_document, chain_events, draft

REQUEST_TIMEOUT = 10.0  # seconds, like the forwarder's request timeout
RETRY_PAUSE = 0.1  # seconds between two sends of the same batch
STARTUP_TIMEOUT = 30.0
SINK_READY = b": consuming "  # what `cloud.cli sink` prints once it consumes
CHAIN_INCIDENTS = ("chain_broken", "seq_conflict", "seq_gap")


@dataclass
class SimGateway:
    """A gateway: its key, its whole chain, and the chain cut into signed request bodies."""

    gateway_id: str
    key: Ed25519PrivateKey
    events: list[UsageEvent]
    bodies: list[bytes]
    batch_size: int
    resends: int = 0  # sends beyond the first of a batch (5xx, timeouts, refused connections)
    statuses: dict[int, int] = field(default_factory=dict)  # answers seen, by status code

    @classmethod
    def build(cls, gateway_id: str, *, events: int, batch_size: int) -> "SimGateway":
        """A fresh key and a chain of `events` events in batches of `batch_size`."""
        key = Ed25519PrivateKey.generate()
        drafts = [draft(n, device_id=f"dev-{n % 7}") for n in range(1, events + 1)]
        chain = chain_events(drafts, gateway_id=gateway_id)
        bodies = [
            orjson.dumps(batch_document(chain[i : i + batch_size], key))
            for i in range(0, len(chain), batch_size)
        ]
        return cls(
            gateway_id=gateway_id, key=key, events=chain, bodies=bodies, batch_size=batch_size
        )

    def events_in(self, batches: slice) -> int:
        """How many events the bodies `batches` carry."""
        start, stop, _ = batches.indices(len(self.bodies))
        return len(self.events[start * self.batch_size : stop * self.batch_size])

    def hashes(self) -> dict[int, str]:
        """seq -> hash of every event sent."""
        return {event.seq: event.hash for event in self.events}


def build_gateways(
    count: int, *, events: int, batch_size: int, prefix: str = "gw"
) -> list[SimGateway]:
    """`count` gateways of `events` events each."""
    return [
        SimGateway.build(f"{prefix}-{i}", events=events, batch_size=batch_size)
        for i in range(count)
    ]


async def deliver(client: httpx.AsyncClient, gateway: SimGateway, body: bytes) -> None:
    """Post one batch until a 2xx, resending the same bytes as the forwarder does."""
    while True:
        try:
            response = await client.post(
                "/v1/batches",
                content=body,
                headers={"content-type": "application/json"},
                timeout=REQUEST_TIMEOUT,
            )
        except httpx.TransportError:
            gateway.resends += 1
            await asyncio.sleep(RETRY_PAUSE)
            continue
        status = response.status_code
        gateway.statuses[status] = gateway.statuses.get(status, 0) + 1
        if 200 <= status < 300:
            return
        if status >= 500 or status in RETRYABLE_STATUS:
            gateway.resends += 1
            await asyncio.sleep(RETRY_PAUSE)
            continue
        raise AssertionError(f"{gateway.gateway_id}: collector refused a batch: {response.text}")


async def send_batches(
    routes: Mapping[str, httpx.AsyncClient], gateways: Sequence[SimGateway], batches: slice
) -> None:
    """Every gateway sends its `batches` in order, all gateways at once; `routes` maps a gateway
    id to the client of the collector it talks to."""

    async def send(gateway: SimGateway) -> None:
        for body in gateway.bodies[batches]:
            await deliver(routes[gateway.gateway_id], gateway, body)

    async with asyncio.TaskGroup() as group:
        for gateway in gateways:
            group.create_task(send(gateway))


def bus_environment(*, stream: str, replicas: int, partitions: int) -> dict[str, str]:
    """The settings every process of one test shares (the stream is the test's own)."""
    return {
        "TOLLGATE_BUS_STREAM": stream,
        "TOLLGATE_BUS_REPLICAS": str(replicas),
        "TOLLGATE_BUS_PARTITIONS": str(partitions),
    }


class BusCollector(_Child):
    """`python -m cloud.cli serve --bus URL --db URL` on a loopback port."""

    def __init__(
        self, *, bus: str, db_url: str, port: int, log_path: Path, env: Mapping[str, str]
    ) -> None:
        super().__init__(
            [
                sys.executable, "-m", "cloud.cli", "serve", "--bus", bus, "--db", db_url,
                "--host", "127.0.0.1", "--port", str(port),
            ],
            log_path=log_path,
            env=env,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"

    async def start(self) -> None:
        """Serve, and wait until /healthz answers."""
        await self.spawn()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT
        async with httpx.AsyncClient(base_url=self.url) as client:
            while loop.time() < deadline:
                if not self.running:
                    raise ProcessFailed(f"collector exited:\n{_tail(self.log_path)}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/healthz", timeout=1)).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        await self.terminate()
        raise ProcessFailed(f"collector did not become healthy:\n{_tail(self.log_path)}")


class SinkWorker(_Child):
    """`python -m cloud.cli sink --bus URL --db URL --name NAME`."""

    def __init__(
        self, *, bus: str, db_url: str, name: str, log_path: Path, env: Mapping[str, str]
    ) -> None:
        super().__init__(
            [
                sys.executable, "-m", "cloud.cli", "sink", "--bus", bus, "--db", db_url,
                "--name", name,
            ],
            log_path=log_path,
            env=env,
        )  # fmt: skip
        self.name = name

    async def start(self) -> None:
        """Start, and wait until the sink says it consumes (connected to the database and the
        log, its signal handlers set): a SIGTERM from then on is a clean stop."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        await self.spawn()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT
        while loop.time() < deadline:
            self.check()
            with self.log_path.open("rb") as log:
                log.seek(offset)
                if SINK_READY in log.read():
                    return
            await asyncio.sleep(0.1)
        await self.terminate()
        raise ProcessFailed(f"sink {self.name} did not start consuming:\n{_tail(self.log_path)}")

    def check(self) -> None:
        """Raise with its log if the sink exited."""
        if self.process is not None and self.process.returncode is not None:
            raise ProcessFailed(
                f"sink {self.name} exited {self.process.returncode}:\n{_tail(self.log_path)}"
            )


async def prepare_database(url: str, gateways: Sequence[SimGateway]) -> None:
    """Migrate a fresh database and register the gateways' public keys."""
    async with Database(url) as db:
        await migrate(db.engine)
        async with db.transaction() as session:
            for gateway in gateways:
                pem = public_key_pem(gateway.key.public_key()).encode("ascii")
                await register_gateway(
                    session=session, gateway_id=gateway.gateway_id, public_key=pem
                )


def libpq_dsn(url: str) -> str:
    """asyncpg's DSN of a SQLAlchemy PostgreSQL URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def stored_events(url: str) -> int | None:
    """How many events the database holds; None while it is unreachable."""
    try:
        connection = await asyncpg.connect(libpq_dsn(url), timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None
    try:
        return int(await connection.fetchval("SELECT count(*) FROM events"))
    except asyncpg.PostgresError:
        return None
    finally:
        await connection.close()


async def chain_problems(url: str, gateways: Sequence[SimGateway]) -> list[str]:
    """What is wrong with the stored events against the sent chains (empty: every event stored
    exactly once, each gateway's seqs 1..N with the sent hashes, no chain incidents)."""
    connection = await asyncpg.connect(libpq_dsn(url), timeout=10)
    try:
        rows = await connection.fetch("SELECT gateway_id, seq, hash FROM events")
        incidents = await connection.fetch(
            "SELECT kind, gateway_id, detail FROM incidents WHERE kind = ANY($1::text[])",
            list(CHAIN_INCIDENTS),
        )
    finally:
        await connection.close()
    problems = [
        f"incident {row['kind']} of {row['gateway_id']}: {row['detail']}" for row in incidents
    ]
    stored: dict[str, dict[int, str]] = {}
    for row in rows:
        seqs = stored.setdefault(row["gateway_id"], {})
        if row["seq"] in seqs:
            problems.append(f"{row['gateway_id']} seq {row['seq']} stored twice")
        seqs[row["seq"]] = row["hash"]
    for gateway in gateways:
        held = stored.pop(gateway.gateway_id, {})
        sent = gateway.hashes()
        if sorted(held) != list(range(1, len(sent) + 1)):
            missing = sorted(set(sent) - set(held))[:5]
            problems.append(
                f"{gateway.gateway_id}: {len(held)} of {len(sent)} seqs stored, missing {missing}"
            )
        wrong = [seq for seq, digest in held.items() if sent.get(seq) != digest]
        if wrong:
            problems.append(f"{gateway.gateway_id}: hashes differ at seqs {wrong[:5]}")
    problems.extend(f"events of an unknown gateway {gateway_id}" for gateway_id in stored)
    return problems
