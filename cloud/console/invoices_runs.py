"""Invoice runs started from the console: the run queue's steps, rated in this process.

    start_run(db=db, period="2026-11", now=now, grace=grace, seller=seller) -> run id
      1. the once-per-run steps of every run (`prepare_run`: finalize the drafts due, refresh
         sessions, load the accounts) and the run with its chunks (`enqueue_run`), so that its
         progress is stored (`run_progress`, GET /v1/invoice-runs/{id}, the overview's last run);
      2. in a background task of this process: the chunks rated by `work_run` (the code of an
         `invoice work` process), then the once-per-run steps after rating (`finish_run`) and
         the run marked finished with its counts, as `run_with_workers` does.

The drafts are those of POST /v1/invoice-runs (`run_invoices`): tests/cloud/invoices/
test_run_workers.py checks that the chunked path writes the same drafts field by field.
"""

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import FastAPI

from cloud.db import Database
from cloud.invoices.lines import RunAccount
from cloud.invoices.run_queue import (
    FINISHED,
    RunProgress,
    enqueue_run,
    finish_run_record,
    run_progress,
    run_results,
    work_run,
)
from cloud.invoices.service import AccountResult, finish_run, prepare_run
from cloud.rating.periods import month_period
from cloud.seller import Seller

log = logging.getLogger(__name__)
_TASKS = "console_invoice_runs"  # app.state: run id -> its background task
FAILED = "failed"  # an account's outcome (`AccountResult.outcome`)


@dataclass(frozen=True, slots=True)
class RunView:
    """A run's progress, its failed accounts once finished, and why its task stopped (if so)."""

    progress: RunProgress
    failures: list[AccountResult]
    stopped: str | None  # the background task's error, when it ended before the run finished

    @property
    def finished(self) -> bool:
        """Whether every account is rated and the run's counts are stored."""
        return self.progress.state == FINISHED


@dataclass(frozen=True, slots=True)
class QueuedRun:
    """A run written with its pending chunks, and what its steps after rating need."""

    run_id: int
    period: str
    now: datetime
    grace: timedelta
    accounts: list[RunAccount]  # every account, with a plan or not
    finalized: list[int]  # the drafts finalized first (their grace period was over)


async def start_run(
    *,
    app: FastAPI,
    db: Database,
    period: str,
    now: datetime,
    grace: timedelta,
    seller: Seller | None,
) -> int:
    """Write the run of `period` and start rating it in the background; its id."""
    queued = await queue_run(db=db, period=period, now=now, grace=grace, seller=seller)
    task = asyncio.create_task(
        rate_and_finish(db=db, queued=queued, seller=seller),
        name=f"console-invoice-run-{queued.run_id}",
    )
    _tasks(app)[queued.run_id] = task
    return queued.run_id


async def queue_run(
    *, db: Database, period: str, now: datetime, grace: timedelta, seller: Seller | None
) -> QueuedRun:
    """Step 1: the steps before rating and the run with its pending chunks."""
    month_period(period, "UTC")  # refuse a bad label before any work
    finalized, accounts = await prepare_run(db=db, now=now, seller=seller, account_id=None)
    billable = [account for account in accounts if account.plan_id is not None]
    run_id = await enqueue_run(
        db=db, period=period, now=now, grace=grace, accounts=billable, workers=1
    )
    return QueuedRun(run_id, period, now, grace, accounts, finalized)


async def rate_and_finish(*, db: Database, queued: QueuedRun, seller: Seller | None) -> None:
    """Step 2: rate the chunks (`work_run`), the steps after rating, the run marked finished."""
    try:
        await work_run(db=db, run_id=queued.run_id, seller=seller)
        results = await run_results(db=db, run_id=queued.run_id)
        report = await finish_run(
            db=db,
            period=queued.period,
            now=queued.now,
            grace=queued.grace,
            accounts=queued.accounts,
            finalized=queued.finalized,
            results=results,
        )
        await finish_run_record(db=db, run_id=queued.run_id, report=report)
    except Exception:
        log.exception("console invoice run %s stopped", queued.run_id)
        raise


async def read_run(*, app: FastAPI, db: Database, run_id: int) -> RunView:
    """The run's progress (`InvoiceRunNotFound` if none) and, once finished, its failures."""
    progress = await run_progress(db=db, run_id=run_id)
    failures: list[AccountResult] = []
    if progress.state == FINISHED:
        results = await run_results(db=db, run_id=run_id)
        failures = [result for result in results if result.outcome == FAILED]
    return RunView(progress=progress, failures=failures, stopped=_stopped(app, run_id))


def _stopped(app: FastAPI, run_id: int) -> str | None:
    task = _tasks(app).get(run_id)
    if task is None or not task.done() or task.cancelled():
        return None
    error = task.exception()
    return None if error is None else f"{type(error).__name__}: {error}"


def _tasks(app: FastAPI) -> dict[int, "asyncio.Task[None]"]:
    tasks: dict[int, asyncio.Task[None]] | None = getattr(app.state, _TASKS, None)
    if tasks is None:
        tasks = {}
        setattr(app.state, _TASKS, tasks)
    return tasks
