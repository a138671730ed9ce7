"""Collector CPU per MiB of hostile body on POST /v1/batches, for each attack we know of.

The collector runs in this process (ASGI, a fresh SQLite file, one registered gateway); each
attack's body is built before the clock starts and posted `--repeat` times, and the median
process CPU time of one request is divided by the body's size on the wire (what the attacker
pays for) and by its inflated size. "forged" bodies carry a signature of another key (refused
before a single event is validated); "replayed" bodies carry the gateway's real header and
signature over events the attacker changed (they get as far as event validation).

    .venv/bin/python -m bench.hostile_bodies [--repeat 5]

Prints one line per attack, then "worst-case CPU per MiB of hostile body: X ms (attack)" (per
MiB of what the collector had to read, sent or inflated, over attacks of at least half a MiB)
and the worst CPU of one hostile request.
"""

import argparse
import asyncio
import gzip
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.app import create_app
from cloud.db import Database
from cloud.gateways.service import register_gateway
from cloud.schema import migrate
from cloud.settings import MIB, Settings
from shared.events import GENESIS_HASH
from shared.signing import public_key_pem
from tests.support.batches import batch_document, chain_events, draft

GATEWAY = "gw-bench-hostile"
JSON = {"content-type": "application/json"}
GZIP = {**JSON, "content-encoding": "gzip"}

Change = Callable[[dict[str, Any]], None]


class Bodies:
    """The attack bodies for one gateway key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.key = key
        self.forger = Ed25519PrivateKey.generate()
        chain = chain_events([draft(n) for n in range(1, 2501)], gateway_id=GATEWAY)
        self.real = batch_document(chain, key)
        self.forged = batch_document(chain, self.forger)

    def edited(self, change: Change, *, forged: bool, events: int = 2500) -> bytes:
        """The 2,500-event batch (or its first `events`) with `change` applied to each event."""
        document = orjson.loads(orjson.dumps(self.forged if forged else self.real))
        document["events"] = document["events"][:events]
        for event in document["events"]:
            change(event)
        return orjson.dumps(document)


def set_field(name: str, value: Any) -> Change:
    """An edit setting one field of every event."""

    def change(event: dict[str, Any]) -> None:
        event[name] = value

    return change


def long_attrs(event: dict[str, Any]) -> None:
    """64 attrs of 1,024 characters each."""
    event["attrs"] = {f"a{n}": "x" * 1024 for n in range(64)}


def empty_events(count: int) -> bytes:
    """`count` empty events under the gateway's name, gzip-compressed."""
    header = orjson.dumps(
        {
            "gateway_id": GATEWAY,
            "first_seq": 1,
            "last_seq": count,
            "prev_hash": GENESIS_HASH,
            "last_hash": "a" * 64,
            "signature": "AAAA",
        }
    )
    return gzip.compress(header[:-1] + b',"events":[' + b",".join([b"{}"] * count) + b"]}", 6)


def deep_attrs(bodies: Bodies, depth: int) -> bytes:
    """The forged batch with one attr nested `depth` deep in every event."""
    body = bodies.edited(set_field("attrs", {"deep": "DEEP"}), forged=True)
    return body.replace(b'"DEEP"', b"[" * depth + b"]" * depth)


