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
from cloud.errors import GraceNotOver, InvoiceFinalized, InvoiceNotFound
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
    *,
    db: Database,
    invoice_id: int,
    now: datetime,
    force: bool = False,
    seller: Seller | None = None,
) -> Invoice:
    """Finalize one draft now and give it the next number; before its grace period ends only
    with `force` (late usage would then become adjustment lines on the next invoice).

    `InvoiceNotFound` for an unknown id, `InvoiceFinalized` when it is already final,
    `GraceNotOver` during the grace period without `force`.

    It freezes its parties (`seller` from settings, the account as buyer, payment terms and
    locale), its issue date (the local date of `now`) and due date: a later change of the
    account's address never changes a finalized invoice.
    """
    async with db.transaction(write=True) as session:
        invoice = await locked_invoice(session=session, invoice_id=invoice_id)
        refuse_finalized(invoice)
        if not force:
            refuse_in_grace(invoice, now)
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
    else is skipped, and so is a draft with nothing to bill (a zero total and no line with an
    amount: runs no longer write those, and the next run deletes an older one).
    """
    async with db.transaction() as session:
        query = (
            select(Invoice.id, Invoice.total)
            .where(Invoice.status == DRAFT, Invoice.grace_until <= now)
            .order_by(Invoice.period_start, Invoice.id)
        )
        rows = (await session.execute(query)).all()
        empty = await _nothing_billed(
            session=session, invoice_ids=[i for i, total in rows if total == 0]
        )
    due = [invoice_id for invoice_id, _ in rows if invoice_id not in empty]
    done = []
    for invoice_id in due:
        try:
            await finalize_invoice(db=db, invoice_id=invoice_id, now=now, seller=seller)
        except (InvoiceFinalized, InvoiceNotFound):
            continue
        done.append(invoice_id)
    return done


async def _nothing_billed(*, session: AsyncSession, invoice_ids: list[int]) -> set[int]:
    """The drafts among `invoice_ids` (zero totals) none of whose lines has an amount."""
    if not invoice_ids:
        return set()
    query = select(InvoiceLine.invoice_id, InvoiceLine.amount).where(
        InvoiceLine.invoice_id.in_(invoice_ids)
    )
    billed = {invoice_id for invoice_id, amount in await session.execute(query) if amount != 0}
    return set(invoice_ids) - billed


async def discard_invoice(*, db: Database, invoice_id: int) -> None:
    """Delete a draft with its lines and evidence; `InvoiceFinalized` for a final one."""
    async with db.transaction(write=True) as session:
        invoice = await locked_invoice(session=session, invoice_id=invoice_id)
        refuse_finalized(invoice)
        await discard_drafts(session=session, invoice_ids=[invoice_id])


async def discard_drafts(*, session: AsyncSession, invoice_ids: list[int]) -> None:
    """Delete drafts (ids the caller checked are drafts) with their lines and evidence."""
    if not invoice_ids:
        return
    await session.execute(
        delete(InvoiceEvidence).where(InvoiceEvidence.invoice_id.in_(invoice_ids))
    )
    await session.execute(delete(InvoiceLine).where(InvoiceLine.invoice_id.in_(invoice_ids)))
    await session.execute(
        delete(Invoice).where(Invoice.id.in_(invoice_ids), Invoice.status == DRAFT)
    )


async def locked_invoice(*, session: AsyncSession, invoice_id: int) -> Invoice:
    """The invoice row, locked for this transaction on PostgreSQL; `InvoiceNotFound` if none."""
    query = select(Invoice).where(Invoice.id == invoice_id).with_for_update()
    invoice = (await session.scalars(query)).one_or_none()
    if invoice is None:
        raise InvoiceNotFound(f"no invoice {invoice_id}", detail={"invoice_id": invoice_id})
    return invoice


def refuse_in_grace(invoice: Invoice, now: datetime) -> None:
    """`GraceNotOver` (409) while the draft's grace period runs (late usage may still come)."""
    if now < invoice.grace_until:
        until = invoice.grace_until.isoformat()
        raise GraceNotOver(
            f"invoice {invoice.id} is in its grace period until {until}: late usage still "
            "lands on it. Finalizing now needs force (CLI --force, API ?force=true): it gets "
            "its number now and usage arriving later is billed as adjustment lines on the next "
            "invoice",
            detail={"invoice_id": invoice.id, "grace_until": until},
        )


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
