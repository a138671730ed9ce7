"""`make bench`: the numbers the issues ask for, printed with their ratios.

1. outbox append rate: durable (WAL, synchronous=FULL), group commit of 5,000 events;
2. raw SQLite executemany of the same rows with the same pragmas: the ceiling;
3. end-to-end ingest: the real forwarder drains a pre-filled outbox into the real collector
   (`tollgate-cloud serve` on loopback, signatures and chain verified) on SQLite and PostgreSQL,
   one gateway, one request in flight (so the collector receives the runs in order).

`bench/collector_ingest.py` (also run by `make bench`) measures the collector alone with several
gateways sending at once.
`bench/bus_throughput.py` (also run by `make bench`) measures ingest through the three-node
JetStream cluster with 1 and 2 collectors x 1 and 2 sinks on PostgreSQL.
"""

import argparse
import asyncio
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from edge.config import ForwarderConfig
from edge.forwarder import Forwarder
from edge.keys import create_private_key
from edge.outbox import Outbox
from firmware_sims.processes import CollectorProcess
from shared.events import EventDraft
from shared.signing import public_key_pem
from tests.support.batches import draft
from tests.support.waiting import free_port

GROUP = 5_000
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def drafts(count: int) -> list[EventDraft]:
    return [draft(n, device_id=f"panel-{n % 8}", quantity=str(n % 17 + 1)) for n in range(count)]


async def fill_outbox(path: Path, items: list[EventDraft]) -> float:
    """Append in groups; return events/s."""
    async with Outbox(path, gateway_id="bench-gw", budget_bytes=2**40) as outbox:
        start = time.perf_counter()
        for offset in range(0, len(items), GROUP):
            await outbox.append(items[offset : offset + GROUP])
        return len(items) / (time.perf_counter() - start)


def raw_sqlite_rate(source: Path, target: Path) -> float:
    """executemany of the outbox's own rows into an identical table, same pragmas."""
    rows = sqlite3.connect(source).execute("SELECT * FROM events ORDER BY seq").fetchall()
    db = sqlite3.connect(target, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, device_id TEXT, occurred_at TEXT, "
        "prev_hash TEXT, hash TEXT, wire BLOB)"
    )
    start = time.perf_counter()
    for offset in range(0, len(rows), GROUP):
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", rows[offset : offset + GROUP]
        )
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return len(rows) / elapsed


async def ingest_rate(db_url: str, work: Path, items: list[EventDraft], batch: int) -> float:
    """Forwarder -> real collector over loopback; return events/s for draining the outbox."""
    key = create_private_key(work / "gateway.key")
    pem = work / "gateway.pub"
    pem.write_text(public_key_pem(key.public_key()))
    collector = CollectorProcess(db_url=db_url, port=free_port(), log_path=work / "collector.log")
    await collector.migrate()
    await collector.add_gateway("bench-gw", pem)
    await fill_outbox(work / "outbox.sqlite", items)
    config = ForwarderConfig(batch_max_events=batch)
    async with (
        collector,
        Outbox(work / "outbox.sqlite", gateway_id="bench-gw", budget_bytes=2**40) as outbox,
        httpx.AsyncClient(base_url=collector.url, headers=collector.reader_headers()) as client,
    ):
        forwarder = Forwarder(
            outbox=outbox, client=client, gateway_id="bench-gw", key=key, config=config
        )
        start = time.perf_counter()
        sent = await forwarder.forward_pending()
        elapsed = time.perf_counter() - start
        if sent != len(items) or forwarder.health.dead_lettered:
            raise SystemExit(f"ingest bench lost events: sent {sent} of {len(items)}")
    return sent / elapsed


async def with_postgres(work: Path, items: list[EventDraft], batch: int) -> float | None:
    import asyncpg

    name = f"tollgate_bench_{uuid.uuid4().hex[:8]}"
    try:
        admin = await asyncpg.connect(PG_ADMIN, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return None
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        return await ingest_rate(url, work, items, batch)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main(events: int, batch: int) -> None:
    items = drafts(events)
    with tempfile.TemporaryDirectory(prefix="tollgate-bench-") as tmp:
        root = Path(tmp)
        outbox = await fill_outbox(root / "outbox.sqlite", items)
        raw = raw_sqlite_rate(root / "outbox.sqlite", root / "raw.sqlite")
        for sub in ("sqlite", "pg"):
            (root / sub).mkdir()
        sqlite_ingest = await ingest_rate(
            f"sqlite+aiosqlite:///{root}/sqlite/cloud.sqlite", root / "sqlite", items, batch
        )
        pg_ingest = await with_postgres(root / "pg", items, batch)
    print(f"events per run: {events}, group commit {GROUP}, batch {batch}")
    print(f"{'measure':44} {'events/s':>10} {'target':>8} {'/ ceiling':>10}")
    rows = [
        ("raw SQLite executemany (ceiling)", raw, None),
        ("outbox append (durable, group commit)", outbox, 50_000),
        ("ingest agent -> collector, SQLite", sqlite_ingest, 20_000),
        ("ingest agent -> collector, PostgreSQL", pg_ingest, 20_000),
    ]
    for label, rate, target in rows:
        if rate is None:
            print(f"{label:44} {'n/a: PostgreSQL unreachable':>30}")
            continue
        verdict = "" if target is None else (" ok" if rate >= target else " BELOW")
        shown_target = "" if target is None else f"{target:,}"
        print(f"{label:44} {rate:>10,.0f} {shown_target:>8} {rate / raw:>9.2f}x{verdict}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=ForwarderConfig().batch_max_events)
    options = parser.parse_args()
    asyncio.run(main(options.events, options.batch))
