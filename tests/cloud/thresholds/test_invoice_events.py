"""invoice.drafted and invoice.finalized on SQLite and PostgreSQL: written with the change that
causes them (a run's draft, a finalization), none for a re-run that changes nothing.

Totals by hand are those of tests/cloud/invoices/test_runs.py (household_and_company)."""

from datetime import UTC, datetime

import pytest

from cloud.errors import InvoiceFinalized
from cloud.invoices.finalization import finalize_due, finalize_invoice
from cloud.webhooks.types import EventType
from tests.cloud.invoices.test_runs import Billing, household_and_company, reading, utc
from tests.cloud.thresholds.conftest import payloads, subscribe

DRAFTED, FINALIZED = EventType.INVOICE_DRAFTED, EventType.INVOICE_FINALIZED


async def test_a_run_announces_each_new_draft(billing: Billing) -> None:
    await subscribe(billing.db, DRAFTED, FINALIZED)
    await household_and_company(billing)

    await billing.run("2026-10")

    home, acme = (
        await billing.invoice("home-1", "2026-10"),
        await billing.invoice("acme", "2026-10"),
    )
    assert home is not None and acme is not None
    assert sorted(await payloads(billing.db, DRAFTED), key=lambda m: m["account_id"]) == [
        {
            "invoice_id": acme.id,
            "account_id": "acme",
            "change": "created",
            "period": "2026-10",
            "period_start": "2026-10-01T04:00:00+00:00",
            "period_end": "2026-11-01T04:00:00+00:00",
            "total": "51.35",
            "currency": "USD",
            "lines": 3,
        },
        {
            "invoice_id": home.id,
            "account_id": "home-1",
            "change": "created",
            "period": "2026-10",
            "period_start": "2026-09-30T22:00:00+00:00",
            "period_end": "2026-10-31T23:00:00+00:00",
            "total": "15.05",
            "currency": "EUR",
            "lines": 3,
        },
    ]
    assert await payloads(billing.db, FINALIZED) == []


async def test_a_rerun_announces_only_drafts_that_changed(billing: Billing) -> None:
    await subscribe(billing.db, DRAFTED)
    await household_and_company(billing)
    await billing.run("2026-10")

    await billing.run("2026-10")  # nothing new: the drafts are rewritten with the same content
    assert len(await payloads(billing.db, DRAFTED)) == 2

    await billing.send(reading("meter-1", utc(2026, 10, 12), "2"))  # late: home-1 only
    await billing.run("2026-10")

    *_, last = await payloads(billing.db, DRAFTED)
    assert len(await payloads(billing.db, DRAFTED)) == 3
    assert (last["account_id"], last["change"], last["total"]) == ("home-1", "updated", "15.25")


async def test_finalizing_announces_the_number_and_issue_time(billing: Billing) -> None:
    await subscribe(billing.db, FINALIZED)
    await household_and_company(billing)
    await billing.run("2026-10")
    home = await billing.invoice("home-1", "2026-10")
    assert home is not None
    issued = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)

    await finalize_invoice(db=billing.db, invoice_id=home.id, now=issued, force=True)
    with pytest.raises(InvoiceFinalized):  # refused: rolled back, announces nothing
        await finalize_invoice(db=billing.db, invoice_id=home.id, now=issued, force=True)

    assert await payloads(billing.db, FINALIZED) == [
        {
            "invoice_id": home.id,
            "account_id": "home-1",
            "number": "INV-000001",
            "period": "2026-10",
            "total": "15.05",
            "currency": "EUR",
            "finalized_at": "2026-11-02T09:30:00+00:00",
        }
    ]


async def test_drafts_finalized_at_the_end_of_their_grace_are_announced(billing: Billing) -> None:
    await subscribe(billing.db, FINALIZED)
    await household_and_company(billing)
    await billing.run("2026-10")

    done = await finalize_due(db=billing.db, now=datetime(2200, 1, 1, tzinfo=UTC))

    announced = await payloads(billing.db, FINALIZED)
    assert sorted(m["invoice_id"] for m in announced) == sorted(done)
    assert sorted(m["number"] for m in announced) == ["INV-000001", "INV-000002"]
    assert await payloads(billing.db, DRAFTED) == []  # that endpoint did not ask for drafts
