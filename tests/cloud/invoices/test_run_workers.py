"""Invoice runs spread across worker processes equal a one-process run, field by field.

Two databases of one backend get the same catalog and usage through the real services (the
plans of test_runs.py: a household and a company, a plan change mid-period, an account whose
amount overflows the bound, one without a plan, an adjustment for late usage of a finalized
month). One is run in this process (`run_invoices`), the other by two `invoice work` processes
claiming chunks of two accounts (`run_with_workers`), with the same `now`. Drafts, lines and
evidence must be equal per account, leaving out only row ids and the wall-clock `computed_at`.
On PostgreSQL a worker is killed (SIGKILL) in the middle of its chunk's transaction: its
writes vanish, and the chunk is claimed again after its lease.
"""

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import select, text

from cloud.cli import main
from cloud.db import Database
from cloud.invoices.finalization import finalize_invoice
from cloud.invoices.models import Invoice, InvoiceEvidence, InvoiceLine
from cloud.invoices.run_queue import (
    CHUNK_FAILED,
    CLAIMED,
    DONE,
    InvoiceRun,
    InvoiceRunChunk,
    run_with_workers,
)
from cloud.invoices.service import RunReport, run_invoices
from cloud.schema import migrate
from cloud.sessions.models import SessionRow
from tests.cloud.conftest import READER
from tests.cloud.invoices.test_runs import (
    GRACE,
    Billing,
    household_and_company,
    reading,
    three_accounts_the_middle_one_overflowing,
    utc,
)
from tests.support.waiting import eventually

PERIOD = "2026-10"
CHUNK = 2  # accounts per chunk: the 7 accounts with a plan below make 4 chunks


