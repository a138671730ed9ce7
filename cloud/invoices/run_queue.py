"""Invoice runs spread across processes: a queue of account chunks that workers claim.

    run_with_workers(period="2026-11", workers=2)
      1. the parent does the once-per-run steps (`prepare_run`: finalize the drafts due, refresh
         sessions, load the accounts), writes an `invoice_runs` row (period, now, grace) and the
         billable accounts in chunks of CHUNK_ACCOUNTS (`invoice_run_chunks`, pending);
      2. it starts N workers, `python -m cloud.cli invoice work --run ID` ($TOLLGATE_DB), each a
         process of its own (the same command an operator may start on other machines: a worker
         needs only the database); each claims a chunk at a time and rates it with the run's
         `now` and grace through the one-process path's `_run_chunk`;
      3. it shows one progress view, read from the chunks table (`run_progress`, also
         GET /v1/invoice-runs/{id}), then does the once-per-run steps after rating
         (`finish_run`) and answers the same report as a one-process run.

Claims. PostgreSQL: `UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1)`; SQLite:
the same statement in a write transaction (BEGIN IMMEDIATE serializes the claims). A chunk is
claimable when pending, or claimed longer ago than the lease (its worker died). The chunk is
rated in ONE write transaction that first locks its row and checks that the claim is still the
worker's (`claims` counts claims: the claim's token), and that marks it done with its results:
a chunk is done if and only if its drafts are committed. A worker killed mid-chunk leaves
nothing (its transaction rolls back with its connection) and the chunk is claimed again once
its lease is over; on PostgreSQL the row lock keeps a live worker's chunk from being claimed
by another, even past the lease.

A chunk whose transaction fails (anything but a per-account rating failure, which is the
account's result as in a one-process run) is marked failed with the error, and the parent
reports each of its accounts as failed (`error_code` chunk_failed); the next run rates them
again. Workers run with the settings of their environment (the seller); the parent passes its
own environment on.
"""

import asyncio
import functools
import os
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, Database, SurrogateKey, UtcDateTime
from cloud.errors import BillingNotFound, CollectorError
from cloud.invoices.lines import Rates, RunAccount
from cloud.invoices.service import (
    CHUNK_ACCOUNTS,
    AccountResult,
    Progress,
    RunReport,
    Taxes,
    _run_chunk,
    finish_run,
    prepare_run,
    run_inputs,
)
from cloud.rating.periods import month_period
from cloud.seller import Seller

PENDING = "pending"
CLAIMED = "claimed"
DONE = "done"
FAILED = "failed"
RUNNING = "running"
FINISHED = "finished"
CHUNK_FAILED = "chunk_failed"
DEFAULT_LEASE = timedelta(minutes=5)  # a chunk of 500 accounts takes seconds
POLL_SECONDS = 0.2
BUSY_RETRIES = 20  # SQLite: a chunk's write waits up to ~40 s for the others' (0.2 s steps)
T = TypeVar("T")


class InvoiceRun(Base):
    """One invoice run spread across worker processes: what every worker rates with."""

    __tablename__ = "invoice_runs"

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    period: Mapped[str] = mapped_column(String(7))
    now: Mapped[datetime] = mapped_column(UtcDateTime)
    grace_seconds: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))  # running | finished
    workers: Mapped[int] = mapped_column(Integer)
    chunks: Mapped[int] = mapped_column(Integer)
    accounts: Mapped[int] = mapped_column(Integer)  # billable accounts (in chunks)
    totals: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the report's counts
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    started_by: Mapped[str] = mapped_column(String(128))  # host:pid of the parent


