"""Ingest with the fleet view's consumers on and off: device twins and data-quality detection.

The change feed hands every stored batch to its consumers inside the batch's transaction
(`cloud/ingest/feed.py`); sessions always consume it, twins and detection are what issue 14
added. This bench posts the same signed batches (1,000 events each, 4 gateways in parallel, 50
devices bound to an account whose plan bills their events) into a fresh database per run, through
the app in this process (ASGI, so that the ratio measures the consumers, not the HTTP stack),
first with only the sessions subscribed, then with every consumer, twice each, and prints the
best rate of each and their ratio (target >= 0.9).

    .venv/bin/python -m bench.fleet_ingest [--events 40000] [--only sqlite|postgresql]
"""

import argparse
import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.collector_ingest import asgi_client, build_batches, fresh_database, prepare, send_all
from cloud.catalog.loader import load_catalog, parse_catalog
from cloud.db import Database
from cloud.ingest import feed
from cloud.wiring import connect

DEVICES = 50
BATCH = 1_000
CATALOG = """
[[sites]]
id = "bench-site"
name = "Bench site"

[[profiles]]
id = "alarm-panel"
name = "Alarm panel"

[[metrics]]
id = "door_opens"
name = "Door openings"
source = "events"
aggregation = "sum"
field = "quantity"
profiles = ["alarm-panel"]
names = ["door_open"]

[[plans]]
id = "bench-plan"
name = "Bench plan"
currency = "EUR"

[[plans.versions]]
effective_from = 2026-01-01T00:00:00Z
base_fee = "1.00"

[[plans.versions.charges]]
metric = "door_opens"
model = "standard"
description = "Door openings"
unit_price = "0.05"

[[accounts]]
id = "bench-account"
name = "Bench account"
kind = "company"
currency = "EUR"
time_zone = "Europe/Berlin"
plan_id = "bench-plan"
invoice_series = "BE"
"""


def catalog_text() -> str:
    """The catalog with DEVICES devices (those build_batches uses) bound since January."""
    devices = "".join(
        f'\n[[devices]]\nid = "dev-{n}"\nname = "Panel {n}"\nprofile_id = "alarm-panel"\n'
        f'site_id = "bench-site"\n'
        f'\n[[bindings]]\ndevice_id = "dev-{n}"\naccount_id = "bench-account"\n'
        f"valid_from = 2026-01-01T00:00:00Z\n"
        for n in range(DEVICES)
    )
    return CATALOG + devices


@contextmanager
def only_sessions() -> Iterator[None]:
    """The feed with only the sessions' consumer for the block (the others restored after)."""
    connect()
    others = [name for name in feed.subscribers() if name != "sessions"]
    for name in others:
        feed.unsubscribe(name)
    try:
        yield
    finally:
        connect()


async def one_run(
    backend: str, bodies: dict[str, list[bytes]], keys: dict[str, Ed25519PrivateKey]
) -> float:
    """Events/s of one run into a fresh database with the catalog loaded."""
    async with fresh_database(backend) as url:
        await prepare(url, keys)
        async with Database(url) as db, db.transaction(write=True) as session:
            await load_catalog(session=session, catalog=parse_catalog(catalog_text()))
        async with asgi_client(url) as client:
            elapsed = await send_all(client, bodies)
    return sum(len(b) for b in bodies.values()) * BATCH / elapsed


async def measure(backend: str, events: int) -> None:
    """Print the best rate without and with the fleet consumers, and their ratio."""
    keys = {f"bench-gw{i}": Ed25519PrivateKey.generate() for i in range(4)}
    bodies = {
        gateway: build_batches(gateway, key, events=events // len(keys), size=BATCH)
        for gateway, key in keys.items()
    }
    off: list[float] = []
    on: list[float] = []
    for _ in range(2):
        with only_sessions():
            off.append(await one_run(backend, bodies, keys))
        connect()
        on.append(await one_run(backend, bodies, keys))
    consumers = ", ".join(feed.subscribers())
    print(
        f"{backend:<10} sessions only {max(off):>9,.0f} events/s | all consumers "
        f"({consumers}) {max(on):>9,.0f} events/s | ratio {max(on) / max(off):.2f} (target >= 0.9)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args()
    for backend in ("sqlite", "postgresql"):
        if args.only in (None, backend):
            await measure(backend, args.events)


if __name__ == "__main__":
    asyncio.run(main())