def attacks(bodies: Bodies) -> dict[str, tuple[bytes, dict[str, str]]]:
    """Every attack: its body and headers."""
    big = set_field("quantity", "1e999990")
    nul = set_field("name", "door\x00open")
    early = set_field("occurred_at", "0001-01-01T00:00:00+01:00")
    return {
        "big-exponent quantities, forged (2,000 events)": (
            bodies.edited(big, forged=True, events=2000),
            JSON,
        ),
        "big-exponent quantities, replayed header": (bodies.edited(big, forged=False), JSON),
        "300k empty events, gzip": (empty_events(300_000), GZIP),
        "21M empty events, gzip (64 MiB inflated)": (empty_events(21_000_000), GZIP),
        "long attrs (64 x 1 KiB), forged (100 events)": (
            bodies.edited(long_attrs, forged=True, events=100),
            JSON,
        ),
        "long attrs (64 x 1 KiB), replayed header (100 events)": (
            bodies.edited(long_attrs, forged=False, events=100),
            JSON,
        ),
        "deep attrs (900 levels), forged": (deep_attrs(bodies, 900), JSON),
        "NUL strings, forged": (bodies.edited(nul, forged=True), JSON),
        "NUL strings, replayed header": (bodies.edited(nul, forged=False), JSON),
        "out-of-range times, forged": (bodies.edited(early, forged=True), JSON),
        "out-of-range times, replayed header": (bodies.edited(early, forged=False), JSON),
        "junk JSON (1 MiB)": (os.urandom(MIB), JSON),
        "valid-looking batch, bad signature": (orjson.dumps(bodies.forged), JSON),
    }


def inflated_size(body: bytes, headers: dict[str, str]) -> int:
    """The body's size once inflated."""
    return len(gzip.decompress(body)) if headers is GZIP else len(body)


async def measure(
    client: httpx.AsyncClient, body: bytes, headers: dict[str, str], repeat: int
) -> tuple[float, int]:
    """Median CPU seconds of one request, and its status."""
    status = 0
    samples = []
    for _ in range(repeat + 1):  # the first is a warm-up
        started = time.process_time()
        response = await client.post("/v1/batches", content=body, headers=headers)
        samples.append(time.process_time() - started)
        status = response.status_code
    return statistics.median(samples[1:]), status


async def run(repeat: int) -> None:
    """Post every attack to a fresh collector and print the CPU it cost."""
    key = Ed25519PrivateKey.generate()
    bodies = Bodies(key)
    built = attacks(bodies)
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(db_url=f"sqlite:///{tmp}/hostile.sqlite"))
        async with app.router.lifespan_context(app):
            db: Database = app.state.db
            await migrate(db.engine)
            async with db.transaction() as session:
                pem = public_key_pem(key.public_key()).encode("ascii")
                await register_gateway(session=session, gateway_id=GATEWAY, public_key=pem)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://collector"
            ) as client:
                worst = (0.0, "")
                worst_request = (0.0, "")
                print(
                    f"{'attack':56} {'status':>6} {'wire':>10} {'inflated':>10} {'CPU':>9}", end=""
                )
                print(f" {'ms/MiB wire':>12} {'ms/MiB inflated':>16}")
                for name, (body, headers) in built.items():
                    cpu, status = await measure(client, body, headers, repeat)
                    wire_mib = len(body) / MIB
                    inflated_mib = inflated_size(body, headers) / MIB
                    per_wire = cpu * 1000 / wire_mib
                    print(
                        f"{name:56} {status:>6} {len(body):>10,} "
                        f"{inflated_size(body, headers):>10,} {cpu * 1000:>7.1f}ms "
                        f"{per_wire:>12.1f} {cpu * 1000 / inflated_mib:>16.1f}"
                    )
                    # Per MiB only where a MiB was sent or inflated: a 1 KiB body's few ms
                    # do not scale to a MiB (refusals stop at a budget, not at the end).
                    if max(wire_mib, inflated_mib) >= 0.5:
                        per_mib = cpu * 1000 / max(wire_mib, inflated_mib)
                        worst = max(worst, (per_mib, name))
                    worst_request = max(worst_request, (cpu * 1000, name))
    print(f"worst-case CPU per MiB of hostile body: {worst[0]:.0f} ms ({worst[1]})")
    print(f"worst-case CPU per hostile request: {worst_request[0]:.1f} ms ({worst_request[1]})")


def main() -> None:
    """Parse arguments and run the bench."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="requests per attack (median)")
    args = parser.parse_args()
    logging.getLogger("cloud").setLevel(logging.ERROR)  # one refusal line per request otherwise
    asyncio.run(run(args.repeat))


if __name__ == "__main__":
    main()