class InvoiceRunChunk(Base):
    """A chunk of a run's accounts: pending | claimed | done | failed."""

    __tablename__ = "invoice_run_chunks"
    __table_args__ = (
        Index(None, "run_id", "chunk_index", unique=True),
        Index(None, "run_id", "state"),
    )

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(SurrogateKey, ForeignKey("invoice_runs.id"))
    chunk_index: Mapped[int] = mapped_column(Integer)
    # [[id, time_zone, currency, plan_id, series], ...]: the accounts as the parent loaded them
    accounts: Mapped[list[list[Any]]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    claimed_by: Mapped[str | None] = mapped_column(String(128))  # host:pid of the worker
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # the lease's start
    claims: Mapped[int] = mapped_column(Integer)  # how often claimed: the current claim's token
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    results: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)  # AccountResult fields
    error: Mapped[str | None] = mapped_column(Text)  # why a failed chunk failed


RUNS = cast(Table, InvoiceRun.__table__)
CHUNKS = cast(Table, InvoiceRunChunk.__table__)


class InvoiceRunNotFound(BillingNotFound):
    """No invoice run with that id."""

    code = "invoice_run_not_found"


class WorkersStopped(CollectorError):
    """Every worker of a run stopped with chunks still to rate (a run again rates them all; the
    rated chunks' drafts are then updated, as by any second run)."""

    status = 503
    code = "invoice_workers_stopped"


@dataclass(frozen=True, slots=True)
class RunProgress:
    """Where a run is: its chunks by state and the accounts of the finished ones."""

    run_id: int
    period: str
    state: str
    accounts: int
    accounts_done: int  # in done or failed chunks
    chunks: dict[str, int]  # state -> count
    started_at: datetime
    finished_at: datetime | None
    totals: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Claim:
    """A chunk a worker holds: its row id, index, claim token and accounts."""

    chunk_id: int
    index: int
    token: int
    accounts: list[RunAccount]


def process_name() -> str:
    """host:pid, the name of this process in `claimed_by` and `started_by`."""
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_command(*, run_id: int, lease: timedelta) -> list[str]:
    """The command line of one worker of `run_id` (the database in $TOLLGATE_DB: a URL with a
    password stays out of the process list)."""
    seconds = f"{max(1, int(lease.total_seconds()))}s"
    return [
        *(sys.executable, "-m", "cloud.cli", "invoice", "work"),
        *("--run", str(run_id), "--lease", seconds),
    ]


async def run_with_workers(
    *,
    db: Database,
    period: str,
    now: datetime,
    grace: timedelta,
    workers: int,
    account_id: str | None = None,
    progress: Progress | None = None,
    seller: Seller | None = None,
    chunk_accounts: int = CHUNK_ACCOUNTS,
    lease: timedelta = DEFAULT_LEASE,
) -> RunReport:
    """`run_invoices` with the chunks rated by `workers` processes; the same report.

    A worker that exits with chunks left to rate is replaced (at most `workers` times in all);
    `WorkersStopped` when none is left and chunks remain.
    """
    if workers < 1 or chunk_accounts < 1:
        raise ValueError("workers and chunk_accounts must be >= 1")
    month_period(period, "UTC")  # refuse a bad label before any work
    finalized, accounts = await prepare_run(db=db, now=now, seller=seller, account_id=account_id)
    billable = [account for account in accounts if account.plan_id is not None]
    run_id = await enqueue_run(
        db=db,
        period=period,
        now=now,
        grace=grace,
        accounts=billable,
        workers=workers,
        chunk_accounts=chunk_accounts,
    )
    await _drive_workers(db=db, run_id=run_id, workers=workers, lease=lease, progress=progress)
    results = await run_results(db=db, run_id=run_id)
    report = await finish_run(
        db=db,
        period=period,
        now=now,
        grace=grace,
        accounts=accounts,
        finalized=finalized,
        results=results,
    )
    await finish_run_record(db=db, run_id=run_id, report=report)
    return report


