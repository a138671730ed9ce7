"""`make bench`: an invoice run of 100,000 accounts with 1 and 2 worker processes (issue 17).

PostgreSQL only (SQLite serializes every write transaction: workers cannot overlap there). The
catalog and usage of bench/billing.py (plan home, 3 devices per account: camera, waste lock,
panel), with fewer events per device than that benchmark so that the setup stays minutes:
`--events` (default 600,000, 2 per device) over `--accounts` (default 100,000).

Setup (untimed, printed): the catalog with Core executemany, batches and events with COPY
(asyncpg `copy_records_to_table`, well-formed synthetic chain hashes as in bench/billing.py),
the session work queue, then `refresh_sessions` (every device's sessions) once. That database
is the template: each measured run gets its own copy (`CREATE DATABASE ... TEMPLATE`), so every
run drafts the same 100,000 invoices from the same state.

Timed: `run_with_workers(workers=N)` end to end (finalize_due, the no-op session refresh, the
account list, the chunks enqueued, N `invoice work` processes started and rating, the parent's
progress polling, the discard and quality steps), and with `--in-process` also today's
one-process `run_invoices`. Printed per run: seconds, accounts/s, us per account, and the ratio
to 1 worker. With `--profile` the one-process run is profiled (cProfile) and the per-account
cost of its main steps is printed in us.

    python -m bench.invoice_workers [--accounts 100000] [--events 600000] [--workers 1,2]
        [--in-process] [--profile]
"""

import argparse
import asyncio
import cProfile
import pstats
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import insert
from sqlalchemy.orm import Session

from bench.billing import (
    BATCH,
    GATEWAY,
    METRICS,
    MONTH_START,
    NOW,
    PERIOD,
    PG_ADMIN,
    PROFILES,
    TERMS,
    _account_row,
    _devices,
    _event,
    _hash,
    _metric_row,
    _profile_row,
)
from cloud.catalog.models import (
    Account,
    Binding,
    Device,
    DeviceProfile,
    Metric,
    Plan,
    PlanVersionRow,
)
from cloud.catalog.plan_terms import plan_version, stored_terms
from cloud.db import Database
from cloud.gateways.models import Gateway
from cloud.ingest.partitions import ensure_month
from cloud.invoices.run_queue import run_with_workers
from cloud.invoices.service import RunReport, run_invoices
from cloud.schema import migrate
from cloud.sessions.service import refresh_sessions

GRACE = timedelta(days=5)
COPY_ROWS = 50_000
EVENT_COLUMNS = (
    "gateway_id",
    "seq",
    "device_id",
    "channel",
    "name",
    "kind",
    "quantity",
    "unit",
    "occurred_at",
    "observed_at",
    "clock",
    "attrs",
    "prev_hash",
    "hash",
    "batch_id",
    "received_at",
)
BATCH_COLUMNS = (
    "id",
    "gateway_id",
    "first_seq",
    "last_seq",
    "prev_hash",
    "last_hash",
    "signature",
    "received_at",
    "event_count",
)


def _url(name: str) -> str:
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _catalog(accounts: int) -> dict[Any, list[dict[str, Any]]]:
    now = datetime(2026, 10, 1, tzinfo=UTC)
    version = plan_version(TERMS, plan_id="home", version=1, currency="EUR")
    return {
        Plan: [{"id": "home", "name": "Home", "currency": "EUR", "created_at": now}],
        PlanVersionRow: [
            {
                "plan_id": "home",
                "version": 1,
                "effective_from": version.effective_from,
                "terms": stored_terms(TERMS),
                "created_at": now,
            }
        ],
        Metric: [_metric_row(spec, now) for spec in METRICS],
        DeviceProfile: [_profile_row(name, rule, now) for name, rule in PROFILES.items()],
        Account: [_account_row(n, now) for n in range(accounts)],
        Device: [
            {"id": d, "site_id": None, "profile_id": p, "name": d, "created_at": now}
            for d, p, _ in _devices(accounts)
        ],
        Binding: [
            {
                "device_id": d,
                "account_id": a,
                "valid_from": now,
                "valid_to": None,
                "created_at": now,
            }
            for d, _, a in _devices(accounts)
        ],
    }


