"""Finalization on SQLite and PostgreSQL: gap-free numbers per series, immutability, grace."""

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from cloud.errors import InvoiceFinalized, InvoiceNotFound
from cloud.invoices.finalization import (
    discard_invoice,
    finalize_due,
    finalize_invoice,
    take_number,
)
from cloud.invoices.models import Invoice, InvoiceLine, InvoiceSeries
from cloud.invoices.service import run_invoices
from tests.cloud.invoices.test_runs import Billing, billing, reading, utc

__all__ = ["billing"]  # the fixture, shared with test_runs


async def drafts(
    billing: Billing, accounts: dict[str, str], period: str = "2026-10"
) -> dict[str, int]:
    """Create accounts (id -> series) each with a metered device and run the period."""
    for account_id, series in accounts.items():
        await billing.account(account_id, series=series)
        await billing.device(f"m-{account_id}", "meter", account_id)
    await billing.send(*(reading(f"m-{a}", utc(2026, 10, 3), "1") for a in accounts))
    await billing.run(period)
    ids = {}
    for account_id in accounts:
        invoice = await billing.invoice(account_id, period)
        assert invoice is not None
        ids[account_id] = invoice.id
    return ids


async def numbers(billing: Billing) -> dict[str, str | None]:
    """account -> "SERIES-number" of its October invoice (None while a draft)."""
    async with billing.db.transaction() as session:
        rows = (
            await session.execute(select(Invoice.account_id, Invoice.series, Invoice.number))
        ).all()
    return {a: None if n is None else f"{s}-{n:06d}" for a, s, n in rows}


async def test_numbers_are_gap_free_per_series_in_finalization_order(billing: Billing) -> None:
    ids = await drafts(billing, {"a": "INV", "b": "INV", "c": "CO", "d": "INV"})
    now = datetime.now(UTC)

    for account_id in ("b", "c", "a"):
        await finalize_invoice(db=billing.db, invoice_id=ids[account_id], now=now, force=True)

    assert await numbers(billing) == {
        "a": "INV-000002",
        "b": "INV-000001",
        "c": "CO-000001",
        "d": None,
    }
    invoice = await billing.invoice("b", "2026-10")
    assert invoice is not None
    assert (invoice.status, invoice.finalized_at) == ("finalized", now)


async def test_finalizing_twice_is_refused_and_consumes_no_number(billing: Billing) -> None:
    ids = await drafts(billing, {"a": "INV", "b": "INV"})
    now = datetime.now(UTC)
    await finalize_invoice(db=billing.db, invoice_id=ids["a"], now=now, force=True)
    before = await billing.snapshot(ids["a"])

    with pytest.raises(InvoiceFinalized):
        await finalize_invoice(
            db=billing.db, invoice_id=ids["a"], now=now + timedelta(hours=1), force=True
        )
    await finalize_invoice(db=billing.db, invoice_id=ids["b"], now=now, force=True)

    assert await billing.snapshot(ids["a"]) == before
    assert await numbers(billing) == {"a": "INV-000001", "b": "INV-000002"}


async def test_a_rolled_back_finalization_consumes_nothing(billing: Billing) -> None:
    ids = await drafts(billing, {"a": "INV"})

    with pytest.raises(RuntimeError):
        async with billing.db.transaction(write=True) as session:
            assert await take_number(session=session, series="INV") == 1
            raise RuntimeError("the finalizing transaction fails after taking its number")
    await finalize_invoice(db=billing.db, invoice_id=ids["a"], now=datetime.now(UTC), force=True)

    assert await numbers(billing) == {"a": "INV-000001"}
    async with billing.db.transaction() as session:
        series = await session.get_one(InvoiceSeries, "INV")
    assert series.next_number == 2


async def test_concurrent_finalizations_give_one_to_n(billing: Billing) -> None:
    accounts = {f"acct-{i}": "INV" for i in range(8)}
    ids = await drafts(billing, accounts)
    now = datetime.now(UTC)

    await asyncio.gather(
        *(finalize_invoice(db=billing.db, invoice_id=i, now=now, force=True) for i in ids.values())
    )

    assert sorted((await numbers(billing)).values()) == [f"INV-{n:06d}" for n in range(1, 9)]


async def test_concurrent_finalizations_of_one_invoice_number_it_once(billing: Billing) -> None:
    ids = await drafts(billing, {"a": "INV"})
    now = datetime.now(UTC)

    results = await asyncio.gather(
        *(
            finalize_invoice(db=billing.db, invoice_id=ids["a"], now=now, force=True)
            for _ in range(4)
        ),
        return_exceptions=True,
    )

    assert sum(1 for r in results if isinstance(r, InvoiceFinalized)) == 3
    assert await numbers(billing) == {"a": "INV-000001"}