async def enqueue_run(
    *,
    db: Database,
    period: str,
    now: datetime,
    grace: timedelta,
    accounts: Sequence[RunAccount],
    workers: int,
    chunk_accounts: int = CHUNK_ACCOUNTS,
) -> int:
    """Write the run and its pending chunks (`accounts` in order) in one transaction; its id."""
    chunks = [accounts[i : i + chunk_accounts] for i in range(0, len(accounts), chunk_accounts)]
    async with db.transaction(write=True) as session:
        statement = insert(InvoiceRun).returning(InvoiceRun.id)
        run_id = await session.scalar(
            statement,
            {
                "period": period,
                "now": now,
                "grace_seconds": int(grace.total_seconds()),
                "state": RUNNING,
                "workers": workers,
                "chunks": len(chunks),
                "accounts": len(accounts),
                "started_at": datetime.now(UTC),
                "started_by": process_name(),
            },
        )
        assert run_id is not None
        rows = [
            {
                "run_id": run_id,
                "chunk_index": index,
                "accounts": [[a.id, a.time_zone, a.currency, a.plan_id, a.series] for a in chunk],
                "state": PENDING,
                "claims": 0,
            }
            for index, chunk in enumerate(chunks)
        ]
        if rows:
            await session.execute(insert(InvoiceRunChunk), rows)
    return int(run_id)


async def _drive_workers(
    *, db: Database, run_id: int, workers: int, lease: timedelta, progress: Progress | None
) -> None:
    """Start the workers, show progress until every chunk is finished, wait for the workers."""
    command = worker_command(run_id=run_id, lease=lease)
    environment = {**os.environ, "TOLLGATE_DB": db.url}
    state = await run_progress(db=db, run_id=run_id)
    if progress is not None:
        progress(0, state.accounts)
    if state.accounts_done == state.accounts:
        return
    running = [await _start(command, environment) for _ in range(workers)]
    replacements = workers
    while True:
        state = await run_progress(db=db, run_id=run_id)
        if progress is not None:
            progress(state.accounts_done, state.accounts)
        if state.accounts_done == state.accounts and not state.chunks.get(CLAIMED):
            break
        for index, process in enumerate(running):
            if process.returncode is None:
                continue
            if replacements == 0:
                if all(p.returncode is not None for p in running):
                    left = state.accounts - state.accounts_done
                    raise WorkersStopped(
                        f"invoice run {run_id}: every worker stopped with {left} accounts "
                        "not rated (the drafts of the chunks done are kept); run it again",
                        detail={"run_id": run_id, "accounts_left": left},
                    )
                continue
            replacements -= 1
            running[index] = await _start(command, environment)
        await asyncio.sleep(POLL_SECONDS)
    for process in running:  # every chunk is finished: they are exiting
        await process.wait()


async def _start(command: list[str], environment: dict[str, str]) -> asyncio.subprocess.Process:
    """A worker process: its log (stderr) goes to ours, its summary line nowhere."""
    return await asyncio.create_subprocess_exec(
        *command, env=environment, stdout=asyncio.subprocess.DEVNULL
    )


async def run_progress(*, db: Database, run_id: int) -> RunProgress:
    """The run's chunks by state and its finished accounts; `InvoiceRunNotFound` if none."""
    async with db.transaction() as session:
        run = await session.get(InvoiceRun, run_id)
        if run is None:
            raise InvoiceRunNotFound(f"no invoice run {run_id}", detail={"run_id": run_id})
        size = func.json_array_length(InvoiceRunChunk.accounts)
        query = (
            select(InvoiceRunChunk.state, func.count(), func.coalesce(func.sum(size), 0))
            .where(InvoiceRunChunk.run_id == run_id)
            .group_by(InvoiceRunChunk.state)
        )
        rows = (await session.execute(query)).all()
    chunks = {state: int(count) for state, count, _ in rows}
    done = sum(int(accounts) for state, _, accounts in rows if state in (DONE, FAILED))
    return RunProgress(
        run_id=run.id,
        period=run.period,
        state=run.state,
        accounts=run.accounts,
        accounts_done=done,
        chunks=chunks,
        started_at=run.started_at,
        finished_at=run.finished_at,
        totals=run.totals,
    )