@pytest.fixture(params=["sqlite", "postgresql"])
def two_urls(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[tuple[str, str]]:
    """Two fresh, empty databases of one backend."""
    if request.param == "sqlite":
        yield (
            f"sqlite+aiosqlite:///{tmp_path}/one.sqlite",
            f"sqlite+aiosqlite:///{tmp_path}/n.sqlite",
        )
        return
    with postgres_databases(request.getfixturevalue("postgres_admin_dsn"), 2) as urls:
        yield urls[0], urls[1]


@pytest.fixture
def two_postgres(postgres_admin_dsn: str) -> Iterator[tuple[str, str]]:
    """Two fresh, empty PostgreSQL databases."""
    with postgres_databases(postgres_admin_dsn, 2) as urls:
        yield urls[0], urls[1]


@contextlib.contextmanager
def postgres_databases(admin_dsn: str, count: int) -> Iterator[list[str]]:
    """`count` fresh PostgreSQL databases, dropped afterwards."""
    names = [f"tollgate_test_{uuid.uuid4().hex[:12]}" for _ in range(count)]

    async def each(statement: str) -> None:
        connection = await asyncpg.connect(admin_dsn)
        try:
            for name in names:
                await connection.execute(statement.format(name=name))
        finally:
            await connection.close()

    asyncio.run(each('CREATE DATABASE "{name}"'))
    base = admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield [f"{base}/{name}" for name in names]
    finally:
        asyncio.run(each('DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.asynccontextmanager
async def populated(url: str) -> AsyncIterator[Database]:
    """A migrated database with the catalog and usage of this module's runs."""
    async with Database(url) as db:
        await migrate(db.engine)
        billing = await Billing(db).setup()
        await household_and_company(billing)  # home-1 (EUR, Berlin) and acme (USD, New York)
        await three_accounts_the_middle_one_overflowing(billing)  # acct-b fails
        await billing.account("nobody", plan=None)  # skipped
        await billing.account("quiet")  # no devices: the base fee alone
        await billing.account("shop", plan="shop")  # plan v2 from 2026-10-16
        await billing.device("meter-s", "meter", "shop")
        await billing.send(
            reading("meter-s", utc(2026, 10, 10), "10"),
            reading("meter-s", utc(2026, 10, 20), "10"),
            reading("meter-1", utc(2026, 9, 10), "3"),
        )
        # home-1's September is finalized, then late September usage arrives: an adjustment
        await run_invoices(db=db, period="2026-09", now=datetime.now(UTC), grace=GRACE)
        september = await billing.invoice("home-1", "2026-09")
        assert september is not None
        await finalize_invoice(db=db, invoice_id=september.id, now=datetime.now(UTC), force=True)
        await billing.send(reading("meter-1", utc(2026, 9, 20), "4"))
        yield db


async def drafts(db: Database, period: str) -> dict[str, dict[str, Any]]:
    """account -> its invoice of the period: header, lines and evidence, without row ids or
    the wall-clock computed_at (an adjustment's corrected invoice as its account and period,
    a piece's session as its device, channel and start)."""
    async with db.transaction() as session:
        periods = {
            row.id: (row.account_id, row.period)
            for row in await session.execute(select(Invoice.id, Invoice.account_id, Invoice.period))
        }
        sessions = {
            row.id: (row.device_id, row.channel, row.started_at)
            for row in await session.execute(
                select(
                    SessionRow.id, SessionRow.device_id, SessionRow.channel, SessionRow.started_at
                )
            )
        }
        invoices = await session.execute(
            select(*Invoice.__table__.c).where(Invoice.period == period)
        )
        found: dict[str, dict[str, Any]] = {}
        for header in invoices.mappings():
            lines = await session.execute(
                select(*InvoiceLine.__table__.c)
                .where(InvoiceLine.invoice_id == header["id"])
                .order_by(InvoiceLine.n)
            )
            evidence = await session.execute(
                select(*InvoiceEvidence.__table__.c).where(
                    InvoiceEvidence.invoice_id == header["id"]
                )
            )
            found[header["account_id"]] = {
                "header": _without(header, "id", "computed_at"),
                "lines": [
                    {
                        **_without(line, "invoice_id"),
                        "corrects_invoice_id": periods.get(line["corrects_invoice_id"]),
                    }
                    for line in lines.mappings()
                ],
                "evidence": sorted(
                    repr(
                        {
                            **_without(row, "id", "invoice_id"),
                            "session_id": sessions.get(row["session_id"]),
                        }
                    )
                    for row in evidence.mappings()
                ),
            }
    return found


def _without(row: Any, *keys: str) -> dict[str, Any]:
    return {key: value for key, value in dict(row).items() if key not in keys}


def without_invoice_ids(report: RunReport) -> RunReport:
    """The report as compared across databases: the invoice ids differ."""
    accounts = [replace(result, invoice_id=None) for result in report.accounts]
    return replace(report, accounts=accounts, finalized_due=[])


async def test_two_workers_draft_what_one_process_drafts(two_urls: tuple[str, str]) -> None:
    one_url, many_url = two_urls
    async with populated(one_url) as one, populated(many_url) as many:
        now = datetime.now(UTC)
        alone = await run_invoices(db=one, period=PERIOD, now=now, grace=GRACE)
        seen: list[tuple[int, int]] = []
        spread = await run_with_workers(
            db=many,
            period=PERIOD,
            now=now,
            grace=GRACE,
            workers=2,
            chunk_accounts=CHUNK,
            progress=lambda done, total: seen.append((done, total)),
        )

        assert without_invoice_ids(spread) == without_invoice_ids(alone)
        assert (alone.drafted, alone.skipped, alone.failed) == (6, 1, 1)
        expected = await drafts(one, PERIOD)
        assert sorted(expected) == ["acct-a", "acct-c", "acme", "home-1", "quiet", "shop"]
        assert await drafts(many, PERIOD) == expected
        adjustments = [ln for ln in expected["home-1"]["lines"] if ln["corrects_invoice_id"]]
        assert [line["corrects_invoice_id"] for line in adjustments] == [("home-1", "2026-09")]
        async with many.transaction() as session:
            chunks = list(await session.scalars(select(InvoiceRunChunk)))
            run = (await session.scalars(select(InvoiceRun))).one()
        assert len(chunks) == 4 and {chunk.state for chunk in chunks} == {DONE}
        assert all(chunk.claimed_by and chunk.claims == 1 for chunk in chunks)
        assert (run.state, run.totals) == ("finished", _totals(alone))
        assert seen[0] == (0, 7) and seen[-1] == (7, 7)  # 7 accounts with a plan


def _totals(report: RunReport) -> dict[str, int]:
    return {
        "drafted": report.drafted,
        "updated": report.updated,
        "unchanged_finalized": report.unchanged_finalized,
        "skipped": report.skipped,
        "nothing_to_bill": report.nothing_to_bill,
        "failed": report.failed,
    }


async def test_a_worker_killed_mid_chunk_rolls_back_and_its_chunk_is_claimed_again(
    two_postgres: tuple[str, str],
) -> None:
    one_url, many_url = two_postgres
    async with populated(one_url) as one, populated(many_url) as many:
        now = datetime.now(UTC)
        alone = await run_invoices(db=one, period=PERIOD, now=now, grace=GRACE)
        # Both workers get stuck inside their first chunk's transaction: nobody may write lines.
        raw_url = many_url.replace("postgresql+asyncpg", "postgresql")
        blocker, watcher = await asyncpg.connect(raw_url), await asyncpg.connect(raw_url)
        hold = blocker.transaction()
        await hold.start()
        await blocker.execute("LOCK TABLE invoice_lines IN SHARE MODE")
        run = asyncio.create_task(
            run_with_workers(
                db=many,
                period=PERIOD,
                now=now,
                grace=GRACE,
                workers=2,
                chunk_accounts=CHUNK,
                lease=timedelta(seconds=1),
            )
        )
        try:

            async def both_stuck() -> bool:
                waiting = await watcher.fetchval(  # not `blocker`: a snapshot per transaction
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                return bool(waiting == 2)

            await eventually(both_stuck, what="two workers waiting inside their chunks")
            claimed = await watcher.fetch(
                "SELECT chunk_index, claimed_by FROM invoice_run_chunks WHERE state = $1 "
                "ORDER BY chunk_index",
                CLAIMED,
            )
            assert len(claimed) == 2
            victim_index, victim = claimed[0]["chunk_index"], claimed[0]["claimed_by"]
            os.kill(int(victim.rsplit(":", 1)[1]), signal.SIGKILL)
        finally:
            await hold.rollback()
            await blocker.close()
            await watcher.close()
        spread = await run

        assert without_invoice_ids(spread) == without_invoice_ids(alone)
        assert await drafts(many, PERIOD) == await drafts(one, PERIOD)
        async with many.transaction() as session:
            chunks = {c.chunk_index: c for c in await session.scalars(select(InvoiceRunChunk))}
        assert {chunk.state for chunk in chunks.values()} == {DONE}
        again = chunks[victim_index]
        assert again.claims == 2 and again.claimed_by != victim  # taken over after its lease
        assert [c.claims for i, c in sorted(chunks.items()) if i != victim_index] == [1, 1, 1]


async def test_the_run_command_with_workers_and_its_progress(
    db: Database, client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    billing = await Billing(db).setup()
    await household_and_company(billing)
    argv = ["invoice", "run", "--period", PERIOD, "--grace", "36500d", "--db", db.url]

    status = await asyncio.to_thread(main, [*argv, "--workers", "2", "--chunk", "1"])

    out = capsys.readouterr().out
    assert status == 0
    assert "period 2026-10: 2 drafted, 0 updated" in out
    progress = await client.get("/v1/invoice-runs/1", headers=READER)
    assert progress.status_code == 200
    body = progress.json()
    assert (body["state"], body["accounts"], body["accounts_done"]) == ("finished", 2, 2)
    assert body["chunks"] == {"done": 2}
    assert (body["totals"]["drafted"], body["totals"]["failed"]) == (2, 0)
    missing = await client.get("/v1/invoice-runs/2", headers=READER)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "invoice_run_not_found"
    refused = await asyncio.to_thread(main, [*argv, "--workers", "0"])
    assert refused == 2
    assert "--workers and --chunk must be at least 1" in capsys.readouterr().err


async def test_a_chunk_that_fails_reports_each_of_its_accounts_failed(postgres_url: str) -> None:
    async with populated(postgres_url) as db:
        # The database refuses acme's draft: its chunk (acct-c, acme) cannot be written.
        async with db.transaction(write=True) as session:
            await session.execute(
                text(
                    "CREATE FUNCTION refuse_acme() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'acme refused by the test'; END $$"
                )
            )
            await session.execute(
                text(
                    "CREATE TRIGGER refuse_acme BEFORE INSERT ON invoices FOR EACH ROW "
                    "WHEN (NEW.account_id = 'acme') EXECUTE FUNCTION refuse_acme()"
                )
            )

        report = await run_with_workers(
            db=db, period=PERIOD, now=datetime.now(UTC), grace=GRACE, workers=2, chunk_accounts=2
        )

        outcomes = {result.account_id: result.outcome for result in report.accounts}
        assert outcomes == {
            "acct-a": "drafted",
            "acct-b": "failed",  # beyond the rating bound, as in one process
            "acct-c": "failed",
            "acme": "failed",
            "home-1": "drafted",
            "nobody": "skipped",
            "quiet": "drafted",
            "shop": "drafted",
        }
        assert report.failed == 3 and "3 failed (acct-b, acct-c, acme)" in str(report)
        for failure in report.failures[1:]:
            assert failure.error_code == CHUNK_FAILED
            assert failure.error is not None and "acme refused by the test" in failure.error
        async with db.transaction() as session:
            drafted = set(
                await session.scalars(select(Invoice.account_id).where(Invoice.period == PERIOD))
            )
            states = sorted((await session.execute(select(InvoiceRunChunk.state))).scalars())
        assert drafted == {"acct-a", "home-1", "quiet", "shop"}  # acct-c rolled back with acme
        assert states == ["done", "done", "done", "failed"]
