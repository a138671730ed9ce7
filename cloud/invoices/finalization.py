"""Finalizing invoices: gap-free numbers per series, and the guard that finalized ones never change.

A number exists only on a finalized invoice. It is taken in the finalizing transaction from the
series row, locked (PostgreSQL `SELECT ... FOR UPDATE`; SQLite: the write transaction holds the
database lock), so numbers follow commit order and a rolled-back finalization consumes nothing.
"""

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog.models import Account
from cloud.db import Database
from cloud.errors import InvoiceFinalized, InvoiceNotFound
from cloud.invoices.models import Invoice, InvoiceEvidence, InvoiceLine, InvoiceSeries
from cloud.invoices.parties import issue_and_due, parties_document
from cloud.invoices.webhook_events import emit_finalized
from cloud.seller import Seller

DRAFT = "draft"
FINALIZED = "finalized"


def invoice_number(series: str, number: int | None) -> str | None:
    """The printed number, e.g. "INV-000012" (None for a draft)."""
    return None if number is None else f"{series}-{number:06d}"


async def finalize_invoice(
    *, db: Database, invoice_id: int, now: datetime, seller: Seller | None = None
) -> Invoice:
    """Finalize one draft now (also during its grace period) and give it the next number.

    It freezes its parties (`seller` from settings, the account as buyer, payment terms and
    locale), its issue date (the local date of `now`) and due date: a later change of the
    account's address never changes a finalized invoice.

    `InvoiceNotFound` for an unknown id, `InvoiceFinalized` when it is already final.
    """
    async with db.transaction(write=True) as session:
        invoice = await locked_invoice(session=session, invoice_id=invoice_id)
        refuse_finalized(invoice)
        # before the status changes: a finalized row never changes (its trigger)
        await freeze_parties(session=session, invoice=invoice, seller=seller, now=now)
        number = await take_number(session=session, series=invoice.series)
        invoice.status = FINALIZED
        invoice.number = number
        invoice.finalized_at = now
        await session.flush()
        printed = invoice_number(invoice.series, number)
        await emit_finalized(session=session, invoice=invoice, number=printed)  # same transaction
        return invoice


async def freeze_parties(
    *, session: AsyncSession, invoice: Invoice, seller: Seller | None, now: datetime
) -> None:
    """Set the invoice's `parties`, `issue_date` and `due_date` from its account now."""
    account = await session.get_one(Account, invoice.account_id)
    invoice.parties = parties_document(account, seller)
    invoice.issue_date, invoice.due_date = issue_and_due(account, now)


async def finalize_due(*, db: Database, now: datetime, seller: Seller | None = None) -> list[int]:
    """Finalize every draft whose grace period is over (grace_until <= now); their ids.

    Oldest period first, each in its own transaction. A draft finalized meanwhile by someone
    else is skipped.
    """
    async with db.transaction() as session:
        query = (
            select(Invoice.id)
            .where(Invoice.status == DRAFT, Invoice.grace_until <= now)
            .order_by(Invoice.period_start, Invoice.id)
        )
        due = list(await session.scalars(query))
    done = []
    for invoice_id in due:
        try:
            await finalize_invoice(db=db, invoice_id=invoice_id, now=now, seller=seller)
        except (InvoiceFinalized, InvoiceNotFound):
            continue
        done.append(invoice_id)
    return done


async def discard_invoice(*, db: Database, invoice_id: int) -> None:
    """Delete a draft with its lines and evidence; `InvoiceFinalized` for a final one."""
    async with db.transaction(write=True) as session:
        invoice = await locked_invoice(session=session, invoice_id=invoice_id)
        refuse_finalized(invoice)
        await session.execute(
            delete(InvoiceEvidence).where(InvoiceEvidence.invoice_id == invoice_id)
        )
        await session.execute(delete(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id))
        await session.execute(delete(Invoice).where(Invoice.id == invoice_id))


async def locked_invoice(*, session: AsyncSession, invoice_id: int) -> Invoice:
    """The invoice row, locked for this transaction on PostgreSQL; `InvoiceNotFound` if none."""
    query = select(Invoice).where(Invoice.id == invoice_id).with_for_update()
    invoice = (await session.scalars(query)).one_or_none()
    if invoice is None:
        raise InvoiceNotFound(f"no invoice {invoice_id}", detail={"invoice_id": invoice_id})
    return invoice


def refuse_finalized(invoice: Invoice) -> None:
    """`InvoiceFinalized` (409) if the invoice is final: nothing may change it."""
    if invoice.status == FINALIZED:
        number = invoice_number(invoice.series, invoice.number)
        raise InvoiceFinalized(
            f"invoice {invoice.id} ({number}) is finalized and cannot change",
            detail={"invoice_id": invoice.id, "number": number},
        )


async def take_number(*, session: AsyncSession, series: str) -> int:
    """The series' next number, counted up in this transaction (the row created if missing)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(InvoiceSeries).values(series=series, next_number=1).on_conflict_do_nothing()
    )
    query = select(InvoiceSeries.next_number).where(InvoiceSeries.series == series)
    number = (await session.execute(query.with_for_update())).scalar_one()
    await session.execute(
        update(InvoiceSeries).where(InvoiceSeries.series == series).values(next_number=number + 1)
    )
    return number
