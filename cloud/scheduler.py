"""Background jobs of the collector: detection that runs by itself, not when someone asks.

A `Job` is a name, an interval and a coroutine over the database and the time it runs at. In
`serve` the lifespan runs every job of `cloud.wiring.jobs()` in its own task (`running_jobs`): it
runs, logs its report, sleeps its interval, and a failure is logged with its traceback and
retried at the next interval, never ending the task or the collector. `tollgate-cloud sweep`
runs each job once (`run_once`) for cron, tests and the demo. Every job must be safe to run in
several collector processes at once (each takes its rows with its own locks).
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cloud.db import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """A background job: `run(db, now)` every `every`; its result is logged as its report."""

    name: str
    every: timedelta
    run: Callable[[Database, datetime], Awaitable[object]]


async def run_job(db: Database, job: Job, now: datetime) -> object:
    """Run `job` once and log its report; a failure is logged and answered as None."""
    try:
        report = await job.run(db, now)
    except Exception:
        log.exception("background job %s failed; it runs again in %s", job.name, job.every)
        return None
    log.info("background job %s: %s", job.name, report)
    return report


async def run_once(
    db: Database, jobs: Sequence[Job], now: datetime | None = None
) -> dict[str, object]:
    """Run every job once, in order, at `now` (default: the clock); the reports by job name."""
    at = now or datetime.now(UTC)
    return {job.name: await run_job(db, job, at) for job in jobs}


async def _repeat(db: Database, job: Job) -> None:
    while True:
        await run_job(db, job, datetime.now(UTC))
        await asyncio.sleep(job.every.total_seconds())


@contextlib.asynccontextmanager
async def running_jobs(db: Database, jobs: Sequence[Job]) -> AsyncIterator[None]:
    """Run `jobs` in the background while the block runs; cancel them when it ends."""
    tasks = [asyncio.create_task(_repeat(db, job), name=f"job:{job.name}") for job in jobs]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
