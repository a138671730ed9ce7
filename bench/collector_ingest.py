"""Collector ingest throughput: signed 1000-event batches through a real collector.

For each backend (a fresh SQLite file and a fresh PostgreSQL database) this migrates the schema,
registers the gateways, starts `tollgate-cloud serve` on loopback (or, with `--transport asgi`, runs
the app in this process), posts pre-built signed batches (one sender per gateway, in seq order,
all gateways at once) and prints events/s. Signatures and chains are verified by the collector as
in production; batch building and signing happen before the clock starts.

    .venv/bin/python -m bench.collector_ingest [--events 100000] [--gateways 4] [--only sqlite]

Target (issue): >= 20,000 events/s on SQLite and on PostgreSQL on a 2-core machine.
"""

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.app import create_app
from cloud.db import Database
from cloud.gateways.service import register_gateway
from cloud.schema import migrate
from cloud.settings import Settings
from shared.signing import public_key_pem
from tests.support.batches import batch_document, chain_events, draft
from tests.support.waiting import free_port

PG_ADMIN = os.environ.get("TOLLGATE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def build_batches(
    gateway_id: str, key: Ed25519PrivateKey, *, events: int, size: int
) -> list[bytes]:
    """One gateway's chain of `events` events, cut into signed batches of `size`, as bodies."""
    chain = chain_events(
        [draft(n, device_id=f"dev-{n % 50}") for n in range(1, events + 1)], gateway_id=gateway_id
    )
    return [
        orjson.dumps(batch_document(chain[i : i + size], key)) for i in range(0, len(chain), size)
    ]


async def prepare(url: str, keys: dict[str, Ed25519PrivateKey]) -> None:
    """Migrate a fresh database and register the gateways."""
    async with Database(url) as db:
        await migrate(db.engine)
        async with db.transaction() as session:
            for gateway_id, key in keys.items():
                pem = public_key_pem(key.public_key()).encode("ascii")
                await register_gateway(session=session, gateway_id=gateway_id, public_key=pem)


async def send_all(client: httpx.AsyncClient, bodies: dict[str, list[bytes]]) -> float:
    """Post every gateway's batches (gateways in parallel); the elapsed seconds."""

    async def send(batches: list[bytes]) -> None:
        for body in batches:
            response = await client.post(
                "/v1/batches", content=body, headers={"content-type": "application/json"}
            )
            response.raise_for_status()
            assert response.json()["stored"] > 0, response.text

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for batches in bodies.values():
            group.create_task(send(batches))
    return time.perf_counter() - started


@contextlib.asynccontextmanager
async def asgi_client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app in this process, reached through httpx.ASGITransport."""
    app = create_app(Settings(db_url=url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            yield client


@contextlib.asynccontextmanager
async def uvicorn_client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    """`tollgate-cloud serve` in a child process on a free loopback port."""
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cloud.cli", "serve", "--db", url, "--port", str(port),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            await _wait_healthy(client, server)
            yield client
    finally:
        if server.returncode is None:
            server.terminate()
        await server.wait()


async def _wait_healthy(client: httpx.AsyncClient, server: asyncio.subprocess.Process) -> None:
    for _ in range(200):
        if server.returncode is not None:
            raise RuntimeError(f"collector exited with {server.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if (await client.get("/healthz")).status_code == 200:
                return
        await asyncio.sleep(0.05)
    raise RuntimeError("collector did not become healthy")


@contextlib.asynccontextmanager
async def fresh_database(backend: str) -> AsyncIterator[str]:
    """A fresh SQLite file or PostgreSQL database, removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite+aiosqlite:///{tmp}/bench.sqlite"
        return
    name = f"tollgate_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield (
            PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
            + "/"
            + name
        )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def run_backend(
    backend: str,
    args: argparse.Namespace,
    bodies: dict[str, list[bytes]],
    keys: dict[str, Ed25519PrivateKey],
) -> None:
    """Measure one backend and print its line."""
    clients = {"asgi": asgi_client, "uvicorn": uvicorn_client}
    async with fresh_database(backend) as url:
        await prepare(url, keys)
        async with clients[args.transport](url) as client:
            elapsed = await send_all(client, bodies)
    total = sum(len(b) for b in bodies.values()) * args.batch_size
    print(
        f"{backend:<10} {args.transport:<8} {total:>8} events in {elapsed:6.2f} s = "
        f"{total / elapsed:>9,.0f} events/s"
    )


async def main() -> None:
    """Build the batches once, then measure each backend."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="total events")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--gateways", type=int, default=4, help="gateways sending at once")
    parser.add_argument("--transport", choices=["uvicorn", "asgi"], default="uvicorn")
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()

    keys = {f"bench-gw-{i}": Ed25519PrivateKey.generate() for i in range(args.gateways)}
    per_gateway = args.events // args.gateways
    bodies = {
        gateway_id: build_batches(gateway_id, key, events=per_gateway, size=args.batch_size)
        for gateway_id, key in keys.items()
    }
    for backend in ("sqlite", "postgresql"):
        if args.only in (None, backend):
            await run_backend(backend, args, bodies, keys)


if __name__ == "__main__":
    asyncio.run(main())
