"""`make bench` billing numbers (issue 5).

1. Sessionize and rate, in memory: the pure core (`cloud.sessions.sessionizer.sessionize` per
   (device, channel), then `cloud.rating.rating.rate_period` per account) over generated usage;
   events/s counts every event that went through both. Target >= 200,000 events/s.
2. An invoice run for 10,000 accounts and 1,000,000 events of one month, on SQLite and on
   PostgreSQL: the session refresh (`refresh_sessions`, every device's sessions computed from
   its stored events) and the run itself (`run_invoices`: bindings, usage, rating, draft
   invoices with every line's evidence written). Target < 60 s for both together.

Setup shortcut (not timed, and said here so nobody mistakes it): the million events are written
straight into the `events` table with Core executemany, with well-formed but synthetic chain
hashes and one synthetic batch per 1,000 events; ingest and its verification have their own
benchmark (`bench/collector_ingest.py`). Everything timed runs the real code on the real
database.

    python -m bench.billing [--accounts 10000] [--events 1000000] [--backends sqlite,postgresql]
"""

import argparse
import asyncio
import hashlib
import random
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import insert
from sqlalchemy.orm import Session

from cloud.catalog.models import (
    Account,
    Binding,
    Device,
    DeviceProfile,
    Metric,
    Plan,
    PlanVersionRow,
)
from cloud.catalog.plan_terms import PlanTerms, plan_version, stored_terms
from cloud.db import Database
from cloud.domain import (
    Aggregation,
    BillableEvent,
    ComputedSession,
    DurationUnit,
    MetricField,
    MetricSource,
    MetricSpec,
    SessionPiece,
    SessionRule,
)
from cloud.gateways.models import Gateway
from cloud.ingest.models import ReceivedBatch, StoredEvent
from cloud.invoices.service import run_invoices
from cloud.rating.rating import AccountUsage, rate_period
from cloud.schema import migrate
from cloud.session_work import SessionWork
from cloud.sessions.service import refresh_sessions
from cloud.sessions.sessionizer import sessionize

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PERIOD = "2026-11"
MONTH_START = datetime(2026, 11, 1, tzinfo=UTC)
NOW = datetime(2026, 12, 2, tzinfo=UTC)
GATEWAY = "bench-gw"
BATCH = 1_000

PROFILES = {
    "camera": SessionRule(frozenset({"stream_start"}), frozenset({"stream_stop"}), None),
    "waste-lock": SessionRule(frozenset({"opened"}), frozenset({"closed"}), timedelta(minutes=10)),
    "panel": None,
}
METRICS = (
    MetricSpec(
        "stream_hours",
        MetricSource.SESSIONS,
        Aggregation.SUM,
        MetricField.DURATION,
        profiles=frozenset({"camera"}),
        duration_unit=DurationUnit.HOUR,
    ),
    MetricSpec(
        "waste_kg",
        MetricSource.EVENTS,
        Aggregation.SUM,
        MetricField.QUANTITY,
        profiles=frozenset({"waste-lock"}),
        names=frozenset({"closed"}),
        unit="kg",
    ),
    MetricSpec(
        "lid_openings",
        MetricSource.SESSIONS,
        Aggregation.COUNT,
        profiles=frozenset({"waste-lock"}),
    ),
    MetricSpec(
        "door_opens",
        MetricSource.EVENTS,
        Aggregation.SUM,
        MetricField.QUANTITY,
        profiles=frozenset({"panel"}),
        names=frozenset({"door_open"}),
    ),
    MetricSpec("devices", MetricSource.EVENTS, Aggregation.UNIQUE_COUNT),
)
TERMS = PlanTerms.model_validate(
    {
        "effective_from": "2026-01-01T00:00:00+00:00",
        "base_fee": "4.90",
        "minimum_amount": "10.00",
        "charges": [
            {
                "metric": "stream_hours",
                "model": "graduated",
                "included_units": "2",
                "tiers": [
                    {"up_to": "10", "unit_price": "0.50"},
                    {"up_to": None, "unit_price": "0.35"},
                ],
            },
            {
                "metric": "waste_kg",
                "model": "volume",
                "tiers": [
                    {"up_to": "20", "unit_price": "0.30"},
                    {"up_to": None, "unit_price": "0.25", "flat_fee": "1.00"},
                ],
            },
            {
                "metric": "lid_openings",
                "model": "package",
                "package_size": "10",
                "package_price": "0.80",
            },
            {"metric": "door_opens", "model": "standard", "unit_price": "0.02"},
            {"metric": "devices", "model": "standard", "unit_price": "1.00"},
        ],
    }
)


@dataclass(frozen=True)
class Site:
    """Generated usage: events per device, the device's profile and its account."""

    events: dict[str, list[BillableEvent]]
    profile_of: dict[str, str]
    account_of: dict[str, str]


