"""What bounds PostgreSQL's COPY ceiling for the collector's rows: the events table's constraints.

The same rows `bench.collector_ingest` stores (1000-event batches, their batch rows made first,
untimed) are copied with asyncpg `COPY`, one transaction per batch, into a fresh database's
`events` table as migrated, then without its foreign keys, then without foreign keys and
secondary indexes, then as migrated with `synchronous_commit = off`. Each variant prints rows/s;
docs/scaling.md reads the table from it.

    .venv/bin/python -m bench.copy_ceiling [--events 100000]
"""

import argparse
import asyncio
import functools
import os

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.collector_ingest import build_batches, copy_ceiling

GATEWAYS = 4
VARIANTS = {
    "as migrated (PK, 2 indexes, FKs to gateways and batches)": (),
    "without the foreign keys": ("drop_foreign_keys",),
    "without foreign keys and secondary indexes": ("drop_foreign_keys", "drop_indexes"),
    "as migrated, synchronous_commit = off": ("async_commit",),
}


async def copy_rate(events: int, changes: tuple[str, ...]) -> float:
    """Rows/s of COPY into a fresh events table with `changes` made first."""
    keys = {f"copy-gw-{i}": Ed25519PrivateKey.generate() for i in range(GATEWAYS)}
    bodies = {
        gateway_id: build_batches(gateway_id, key, events=events // GATEWAYS, size=1000)
        for gateway_id, key in keys.items()
    }
    change = functools.partial(change_table, changes=changes)
    rows, elapsed = await copy_ceiling(bodies, keys, change_table=change)
    return rows / elapsed


async def change_table(connection: asyncpg.Connection, *, changes: tuple[str, ...]) -> None:
    """Drop the events table's foreign keys or secondary indexes, or relax commits."""
    if "drop_foreign_keys" in changes:
        names = await connection.fetch(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'events'::regclass"
            " AND contype = 'f'"
        )
        for (name,) in names:
            await connection.execute(f'ALTER TABLE events DROP CONSTRAINT "{name}"')
    if "drop_indexes" in changes:
        names = await connection.fetch(
            "SELECT i.indexrelid::regclass::text FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indrelid"
            " WHERE c.relname = 'events' AND NOT i.indisprimary"
        )
        for (name,) in names:
            await connection.execute(f"DROP INDEX {name}")
    if "async_commit" in changes:
        await connection.execute("SET synchronous_commit = off")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"COPY ceiling by table shape, {args.events} rows, {os.cpu_count()} cores, load {load}")
    for name, changes in VARIANTS.items():
        rate = await copy_rate(args.events, changes)
        print(f"  {name:<58} {rate:>10,.0f} rows/s")


if __name__ == "__main__":
    asyncio.run(main())