async def run_results(*, db: Database, run_id: int) -> list[AccountResult]:
    """Every account's result from the run's chunks (a failed chunk: each account failed)."""
    async with db.transaction() as session:
        query = (
            select(InvoiceRunChunk)
            .where(InvoiceRunChunk.run_id == run_id)
            .order_by(InvoiceRunChunk.chunk_index)
        )
        chunks = list(await session.scalars(query))
    results: list[AccountResult] = []
    for chunk in chunks:
        if chunk.state == DONE:
            results.extend(_result_of(row) for row in chunk.results or [])
            continue
        error = chunk.error or f"chunk {chunk.chunk_index} was not rated"
        results.extend(
            AccountResult(
                account_id,
                "failed",
                error=error,
                error_code=CHUNK_FAILED,
                error_detail={"account_id": account_id, "chunk": chunk.chunk_index},
            )
            for account_id, *_ in chunk.accounts
        )
    return results


async def finish_run_record(*, db: Database, run_id: int, report: RunReport) -> None:
    totals = {
        "drafted": report.drafted,
        "updated": report.updated,
        "unchanged_finalized": report.unchanged_finalized,
        "skipped": report.skipped,
        "nothing_to_bill": report.nothing_to_bill,
        "failed": report.failed,
    }
    async with db.transaction(write=True) as session:
        await session.execute(
            update(RUNS)
            .where(RUNS.c.id == run_id)
            .values(state=FINISHED, totals=totals, finished_at=datetime.now(UTC))
        )


# -- the worker ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """What one worker did: chunks rated, chunks failed, accounts rated."""

    chunks: int
    failed: int
    accounts: int


async def work_run(
    *,
    db: Database,
    run_id: int,
    seller: Seller | None,
    lease: timedelta = DEFAULT_LEASE,
    name: str | None = None,
) -> WorkerReport:
    """Claim and rate the run's chunks until every chunk is finished (waiting for the leases of
    chunks claimed by others: their worker may have died)."""
    name = name or process_name()
    async with db.transaction() as session:
        run = await session.get(InvoiceRun, run_id)
    if run is None:
        raise InvoiceRunNotFound(f"no invoice run {run_id}", detail={"run_id": run_id})
    rates, taxes = await run_inputs(db=db, seller=seller)
    chunks = failed = accounts = 0
    while True:
        claim = await _retrying(
            functools.partial(claim_chunk, db=db, run_id=run_id, worker=name, lease=lease), db=db
        )
        if claim is None:
            if await _retrying(functools.partial(_all_finished, db=db, run_id=run_id), db=db):
                return WorkerReport(chunks, failed, accounts)
            await asyncio.sleep(POLL_SECONDS)
            continue
        try:
            outcome = await _rate_claim(db=db, run=run, claim=claim, rates=rates, taxes=taxes)
        except Exception as exc:  # the chunk's transaction is rolled back: report it failed
            failed += 1
            await _retrying(
                functools.partial(_mark_failed, db=db, claim=claim, error=repr(exc)), db=db
            )
            continue
        if outcome is None:
            continue  # the lease ran out and another worker took it over
        chunks += 1
        accounts += len(claim.accounts)


async def _mark_failed(*, db: Database, claim: Claim, error: str) -> None:
    async with db.transaction(write=True) as session:
        if await _still_ours(session=session, claim=claim):
            await _mark(session=session, claim=claim, state=FAILED, error=error)


async def _rate_claim(
    *, db: Database, run: InvoiceRun, claim: Claim, rates: Rates, taxes: Taxes
) -> list[AccountResult] | None:
    """Rate a claimed chunk and mark it done in one transaction; None if it is not ours any more."""

    async def once() -> list[AccountResult] | None:
        async with db.transaction(write=True) as session:
            if not await _still_ours(session=session, claim=claim):
                return None
            results = await _run_chunk(
                session=session,
                accounts=claim.accounts,
                label=run.period,
                now=run.now,
                grace=timedelta(seconds=run.grace_seconds),
                rates=rates,
                taxes=taxes,
            )
            await _mark(session=session, claim=claim, state=DONE, results=results)
            return results

    return await _retrying(once, db=db)


