"""`make bench` threshold numbers: what one run of the threshold job costs.

The billing bench's month (bench/billing.py: accounts with a camera, a waste lock and a door
panel, plan home) with three thresholds per account: units of waste_kg (reached by most
accounts), the amount of lid_openings (reached by some), and an amount of all usage no account
reaches (so every later run still rates every account: the steady cost per interval).

1. first run: session refresh + load + rate every account + fire (a firing and a webhook
   message per threshold reached, one endpoint subscribed);
2. second run: nothing new is reached; the unreached threshold keeps every account rated.

Setup shortcut (untimed, as in bench/billing.py): events written straight into `events` with
synthetic chain hashes; thresholds and the endpoint inserted with Core.

    python -m bench.thresholds [--accounts 2000] [--events 200000] [--backends sqlite,postgresql]
"""

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from bench.billing import NOW, _drop, _postgres_url, generate, load
from cloud.db import Database
from cloud.schema import migrate
from cloud.thresholds.check import CheckReport, check_thresholds
from cloud.thresholds.models import ThresholdFiring, UsageThreshold
from cloud.webhooks.endpoints import create_endpoint
from cloud.webhooks.models import WebhookMessage
from cloud.webhooks.types import EventType

CHECK_AT = datetime(2026, 11, 28, tzinfo=UTC)  # inside the bench's month, before NOW
THRESHOLDS = (
    ("waste_kg", "units", Decimal("50")),
    ("lid_openings", "amount", Decimal("2.40")),
    (None, "amount", Decimal("1000000")),
)


def _threshold_rows(accounts: int) -> list[dict[str, Any]]:
    created = datetime(2026, 10, 1, tzinfo=UTC)
    return [
        {
            "account_id": f"acct-{n:05d}",
            "metric_id": metric,
            "measure": measure,
            "value": value,
            "created_at": created,
            "enabled": True,
        }
        for n in range(accounts)
        for metric, measure, value in THRESHOLDS
    ]


async def bench_database(url: str, accounts: int, events: int) -> list[tuple[float, CheckReport]]:
    """Two timed runs of the job on a loaded database, with their reports."""
    site = generate(accounts, events)
    async with Database(url) as db:
        await migrate(db.engine)
        await load(db, site, accounts)

        def thresholds(session: Session) -> None:
            session.execute(insert(UsageThreshold), _threshold_rows(accounts))

        await db.run_write(thresholds)
        async with db.transaction(write=True) as session:
            kinds = [EventType.USAGE_THRESHOLD_REACHED]
            await create_endpoint(session=session, url="http://127.0.0.1:9/", event_types=kinds)
        runs = []
        for _ in range(2):
            start = time.perf_counter()
            report = await check_thresholds(db, CHECK_AT)
            runs.append((time.perf_counter() - start, report))
        async with db.transaction() as session:
            fired = await session.scalar(select(func.count()).select_from(ThresholdFiring))
            messages = await session.scalar(select(func.count()).select_from(WebhookMessage))
        assert fired == messages == len(runs[0][1].fired), (fired, messages)
    return runs


async def main(accounts: int, events: int, backends: list[str]) -> None:
    for backend in backends:
        with tempfile.TemporaryDirectory() as tmp:
            pg_name = None
            if backend == "sqlite":
                url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite'}"
            else:
                pg_name, url = await _postgres_url()
            try:
                (first, report), (second, steady) = await bench_database(url, accounts, events)
            finally:
                if pg_name:
                    await _drop(pg_name)
        print(
            f"threshold check on {backend}: {accounts:,} accounts x {len(THRESHOLDS)} "
            f"thresholds, {events:,} events: first run {first:.1f} s ({len(report.fired):,} "
            f"fired), next run {second:.1f} s ({len(steady.fired)} fired, "
            f"{steady.accounts:,} accounts rated) = {accounts / second:,.0f} accounts/s"
        )


def cli() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    assert NOW > CHECK_AT
    asyncio.run(main(args.accounts, args.events, args.backends.split(",")))


if __name__ == "__main__":
    cli()
