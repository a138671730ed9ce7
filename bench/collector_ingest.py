"""Collector ingest throughput: signed 1000-event batches through a real collector.

For each backend (a fresh SQLite file and a fresh PostgreSQL database) this migrates the schema,
registers the gateways, starts `tollgate-cloud serve` on loopback (or, with `--transport asgi`, runs
the app in this process), posts pre-built signed batches (one sender per gateway, in seq order,
all gateways at once) and prints events/s. Signatures and chains are verified by the collector as
in production, and the change feed's consumers (sessions, twins, quality) are subscribed as in
production; batch building and signing happen before the clock starts.

On PostgreSQL it also prints the raw ceiling for the same rows: asyncpg COPY of exactly the rows
the collector stores, one transaction per batch as the collector commits them, into the events
table of another fresh database, timed alone; and the collector's ratio to it.

Then, per backend, the cost per event of each step (`--no-breakdown` skips it): every batch goes
through the collector's own functions one at a time in this process, each step timed with
perf_counter: decode (orjson's envelope check, then msgspec; pydantic, the fallback, beside it),
signature (the gateway's key read and Ed25519 over the header), chain (SHA-256 recomputed),
insert (lock, stored links, batch row, COPY or executemany), consumers (each feed consumer) and
commit. Decode and chain are the best of three runs (a shared machine preempts); the database
steps run once. These are the per-core costs of the capacity model (docs/scaling.md).

    .venv/bin/python -m bench.collector_ingest [--events 100000] [--gateways 4] [--only sqlite]

Target (issue 17): >= 50,000 events/s per collector process on PostgreSQL.
"""

import argparse
import asyncio
import contextlib
import functools
import os
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import asyncpg
import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import insert
from sqlalchemy.orm import Session

from cloud import wiring
from cloud.app import create_app
from cloud.db import Database
from cloud.gateways.service import register_gateway
from cloud.ingest import feed
from cloud.ingest.bulk_insert import COPY_COLUMNS, copy_records
from cloud.ingest.models import ReceivedBatch
from cloud.ingest.partitions import ensure_partitions
from cloud.ingest.service import _validated, check_signer, parse_batch, parse_header, read_document
from cloud.ingest.store import check_links, insert_new, lock_gateway, new_events, stored_links
from cloud.schema import migrate
from cloud.settings import Settings
from shared.events import Batch, BatchHeader, EventDraft
from shared.signing import public_key_pem, verify_events
from tests.support.batches import batch_document, chain_events, draft
from tests.support.waiting import free_port

T = TypeVar("T")
PG_ADMIN = os.environ.get("TOLLGATE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def build_batches(
    gateway_id: str, key: Ed25519PrivateKey, *, events: int, size: int
) -> list[bytes]:
    """One gateway's chain of `events` events, cut into signed batches of `size`, as bodies.

    The events happened in the last `events` seconds (the current month's partition, as live
    ingest writes), each at a clock's microseconds, otherwise like the tests' `draft`.
    """
    start = datetime.now(UTC) - timedelta(seconds=events + 1)
    drafts = [_live_draft(n, start=start) for n in range(1, events + 1)]
    chain = chain_events(drafts, gateway_id=gateway_id)
    return [
        orjson.dumps(batch_document(chain[i : i + size], key)) for i in range(0, len(chain), size)
    ]


def _live_draft(n: int, *, start: datetime) -> EventDraft:
    at = start + timedelta(seconds=n, microseconds=n * 37)
    return draft(n, device_id=f"dev-{n % 50}").model_copy(
        update={"occurred_at": at, "observed_at": at}
    )


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
    """Measure one backend and print its lines."""
    clients = {"asgi": asgi_client, "uvicorn": uvicorn_client}
    async with fresh_database(backend) as url:
        await prepare(url, keys)
        async with clients[args.transport](url) as client:
            elapsed = await send_all(client, bodies)
    total = sum(len(b) for b in bodies.values()) * args.batch_size
    rate = total / elapsed
    print(
        f"{backend:<10} {args.transport:<8} {total:>8} events in {elapsed:6.2f} s = "
        f"{rate:>9,.0f} events/s"
    )
    if backend == "postgresql":
        copied, copy_elapsed = await copy_ceiling(bodies, keys)
        ceiling = copied / copy_elapsed
        print(
            f"{'':<10} {'COPY':<8} {copied:>8} rows   in {copy_elapsed:6.2f} s = "
            f"{ceiling:>9,.0f} rows/s (raw asyncpg COPY ceiling, same rows) | collector / "
            f"ceiling = {rate / ceiling:.2f}"
        )
    if args.breakdown:
        async with fresh_database(backend) as url:
            await prepare(url, keys)
            costs = await breakdown(url, bodies)
        print(f"{'':<10} per event (us, one batch at a time in this process): " + _costs(costs))


def decoded(bodies: dict[str, list[bytes]]) -> list[Batch]:
    """Every batch as the collector decodes it (the same values it stores)."""
    return [parse_batch(body, header=parse_header(orjson.loads(body))) for body in _all(bodies)]


def _all(bodies: dict[str, list[bytes]]) -> list[bytes]:
    return [body for batches in bodies.values() for body in batches]