async def _retrying(step: Callable[[], Awaitable[T]], *, db: Database) -> T:
    """`step()`, tried again while SQLite answers `database is locked` (another process holds
    the write lock longer than the driver waits); the claim stays ours meanwhile, and a failed
    attempt wrote nothing. Elsewhere an OperationalError is the chunk's failure."""
    for attempt in range(BUSY_RETRIES + 1):
        try:
            return await step()
        except OperationalError:
            if db.dialect != "sqlite" or attempt == BUSY_RETRIES:
                raise
            await asyncio.sleep(POLL_SECONDS * (attempt + 1))
    raise AssertionError("unreachable")


async def claim_chunk(*, db: Database, run_id: int, worker: str, lease: timedelta) -> Claim | None:
    """Claim the run's first pending chunk, or one whose lease is over; None if there is none."""
    now = datetime.now(UTC)
    chunk = InvoiceRunChunk
    claimable = (
        select(chunk.id)
        .where(
            chunk.run_id == run_id,
            (chunk.state == PENDING)
            | ((chunk.state == CLAIMED) & (chunk.claimed_at < now - lease)),
        )
        .order_by(chunk.chunk_index)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    statement = (
        update(CHUNKS)
        .where(CHUNKS.c.id == claimable)
        .values(state=CLAIMED, claimed_by=worker, claimed_at=now, claims=CHUNKS.c.claims + 1)
        .returning(CHUNKS.c.id, CHUNKS.c.chunk_index, CHUNKS.c.claims, CHUNKS.c.accounts)
    )
    async with db.transaction(write=True) as session:
        row = (await session.execute(statement)).one_or_none()
    if row is None:
        return None
    accounts = [RunAccount(*fields) for fields in row.accounts]
    return Claim(chunk_id=row.id, index=row.chunk_index, token=row.claims, accounts=accounts)


async def _still_ours(*, session: AsyncSession, claim: Claim) -> bool:
    """Lock the chunk's row (PostgreSQL) and check that it is still claimed with our token."""
    query = (
        select(InvoiceRunChunk.id)
        .where(
            InvoiceRunChunk.id == claim.chunk_id,
            InvoiceRunChunk.claims == claim.token,
            InvoiceRunChunk.state == CLAIMED,
        )
        .with_for_update()
    )
    return (await session.scalar(query)) is not None


async def _mark(
    *,
    session: AsyncSession,
    claim: Claim,
    state: str,
    results: list[AccountResult] | None = None,
    error: str | None = None,
) -> None:
    stored = None if results is None else [_stored(result) for result in results]
    await session.execute(
        update(CHUNKS)
        .where(CHUNKS.c.id == claim.chunk_id)
        .values(state=state, results=stored, error=error, finished_at=datetime.now(UTC))
    )


async def _all_finished(*, db: Database, run_id: int) -> bool:
    async with db.transaction() as session:
        query = select(func.count()).where(
            InvoiceRunChunk.run_id == run_id, InvoiceRunChunk.state.in_((PENDING, CLAIMED))
        )
        return (await session.scalar(query)) == 0


def _stored(result: AccountResult) -> dict[str, Any]:
    row = asdict(result)
    row["total"] = None if result.total is None else str(result.total)
    row["error_detail"] = _plain(result.error_detail)
    return row


def _plain(value: Any) -> Any:
    """JSON-ready: Decimals as their text (error details name amounts)."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Decimal):
        return str(value)
    return value


def _result_of(row: dict[str, Any]) -> AccountResult:
    total = row.get("total")
    return AccountResult(**{**row, "total": None if total is None else Decimal(total)})