def _event_records(accounts: int, events: int, seed: int = 5) -> Iterator[tuple[Any, ...]]:
    """Event rows in seq order (batch ids: one per BATCH events), as bench/billing.py's."""
    rng = random.Random(seed)
    per_device = max(2, -(-events // (accounts * len(PROFILES))))
    received = NOW - timedelta(days=1)
    seq = 0
    for device, profile, _ in _devices(accounts):
        at = MONTH_START + timedelta(seconds=rng.randrange(3600))
        for index in range(per_device):
            seq += 1
            at += timedelta(seconds=rng.randrange(600, 40_000))
            e = _event(profile, device, index, seq, at, rng)
            yield (
                *(e.gateway_id, e.seq, e.device_id, e.channel, e.name, e.kind, e.quantity),
                *(e.unit, e.occurred_at, e.occurred_at, "synced", "{}", _hash(seq - 1)),
                *(_hash(seq), (seq - 1) // BATCH + 1, received),
            )


async def build_template(name: str, accounts: int, events: int) -> tuple[int, float, float]:
    """Create, migrate and fill the template database: (events, load s, refresh s)."""
    await _admin(f'CREATE DATABASE "{name}"')
    start = time.perf_counter()
    async with Database(_url(name)) as db:
        await migrate(db.engine)

        def catalog(session: Session) -> None:
            session.execute(
                insert(Gateway), [{"id": GATEWAY, "public_key_pem": "-", "registered_at": NOW}]
            )
            for model, rows in _catalog(accounts).items():
                for offset in range(0, len(rows), COPY_ROWS):
                    session.execute(insert(model), rows[offset : offset + COPY_ROWS])
            connection = session.connection()
            for month in ((2026, 11), (2026, 12)):
                ensure_month(connection, month)

        await db.run_write(catalog)
    connection = await asyncpg.connect(_url(name).replace("postgresql+asyncpg", "postgresql"))
    try:
        count = await _copy_events(connection, accounts, events)
    finally:
        await connection.close()
    load = time.perf_counter() - start
    start = time.perf_counter()
    async with Database(_url(name)) as db:
        await refresh_sessions(db=db, as_of=NOW)
    return count, load, time.perf_counter() - start


async def _copy_events(connection: asyncpg.Connection, accounts: int, events: int) -> int:
    received = NOW - timedelta(days=1)
    total = accounts * len(PROFILES) * max(2, -(-events // (accounts * len(PROFILES))))
    batches = [
        _batch(first // BATCH + 1, first, min(first + BATCH - 1, total), received)
        for first in range(1, total + 1, BATCH)
    ]  # first: events reference their batch
    await connection.copy_records_to_table("batches", records=batches, columns=list(BATCH_COLUMNS))
    rows: list[tuple[Any, ...]] = []
    pairs: set[tuple[str, str]] = set()
    for record in _event_records(accounts, events):
        rows.append(record)
        pairs.add((record[2], record[3] or ""))
        if len(rows) >= COPY_ROWS:
            await connection.copy_records_to_table(
                "events", records=rows, columns=list(EVENT_COLUMNS)
            )
            rows.clear()
    if rows:
        await connection.copy_records_to_table("events", records=rows, columns=list(EVENT_COLUMNS))
    work = [(device, channel, MONTH_START) for device, channel in sorted(pairs)]
    await connection.copy_records_to_table(
        "session_work", records=work, columns=["device_id", "channel", "since"]
    )
    return total


def _batch(batch_id: int, first: int, last: int, received: datetime) -> tuple[Any, ...]:
    return (
        *(batch_id, GATEWAY, first, last, _hash(first - 1), _hash(last), "0" * 128),
        *(received, last - first + 1),
    )


async def timed_run(template: str, workers: int | None, *, profile: bool = False) -> float:
    """Seconds of one run on a fresh copy of the template (`workers` None: in process)."""
    name = f"{template}_run_{uuid.uuid4().hex[:6]}"
    await _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    profiler = cProfile.Profile() if profile else None
    try:
        async with Database(_url(name)) as db:
            start = time.perf_counter()
            if profiler is not None:
                profiler.enable()
            report: RunReport
            if workers is None:
                report = await run_invoices(db=db, period=PERIOD, now=NOW, grace=GRACE)
            else:
                report = await run_with_workers(
                    db=db, period=PERIOD, now=NOW, grace=GRACE, workers=workers
                )
            seconds = time.perf_counter() - start
            if profiler is not None:
                profiler.disable()
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"    {report}")
    if profiler is not None:
        _print_profile(profiler, len(report.accounts))
    return seconds


PROFILED = (
    ("prepare_run", "finalize_due + refresh_sessions + account list"),
    ("load_period_usage", "usage: bindings, sessions, events of the period"),
    ("adjustment_lines", "adjustments for earlier finalized invoices"),
    ("without_credited", "credited corrections"),
    ("rate_account", "rating"),
    ("tax_draft_lines", "VAT per line"),
    ("_write_drafts", "writing drafts, lines, evidence, webhooks"),
    ("insert_evidence", "  of which evidence COPY"),
    ("emit_drafted", "  of which invoice.drafted events"),
    ("period_report", "quality report"),
)


def _print_profile(profiler: cProfile.Profile, accounts: int) -> None:
    stats = pstats.Stats(profiler)
    totals: dict[str, float] = {}
    for (_, _, function), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        totals[function] = totals.get(function, 0.0) + cumulative
    print("    per-account cost of the one-process run (cProfile, cumulative, us/account):")
    for function, what in PROFILED:
        seconds = totals.get(function, 0.0)
        print(f"      {function:<20} {seconds / accounts * 1e6:8.0f} us  {what}")


async def main(
    accounts: int, events: int, workers: list[int], in_process: bool, profile: bool
) -> None:
    template = f"tollgate_bench_tpl_{uuid.uuid4().hex[:8]}"
    try:
        count, load, refresh = await build_template(template, accounts, events)
        print(
            f"invoice run workers: {accounts:,} accounts, {count:,} events on PostgreSQL "
            f"(setup {load:.0f} s load + {refresh:.0f} s session refresh, untimed)"
        )
        timings: dict[str, float] = {}
        if in_process or profile:
            timings["in process"] = await timed_run(template, None, profile=profile)
            _line("in process (run_invoices)", timings["in process"], accounts, None)
        for n in workers:
            timings[str(n)] = await timed_run(template, n)
            base = timings.get("1")
            _line(f"--workers {n}", timings[str(n)], accounts, base if n != 1 else None)
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')


def _line(label: str, seconds: float, accounts: int, base: float | None) -> None:
    ratio = f", {base / seconds:.2f}x of 1 worker" if base else ""
    print(
        f"  {label}: {seconds:.1f} s = {accounts / seconds:,.0f} accounts/s, "
        f"{seconds / accounts * 1e6:,.0f} us per account{ratio}"
    )


def cli() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=600_000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--in-process", action="store_true", help="also time run_invoices")
    parser.add_argument("--profile", action="store_true", help="profile the one-process run")
    args = parser.parse_args()
    workers = [int(n) for n in args.workers.split(",") if n]
    asyncio.run(main(args.accounts, args.events, workers, args.in_process, args.profile))


if __name__ == "__main__":
    cli()