def _devices(accounts: int) -> Iterator[tuple[str, str, str]]:
    for n in range(accounts):
        account = f"acct-{n:05d}"
        for profile in PROFILES:
            yield f"{profile}-{n:05d}", profile, account


def generate(accounts: int, events: int, seed: int = 5) -> Site:
    """About `events` events over the month for 3 devices per account."""
    rng = random.Random(seed)
    per_device = max(2, -(-events // (accounts * len(PROFILES))))  # ceil: at least `events`
    site = Site(defaultdict(list), {}, {})
    seq = 0
    for device, profile, account in _devices(accounts):
        site.profile_of[device] = profile
        site.account_of[device] = account
        at = MONTH_START + timedelta(seconds=rng.randrange(3600))
        for index in range(per_device):
            seq += 1
            at += timedelta(seconds=rng.randrange(600, 40_000))
            site.events[device].append(_event(profile, device, index, seq, at, rng))
    return site


def _event(
    profile: str, device: str, index: int, seq: int, at: datetime, rng: random.Random
) -> BillableEvent:
    if profile == "camera":
        name, kind = (
            ("stream_start", "activation") if index % 2 == 0 else ("stream_stop", "deactivation")
        )
        return BillableEvent(GATEWAY, seq, device, "main", name, kind, None, None, at)
    if profile == "waste-lock":
        if index % 2 == 0:
            return BillableEvent(GATEWAY, seq, device, None, "opened", "activation", None, None, at)
        kg = Decimal(rng.randrange(5, 120)) / 10
        return BillableEvent(GATEWAY, seq, device, None, "closed", "deactivation", kg, "kg", at)
    quantity = Decimal(rng.randrange(1, 4))
    return BillableEvent(GATEWAY, seq, device, None, "door_open", "activity", quantity, "count", at)


def bench_pure(site: Site) -> tuple[int, float]:
    """Sessionize every (device, channel), rate every account: (events, seconds)."""
    versions = [plan_version(TERMS, plan_id="home", version=1, currency="EUR")]
    metrics = {spec.id: spec for spec in METRICS}
    end = MONTH_START + timedelta(days=30)
    start_clock = time.perf_counter()
    pieces_of: dict[str, list[SessionPiece]] = defaultdict(list)
    events_of: dict[str, list[BillableEvent]] = defaultdict(list)
    session_id = 0
    for device, events in site.events.items():
        account = site.account_of[device]
        events_of[account].extend(events)
        rule = PROFILES[site.profile_of[device]]
        if rule is None:
            continue
        for computed in sessionize(events, rule, as_of=NOW):
            session_id += 1
            pieces_of[account].append(_piece(session_id, computed, site.profile_of[device], end))
    for account, events in events_of.items():
        usage = AccountUsage(pieces_of[account], events, site.profile_of)
        rate_period(
            currency="EUR",
            period_start=MONTH_START,
            period_end=end,
            versions=versions,
            metrics=metrics,
            usage=usage,
        )
    elapsed = time.perf_counter() - start_clock
    return sum(len(events) for events in site.events.values()), elapsed


def _piece(session_id: int, session: ComputedSession, profile: str, end: datetime) -> SessionPiece:
    stop = session.ended_at if session.ended_at is not None else min(NOW, end)
    return SessionPiece(
        session_id=session_id,
        device_id=session.device_id,
        channel=session.channel,
        name=session.name,
        profile=profile,
        started_at=session.started_at,
        ended_at=session.ended_at,
        close_reason=session.close_reason,
        piece_start=max(session.started_at, MONTH_START),
        piece_end=min(stop, end),
        is_start=session.started_at >= MONTH_START,
    )


# -- the database run -----------------------------------------------------------------------


def _catalog_rows(site: Site, accounts: int) -> dict[Any, list[dict[str, Any]]]:
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


def _metric_row(spec: MetricSpec, now: datetime) -> dict[str, Any]:
    return {
        "id": spec.id,
        "name": spec.id,
        "source": spec.source.value,
        "aggregation": spec.aggregation.value,
        "field": spec.field.value if spec.field else None,
        "profiles": sorted(spec.profiles),
        "names": sorted(spec.names),
        "unit": spec.unit,
        "duration_unit": spec.duration_unit.value,
        "created_at": now,
    }


def _profile_row(name: str, rule: SessionRule | None, now: datetime) -> dict[str, Any]:
    return {
        "id": name,
        "name": name,
        "start_on": sorted(rule.start_on) if rule else [],
        "end_on": sorted(rule.end_on) if rule else [],
        "timeout_seconds": int(rule.timeout.total_seconds()) if rule and rule.timeout else None,
        "created_at": now,
    }


def _account_row(n: int, now: datetime) -> dict[str, Any]:
    zone = "America/New_York" if n % 5 == 0 else "Europe/Berlin"
    return {
        "id": f"acct-{n:05d}",
        "name": f"Account {n}",
        "kind": "company" if n % 10 == 0 else "household",
        "currency": "EUR",
        "time_zone": zone,
        "plan_id": "home",
        "invoice_series": "INV",
        "created_at": now,
    }


def _event_rows(site: Site) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    events = sorted((e for es in site.events.values() for e in es), key=lambda e: e.seq)
    received = NOW - timedelta(days=1)
    batches, rows = [], []
    for offset in range(0, len(events), BATCH):
        chunk = events[offset : offset + BATCH]
        batch_id = offset // BATCH + 1
        batches.append(
            {
                "id": batch_id,
                "gateway_id": GATEWAY,
                "first_seq": chunk[0].seq,
                "last_seq": chunk[-1].seq,
                "prev_hash": _hash(chunk[0].seq - 1),
                "last_hash": _hash(chunk[-1].seq),
                "signature": "0" * 128,
                "received_at": received,
                "event_count": len(chunk),
            }
        )
        rows += [_event_row(event, batch_id, received) for event in chunk]
    return batches, rows


def _hash(seq: int) -> str:
    return hashlib.sha256(str(seq).encode()).hexdigest()


def _event_row(event: BillableEvent, batch_id: int, received: datetime) -> dict[str, Any]:
    return {
        "gateway_id": event.gateway_id,
        "seq": event.seq,
        "device_id": event.device_id,
        "channel": event.channel,
        "name": event.name,
        "kind": event.kind,
        "quantity": event.quantity,
        "unit": event.unit,
        "occurred_at": event.occurred_at,
        "observed_at": event.occurred_at,
        "clock": "synced",
        "attrs": {},
        "prev_hash": _hash(event.seq - 1),
        "hash": _hash(event.seq),
        "batch_id": batch_id,
        "received_at": received,
    }


async def load(db: Database, site: Site, accounts: int) -> None:
    """Catalog, gateway, batches, events and the session work queue (untimed setup)."""
    batches, events = _event_rows(site)
    pairs = {(e.device_id, e.channel or "") for es in site.events.values() for e in es}

    def write(session: Session) -> None:
        session.execute(
            insert(Gateway),
            [{"id": GATEWAY, "public_key_pem": "-", "registered_at": MONTH_START}],
        )
        for model, rows in _catalog_rows(site, accounts).items():
            session.execute(insert(model), rows)
        session.execute(insert(ReceivedBatch), batches)
        for offset in range(0, len(events), 20_000):
            session.execute(insert(StoredEvent), events[offset : offset + 20_000])
        session.execute(
            insert(SessionWork),
            [{"device_id": d, "channel": c, "since": MONTH_START} for d, c in pairs],
        )

    await db.run_write(write)


async def bench_database(url: str, site: Site, accounts: int) -> tuple[float, float, str]:
    """(refresh seconds, run seconds, run summary) on a migrated, loaded database."""
    async with Database(url) as db:
        await migrate(db.engine)
        await load(db, site, accounts)
        start = time.perf_counter()
        refreshed = await refresh_sessions(db=db, as_of=NOW)
        refresh = time.perf_counter() - start
        start = time.perf_counter()
        report = await run_invoices(db=db, period=PERIOD, now=NOW, grace=timedelta(days=5))
        run = time.perf_counter() - start
    return refresh, run, f"{refreshed}; {report}"


async def _postgres_url() -> tuple[str, str]:
    name = f"tollgate_bench_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(PG_ADMIN)
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    return name, f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def _drop(name: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN)
    await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await connection.close()


async def main(accounts: int, events: int, backends: list[str]) -> None:
    site = generate(accounts, events)
    total = sum(len(es) for es in site.events.values())
    count, seconds = bench_pure(site)
    print(
        f"sessionize + rate (in memory): {count:,} events, {accounts:,} accounts in "
        f"{seconds:.2f} s = {count / seconds:,.0f} events/s (target >= 200,000)"
    )
    for backend in backends:
        with tempfile.TemporaryDirectory() as tmp:
            pg_name = None
            if backend == "sqlite":
                url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite'}"
            else:
                pg_name, url = await _postgres_url()
            try:
                refresh, run, summary = await bench_database(url, site, accounts)
            finally:
                if pg_name:
                    await _drop(pg_name)
        print(
            f"invoice run on {backend}: {accounts:,} accounts, {total:,} events: session refresh "
            f"{refresh:.1f} s + invoice run {run:.1f} s = {refresh + run:.1f} s (target < 60 s)"
        )
        print(f"  {summary}")


def cli() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    asyncio.run(main(args.accounts, args.events, args.backends.split(",")))


if __name__ == "__main__":
    cli()