async def test_rerunning_a_finalized_period_changes_nothing(billing: Billing) -> None:
    ids = await drafts(billing, {"a": "INV"})
    await finalize_invoice(db=billing.db, invoice_id=ids["a"], now=datetime.now(UTC), force=True)
    before = await billing.snapshot(ids["a"])
    await billing.send(reading("m-a", utc(2026, 10, 20), "5"))  # a late event

    report = await billing.run("2026-10")

    assert (report.unchanged_finalized, report.drafted, report.updated) == (1, 0, 0)
    assert report.accounts[0].outcome == "finalized"
    assert await billing.snapshot(ids["a"]) == before


async def test_discarding_a_draft_removes_it_and_a_finalized_one_is_refused(
    billing: Billing,
) -> None:
    ids = await drafts(billing, {"a": "INV", "b": "INV"})
    await finalize_invoice(db=billing.db, invoice_id=ids["a"], now=datetime.now(UTC), force=True)
    finalized = await billing.snapshot(ids["a"])

    await discard_invoice(db=billing.db, invoice_id=ids["b"])
    with pytest.raises(InvoiceFinalized):
        await discard_invoice(db=billing.db, invoice_id=ids["a"])
    with pytest.raises(InvoiceNotFound):
        await discard_invoice(db=billing.db, invoice_id=ids["b"])
    with pytest.raises(InvoiceNotFound):
        await finalize_invoice(db=billing.db, invoice_id=999_999, now=datetime.now(UTC), force=True)

    assert await billing.invoice("b", "2026-10") is None
    async with billing.db.transaction() as session:
        lines = await session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == ids["b"]))
        assert list(lines) == []
    assert await billing.snapshot(ids["a"]) == finalized


async def test_drafts_past_their_grace_are_finalized_by_finalize_due(billing: Billing) -> None:
    for account_id in ("early", "late"):
        await billing.account(account_id)
    now = datetime.now(UTC)
    # October (UTC) ends 2026-11-01T00:00Z: a 1-day grace is over by now, one lasting a day
    # longer than the time since then is not
    not_yet = now - datetime(2026, 11, 1, tzinfo=UTC) + timedelta(days=1)
    await run_invoices(db=billing.db, period="2026-10", now=now, grace=not_yet, account_id="late")
    await run_invoices(
        db=billing.db, period="2026-10", now=now, grace=timedelta(days=1), account_id="early"
    )

    done = await finalize_due(db=billing.db, now=now)

    early = await billing.invoice("early", "2026-10")
    late = await billing.invoice("late", "2026-10")
    assert early is not None and late is not None
    assert done == [early.id]
    assert (early.status, early.number, early.total) == ("finalized", 1, Decimal("10.00"))
    assert (late.status, late.number) == ("draft", None)
    assert await finalize_due(db=billing.db, now=now) == []


async def test_a_run_finalizes_due_drafts_first(billing: Billing) -> None:
    await billing.account("a")
    now = datetime.now(UTC)
    await run_invoices(db=billing.db, period="2026-09", now=now, grace=timedelta(days=1))

    report = await billing.run("2026-10")

    september = await billing.invoice("a", "2026-09")
    assert september is not None
    assert report.finalized_due == [september.id]
    assert september.status == "finalized"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE invoices SET total = 0 WHERE id = :id",
        "UPDATE invoices SET status = 'draft', number = NULL WHERE id = :id",
        "DELETE FROM invoices WHERE id = :id",
        "UPDATE invoice_lines SET amount = '0' WHERE invoice_id = :id",
        "DELETE FROM invoice_lines WHERE invoice_id = :id",
        "INSERT INTO invoice_lines (invoice_id, n, kind, description, part_start, part_end,"
        " amount, detail) SELECT invoice_id, 99, kind, description, part_start, part_end,"
        " amount, detail FROM invoice_lines WHERE invoice_id = :id AND n = 1",
        "UPDATE invoice_evidence SET seq = 0 WHERE invoice_id = :id",
        "DELETE FROM invoice_evidence WHERE invoice_id = :id",
    ],
)
async def test_the_database_itself_refuses_to_change_a_finalized_invoice(
    billing: Billing, statement: str
) -> None:
    ids = await drafts(billing, {"a": "INV", "b": "INV"})
    await finalize_invoice(db=billing.db, invoice_id=ids["a"], now=datetime.now(UTC), force=True)
    before = await billing.snapshot(ids["a"])
    assert len(before[2]) == 1  # it has evidence (the reading), so the statements touch rows

    with pytest.raises(DBAPIError, match="invoice_finalized"):
        async with billing.db.transaction(write=True) as session:
            await session.execute(text(statement), {"id": ids["a"]})
    async with billing.db.transaction(write=True) as session:  # a draft may still change
        if statement.startswith("DELETE FROM invoices"):  # its parts first (foreign keys)
            for table in ("invoice_evidence", "invoice_lines"):
                await session.execute(
                    text(f"DELETE FROM {table} WHERE invoice_id = :id"), {"id": ids["b"]}
                )
        await session.execute(text(statement), {"id": ids["b"]})

    assert await billing.snapshot(ids["a"]) == before
