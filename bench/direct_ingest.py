"""Direct ingestion throughput: CloudEvents batches over HTTP, and file imports (issue 7).

For each backend (a fresh SQLite file, and with `--postgres` a fresh PostgreSQL database) this
migrates the schema, loads a small catalog (one profile, the devices the events name) and creates
the direct sources with their ingest keys through the real services, then measures:

1. CloudEvents batch ingest: `tollgate-cloud serve` on loopback (or, with `--transport asgi`, the
   app in this process); batches of 1,000 events, written once with the official SDK's
   `JSONFormat` before the clock starts, are posted with httpx as
   `application/cloudevents-batch+json`, one sender per source, all sources at once. The collector
   maps, dedupes, seals, signs and stores them as in production.
2. File import: `cloud.direct.service.import_file` of a 200,000-row CSV, then of a JSON Lines file
   holding the same readings (for another source, so both store every row).

    .venv/bin/python -m bench.direct_ingest [--events 100000] [--rows 200000] [--postgres]

Target (issue): >= 20,000 events/s on SQLite.
"""

import argparse
import asyncio
import contextlib
import csv
import gc
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from bench.collector_ingest import asgi_client, fresh_database, uvicorn_client
from cloud.catalog.devices import create_device, create_profile
from cloud.db import Database
from cloud.direct.files import FileFormat
from cloud.direct.mapping import SourceMapping
from cloud.direct.schemas import SourceCreate
from cloud.direct.service import add_source, create_ingest_key, import_file
from cloud.schema import migrate
from cloud.wiring import connect

TARGET = 20_000  # events (rows) per second, on SQLite
DEVICES = 50
EVENT_TYPE = "com.bench.water"
BATCH_MEDIA_TYPE = "application/cloudevents-batch+json"


def mapping(ce_source: str) -> dict[str, Any]:
    """A source mapping for CloudEvents of `ce_source` and files of meter readings."""
    return {
        "ce_sources": [ce_source],
        "files": {"device": "meter", "time": "read_at", "id": "reading_id"},
        "types": [
            {
                "type": EVENT_TYPE,
                "name": "water",
                "kind": "measurement",
                "quantity": "litres",
                "unit": "l",
            }
        ],
    }


def ce_source_of(source_id: str) -> str:
    """The CloudEvents `source` URI a bench source owns."""
    return f"urn:bench:{source_id}"


# -- building the payloads (before any clock starts) ---------------------------------------------


def reading_times(count: int) -> list[datetime]:
    """`count` recent times, one per 10 ms ending now (recent: no late-arrival incidents)."""
    start = datetime.now(UTC) - timedelta(milliseconds=10 * count)
    return [start + timedelta(milliseconds=10 * n) for n in range(count)]


def cloudevent_batches(source_id: str, *, events: int, size: int) -> list[bytes]:
    """`events` CloudEvents of a source in batch-mode bodies of `size`, written by the SDK."""
    writer = JSONFormat()
    uri = ce_source_of(source_id)
    written = [
        writer.write(
            CloudEvent(
                attributes={
                    "id": f"{source_id}-{n}",
                    "source": uri,
                    "type": EVENT_TYPE,
                    "subject": f"meter-{n % DEVICES}",
                    "time": when,
                },
                data={"litres": n % 17 + 1},
            )
        )
        for n, when in enumerate(reading_times(events))
    ]
    return [b"[" + b",".join(written[i : i + size]) + b"]" for i in range(0, events, size)]


def readings(rows: int) -> list[dict[str, str]]:
    """`rows` meter readings as a legacy system exports them."""
    return [
        {
            "reading_id": f"r-{n}",
            "meter": f"meter-{n % DEVICES}",
            "read_at": when.isoformat(),
            "litres": str(n % 17 + 1),
        }
        for n, when in enumerate(reading_times(rows))
    ]


def csv_file(records: list[dict[str, str]]) -> bytes:
    """The readings as a CSV file with a header row."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue().encode()


def jsonl_file(records: list[dict[str, str]]) -> bytes:
    """The readings as JSON Lines."""
    return b"".join(orjson.dumps(record) + b"\n" for record in records)


# -- the database ----------------------------------------------------------------------------------


async def prepare(url: str, source_ids: list[str]) -> dict[str, str]:
    """Migrate, load the devices, create the sources; each source's ingest key secret."""
    async with Database(url) as db:
        await migrate(db.engine)
        async with db.transaction(write=True) as session:
            await create_profile(session=session, profile_id="meter", name="Water meter")
            for n in range(DEVICES):
                await create_device(
                    session=session, device_id=f"meter-{n}", name=f"meter {n}", profile_id="meter"
                )
            secrets = {}
            for source_id in source_ids:
                rules = SourceMapping.model_validate(mapping(ce_source_of(source_id)))
                spec = SourceCreate(id=source_id, mapping=rules)
                await add_source(session=session, spec=spec)
                issued = await create_ingest_key(session=session, source_id=source_id, name="bench")
                secrets[source_id] = issued.secret
    return secrets


# -- the measurements ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Measurement:
    """One printed line: what was measured, how many events, in how long."""

    label: str
    count: int
    seconds: float

    @property
    def rate(self) -> float:
        """Events (rows) per second."""
        return self.count / self.seconds


