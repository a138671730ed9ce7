"""Archive throughput: one closed month of events moved to its verified file (PostgreSQL).

    python -m bench.archive [--events 200000] [--batch 2500] [--gateways 4]

Stores the events (signed batches through `store_batch`, so each batch's month partition exists
first) into a fresh PostgreSQL database, then times `archive_before` (read the month, write the
gzip JSON Lines file with fsync, read it back and verify every chain and signature, record it,
detach and drop the partition) and, on its own, `verify_archive` of the file (offline, no
database). Also the cost of `ensure_partitions` on its hot path (a month already known), per
batch. Prints events/s and the file's bytes per event.
"""

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from cloud.archive.files import verify_archive
from cloud.archive.service import archive_before
from cloud.db import Database
from cloud.gateways.service import register_gateway
from cloud.ingest.partitions import ensure_partitions
from cloud.ingest.store import store_batch
from cloud.schema import migrate
from cloud.wiring import connect
from shared.events import Batch, UsageEvent
from shared.signing import public_key_pem
from tests.support.batches import batch_document, chain_events, draft

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
MONTH_START = datetime(2024, 3, 1, tzinfo=UTC)  # closed: outside the correction window


def month_events(
    gateway_id: str,
    count: int,
    *,
    start: datetime = MONTH_START,
    span: timedelta = timedelta(days=30),
) -> list[UsageEvent]:
    """`count` chained events spread over `span` from `start` (March 2024)."""
    step = span / max(count, 1)
    drafts = []
    for n in range(count):
        at = start + step * n
        drafts.append(
            draft(n, device_id=f"meter-{n % 16}", quantity=str(n % 9 + 1)).model_copy(
                update={"occurred_at": at, "observed_at": at}
            )
        )
    return chain_events(drafts, gateway_id=gateway_id)


async def fill(db: Database, *, events: int, batch: int, gateways: int) -> None:
    """Register the gateways and store their batches."""
    for index in range(gateways):
        key = Ed25519PrivateKey.generate()
        gateway_id = f"bench-archive-{index}"
        async with db.transaction(write=True) as session:
            pem = public_key_pem(key.public_key()).encode("ascii")
            await register_gateway(session=session, gateway_id=gateway_id, public_key=pem)
        chain = month_events(gateway_id, events // gateways)
        for offset in range(0, len(chain), batch):
            signed = Batch.model_validate(batch_document(chain[offset : offset + batch], key))

            def work(session: Session, signed: Batch = signed) -> None:
                store_batch(session, batch=signed)

            await db.run_write(work)


async def hot_path(db: Database, events: list[UsageEvent], rounds: int = 200) -> float:
    """Microseconds per call of `ensure_partitions` for a batch of a known (current) month."""

    def work(session: Session) -> float:
        ensure_partitions(session, events)  # the month is known from here on
        start = time.perf_counter()
        for _ in range(rounds):
            ensure_partitions(session, events)
        return (time.perf_counter() - start) / rounds * 1e6

    return await db.run_write(work)


async def main(events: int, batch: int, gateways: int) -> None:
    """Run the benchmark on a fresh database and print the numbers."""
    name = f"tollgate_bench_{uuid.uuid4().hex[:8]}"
    try:
        admin = await asyncpg.connect(PG_ADMIN, timeout=3)
    except (OSError, asyncpg.PostgresError):
        print("archive: n/a, PostgreSQL unreachable")
        return
    await admin.execute(f'CREATE DATABASE "{name}"')
    connect()  # the change feed's consumers, as every process storing batches
    try:
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        async with Database(url) as db:
            await migrate(db.engine)
            await fill(db, events=events, batch=batch, gateways=gateways)
            now = datetime.now(UTC)
            sample = month_events("bench-hot", batch, start=now, span=timedelta(seconds=1))
            late = month_events("bench-late", batch)
            hot = await hot_path(db, sample)
            cold = await hot_path(db, late)  # an archivable month: checked under its lock
            with tempfile.TemporaryDirectory(prefix="tollgate-archive-") as tmp:
                start = time.perf_counter()
                (done,) = await archive_before(db, before=(2024, 4), directory=Path(tmp))
                archived = time.perf_counter() - start
                start = time.perf_counter()
                summary, _ = verify_archive(done.path)
                verified = time.perf_counter() - start
                size = done.path.stat().st_size
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    assert summary.event_count == done.event_count == events // gateways * gateways
    count = done.event_count
    print(f"archive of one month: {count:,} events in {done.batch_count:,} batches, {gateways} gw")
    print(f"  archive (read, write, fsync, verify, drop)  {count / archived:>10,.0f} events/s")
    print(f"  archive verify FILE (offline)               {count / verified:>10,.0f} events/s")
    print(f"  file size                                   {size / count:>10.1f} bytes/event")
    print(f"  ensure_partitions, {batch}-event batch of this month  {hot:>8.1f} us/batch")
    print(f"  ensure_partitions, {batch}-event batch of a closed month {cold:>6.1f} us/batch")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2_500)
    parser.add_argument("--gateways", type=int, default=4)
    options = parser.parse_args()
    asyncio.run(main(options.events, options.batch, options.gateways))