async def copy_ceiling(
    bodies: dict[str, list[bytes]],
    keys: dict[str, Ed25519PrivateKey],
    *,
    change_table: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
) -> tuple[int, float]:
    """COPY the collector's rows into a fresh events table, one transaction per batch; the row
    count and the seconds spent in the COPY transactions alone (batch rows and partitions are
    made first, untimed; then `change_table`, if given, on the copying connection)."""
    batches = decoded(bodies)
    async with fresh_database("postgresql") as url:
        await prepare(url, keys)
        async with Database(url) as db:
            ids = await db.run_write(functools.partial(_batch_rows, batches=batches))
        received_at = datetime.now(UTC)
        records = [
            copy_records(batch.events, batch_id=batch_id, received_at=received_at)
            for batch, batch_id in zip(batches, ids, strict=True)
        ]
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            if change_table is not None:
                await change_table(connection)
            started = time.perf_counter()
            for rows in records:
                async with connection.transaction():
                    await connection.copy_records_to_table(
                        "events", records=rows, columns=COPY_COLUMNS
                    )
            elapsed = time.perf_counter() - started
        finally:
            await connection.close()
    return sum(len(rows) for rows in records), elapsed


def _batch_rows(session: Session, *, batches: list[Batch]) -> list[int]:
    ids = []
    for batch in batches:
        ensure_partitions(session, batch.events)
        batch_id = session.scalar(
            insert(ReceivedBatch)
            .values(
                gateway_id=batch.gateway_id,
                first_seq=batch.first_seq,
                last_seq=batch.last_seq,
                prev_hash=batch.prev_hash,
                last_hash=batch.last_hash,
                signature=batch.signature,
                received_at=datetime.now(UTC),
                event_count=len(batch.events),
            )
            .returning(ReceivedBatch.id)
        )
        assert batch_id is not None
        ids.append(batch_id)
    return ids


async def breakdown(url: str, bodies: dict[str, list[bytes]]) -> dict[str, float]:
    """Seconds per event of each step of ingest, every batch through the collector's functions."""
    settings = Settings(db_url=url)
    wiring.connect(settings)
    limit = settings.limits.max_batch_events
    spent: dict[str, float] = defaultdict(float)
    clock = time.perf_counter
    events = 0
    async with Database(url) as db:
        for body in _all(bodies):
            # The CPU-only steps take the best of REPEATS runs: on a shared machine a run may be
            # preempted, and the best run is the step's own cost.
            envelope, header = _best(functools.partial(_envelope, body, limit))
            decode, batch = _best(functools.partial(parse_batch, body, header=header))
            spent["decode"] += envelope + decode
            spent["decode: envelope"] += envelope
            spent["pydantic decode (fallback)"] += (
                envelope + _best(functools.partial(_validated, Batch, body))[0]
            )
            signed = clock()
            await check_signer(db=db, header=header)
            spent["signature"] += clock() - signed
            spent["chain"] += _best(functools.partial(verify_events, batch))[0]
            written = clock()
            await db.run_write(functools.partial(_store_timed, batch=batch, spent=spent))
            spent["write (all)"] += clock() - written
            events += len(batch.events)
    parts = ("insert", *(f"consumer {name}" for name in feed.subscribers()))
    spent["commit"] = spent["write (all)"] - sum(spent[name] for name in parts)
    return {name: seconds / events for name, seconds in spent.items()}


REPEATS = 3


def _envelope(body: bytes, limit: int) -> BatchHeader:
    return parse_header(read_document(body, limit=limit))


def _best(step: Callable[[], T]) -> tuple[float, T]:
    """The shortest of REPEATS runs of `step`, and its result."""
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        result = step()
        best = min(best, time.perf_counter() - started)
    return best, result


def _store_timed(session: Session, *, batch: Batch, spent: dict[str, float]) -> None:
    """`store_batch` step by step (a batch of new events, so no duplicate incident)."""
    clock = time.perf_counter
    started = clock()
    lock_gateway(session, gateway_id=batch.gateway_id)
    links = stored_links(session, batch=batch)
    fresh = new_events(batch, links)
    check_links(batch, links)
    batch_id, received_at = insert_new(session, batch=batch, events=fresh)
    spent["insert"] += clock() - started
    stored = feed.StoredBatch(
        gateway_id=batch.gateway_id,
        batch_id=batch_id,
        received_at=received_at,
        events=fresh,
        duplicates=0,
    )
    for name, consumer in _consumers().items():
        started = clock()
        consumer(session, stored)
        spent[f"consumer {name}"] += clock() - started


def _consumers() -> dict[str, Callable[[Session, feed.StoredBatch], None]]:
    return dict(feed._consumers)  # the bench times each consumer by name


def _costs(costs: dict[str, float]) -> str:
    order = ["decode", "pydantic decode (fallback)", "signature", "chain", "insert"]
    order += sorted(name for name in costs if name.startswith("consumer "))
    order += ["commit"]
    shown = [f"{name} {costs[name] * 1e6:.2f}" for name in order if name in costs]
    checks = costs["decode"] + costs["signature"] + costs["chain"]
    total = checks + costs["write (all)"]
    return " | ".join([*shown, f"collector checks {checks * 1e6:.2f}", f"total {total * 1e6:.2f}"])


async def main() -> None:
    """Build the batches once, then measure each backend."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="total events")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--gateways", type=int, default=4, help="gateways sending at once")
    parser.add_argument("--transport", choices=["uvicorn", "asgi"], default="uvicorn")
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false")
    args = parser.parse_args()

    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"collector ingest on {os.cpu_count()} cores, load average {load} (shared machine?)")
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