async def post_batches(client: httpx.AsyncClient, secret: str, bodies: list[bytes]) -> int:
    """Post one source's batches in order; the events stored (every one must be)."""
    headers = {"content-type": BATCH_MEDIA_TYPE, "authorization": f"Bearer {secret}"}
    stored = 0
    for body in bodies:
        response = await client.post("/v1/events", content=body, headers=headers)
        response.raise_for_status()
        receipt = response.json()
        if receipt["rejected"] or receipt["stored"] != receipt["received"]:
            raise SystemExit(f"direct ingest bench lost events: {response.text[:300]}")
        stored += receipt["stored"]
    return stored


async def measure_cloudevents(
    client: httpx.AsyncClient, secrets: dict[str, str], bodies: dict[str, list[bytes]]
) -> tuple[int, float]:
    """All sources' batches at once (one sender per source); events stored and seconds."""
    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(post_batches(client, secrets[source_id], batches))
            for source_id, batches in bodies.items()
        ]
    elapsed = time.perf_counter() - started
    return sum(task.result() for task in tasks), elapsed


async def measure_import(
    url: str, source_id: str, data: bytes, file_format: FileFormat
) -> tuple[int, float]:
    """`import_file` of a whole file; rows stored and seconds."""
    async with Database(url) as db:
        # As `tollgate-cloud import` does: what is loaded lives as long as the process, so keep it
        # out of the cyclic GC's full scans (they cost a quarter of an import's CPU otherwise).
        gc.collect()
        gc.freeze()
        started = time.perf_counter()
        report = await import_file(
            db=db,
            source_id=source_id,
            data=data,
            filename=f"readings.{file_format.value}",
            file_format=file_format,
        )
        elapsed = time.perf_counter() - started
    if report.rejected or report.duplicates or report.stored != report.rows:
        raise SystemExit(f"import bench lost rows: {report.model_dump_json()[:300]}")
    return report.stored, elapsed


@dataclass(frozen=True, slots=True)
class Payloads:
    """Everything posted or imported, built once for all backends."""

    batches: dict[str, list[bytes]]
    csv: bytes
    jsonl: bytes
    rows: int


def build_payloads(args: argparse.Namespace) -> Payloads:
    """The CloudEvents batch bodies of each sending source and the two files."""
    per_source = args.events // args.sources
    batches = {
        f"ce-{n}": cloudevent_batches(f"ce-{n}", events=per_source, size=args.batch_size)
        for n in range(args.sources)
    }
    records = readings(args.rows)
    return Payloads(batches, csv_file(records), jsonl_file(records), args.rows)


ClientFactory = Callable[[str], contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]


async def run_backend(
    backend: str, args: argparse.Namespace, payloads: Payloads
) -> list[Measurement]:
    """Measure one backend: CloudEvents over HTTP, then the CSV and the JSON Lines import."""
    clients: dict[str, ClientFactory] = {"asgi": asgi_client, "uvicorn": uvicorn_client}
    results = []
    async with fresh_database(backend) as url:
        secrets = await prepare(url, [*payloads.batches, "files-csv", "files-jsonl"])
        async with clients[args.transport](url) as client:
            stored, seconds = await measure_cloudevents(client, secrets, payloads.batches)
        label = f"CloudEvents batches of {args.batch_size}, {args.transport}, {args.sources} src"
        results.append(Measurement(f"{backend}: {label}", stored, seconds))
        for source_id, data, file_format in (
            ("files-csv", payloads.csv, FileFormat.CSV),
            ("files-jsonl", payloads.jsonl, FileFormat.JSONL),
        ):
            stored, seconds = await measure_import(url, source_id, data, file_format)
            label = f"{backend}: import_file {file_format.value} ({len(data) / 2**20:.1f} MiB)"
            results.append(Measurement(label, stored, seconds))
    return results


def report_line(measurement: Measurement) -> str:
    """One printed line: label, count, seconds, rate, target and verdict."""
    verdict = "ok" if measurement.rate >= TARGET else "BELOW"
    return (
        f"{measurement.label:<58} {measurement.count:>8,} in {measurement.seconds:6.2f} s = "
        f"{measurement.rate:>9,.0f}/s (target >= {TARGET:,}/s) {verdict}"
    )


async def main(args: argparse.Namespace) -> None:
    """Build the payloads once, then measure each backend."""
    started = time.perf_counter()
    payloads = build_payloads(args)
    print(
        f"payloads built in {time.perf_counter() - started:.1f} s: "
        f"{sum(len(b) for b in payloads.batches.values())} CloudEvents batches, "
        f"files of {payloads.rows:,} rows"
    )
    backends = ["sqlite", "postgresql"] if args.postgres else ["sqlite"]
    for backend in backends:
        for measurement in await run_backend(backend, args, payloads):
            print(report_line(measurement))


def cli() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="CloudEvents in total")
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--sources", type=int, default=4, help="sources sending at once")
    parser.add_argument("--rows", type=int, default=200_000, help="rows per imported file")
    parser.add_argument("--transport", choices=["uvicorn", "asgi"], default="uvicorn")
    parser.add_argument("--postgres", action="store_true", help="also measure PostgreSQL")
    connect()
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
