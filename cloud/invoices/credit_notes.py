"""Credit notes: crediting a finalized invoice, wholly or by line, in a gap-free series of its own.

    issue_credit_note(invoice_id=7, lines=[2], reason="meter fault")   # or lines=None: all of it

A credit note is issued final, in one write transaction: the invoice row is locked
(`locked_invoice`: `SELECT ... FOR UPDATE` on PostgreSQL, the database write lock on SQLite), the
lines already credited are read under that lock, and the number is taken from the series row
(locked too), so two credits of one line cannot both succeed and numbers follow commit order with
no gap. Its series is the invoice series with "-CN" ("INV" -> "INV-CN", printed
"INV-CN-000001"); the counter lives in `credit_note_series`, beside `invoice_series`.

Whole lines only: each credit-note line copies one invoice line's net amount, tax category and
rate; a line is credited at most once (a unique index says so too), a zero line is never credited
and a credit note's net total must be positive (crediting only a negative adjustment line would
charge the customer: refused). Totals follow EN 16931 (`vat_totals`). Every refusal is raised
before anything is written. A line's evidence is the credited invoice line's evidence.

Adjustments (`cloud.invoices.adjustments`) stay the default for late usage, but a run never
corrects an invoice line that was credited, nor a line one of whose corrections was credited:
`without_credited` drops those corrections (the credit note settled the line).
"""

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.choices import MAX_REASON as MAX_REASON  # defined there for the CLI's help (issue 18)
from cloud.db import Database
from cloud.errors import (
    CreditNoteNotFound,
    InvalidCredit,
    InvalidParameters,
    InvoiceNotFinalized,
    LineAlreadyCredited,
)
from cloud.invoices.credit_note_models import CreditNote, CreditNoteLine, CreditNoteSeries
from cloud.invoices.finalization import FINALIZED, invoice_number, locked_invoice
from cloud.invoices.lines import DraftLine
from cloud.invoices.models import Invoice, InvoiceLine
from cloud.invoices.vat import TaxedAmount, VatTotals, vat_totals
from cloud.rating.money import round_money
from cloud.webhooks.outbox import emit_async
from cloud.webhooks.types import EventType

MAX_LINES = 1000  # line numbers in one request
MAX_PAGE = 1000
MAX_CURSOR = 2**63 - 1
SERIES_SUFFIX = "-CN"
TYPE_CODE = "381"  # UNTDID 1001: credit note


@dataclass(frozen=True, slots=True)
class IssuedNote:
    """A credit note with its lines (in order) and the printed number of what it credits."""

    note: CreditNote
    lines: list[CreditNoteLine]
    invoice_number: str

    @property
    def printed_number(self) -> str:
        """ "INV-CN-000001"."""
        return credit_note_number(self.note.series, self.note.number)


@dataclass(frozen=True, slots=True)
class NotePage:
    """One page of credit notes, newest first; `next_cursor` fetches the next (None: the last)."""

    notes: list[IssuedNote]
    next_cursor: str | None


def credit_note_number(series: str, number: int) -> str:
    """The printed number, e.g. "INV-CN-000003"."""
    return f"{series}-{number:06d}"


def credit_series(invoice_series: str) -> str:
    """The credit-note series of an invoice series: "INV" -> "INV-CN"."""
    return f"{invoice_series}{SERIES_SUFFIX}"


def check_reason(reason: str) -> str:
    """The reason, stripped; `InvalidCredit` when empty or longer than `MAX_REASON`."""
    text = reason.strip()
    if not text or len(text) > MAX_REASON:
        raise InvalidCredit(
            f"a credit note needs a reason of 1 to {MAX_REASON} characters",
            detail={"length": len(text), "max_length": MAX_REASON},
        )
    return text


def check_line_numbers(lines: Sequence[int] | None) -> list[int] | None:
    """The asked line numbers in order (None: the whole invoice); `InvalidCredit` for an empty,
    too long or repeating list, or a number below 1."""
    if lines is None:
        return None
    if not 1 <= len(lines) <= MAX_LINES:
        raise InvalidCredit(
            f"lines: 1 to {MAX_LINES} line numbers, or null for the whole invoice",
            detail={"count": len(lines), "max_count": MAX_LINES},
        )
    repeated = sorted(n for n, times in Counter(lines).items() if times > 1)
    if repeated or any(n < 1 for n in lines):
        raise InvalidCredit(
            "lines: each line number once, counting from 1",
            detail={"repeated": repeated, "below_one": sorted(n for n in lines if n < 1)},
        )
    return sorted(lines)


async def issue_credit_note(
    *, db: Database, invoice_id: int, lines: Sequence[int] | None, reason: str, now: datetime
) -> IssuedNote:
    """Credit the finalized invoice wholly (`lines` None) or the lines named; see the module doc.

    `InvoiceNotFound`, `InvoiceNotFinalized` (a draft), `InvalidCredit` (an unknown or zero line,
    a total not above zero, a bad reason), `LineAlreadyCredited`; nothing is written on any.
    """
    text = check_reason(reason)
    wanted = check_line_numbers(lines)
    async with db.transaction(write=True) as session:
        invoice = await locked_invoice(session=session, invoice_id=invoice_id)
        printed = _refuse_draft(invoice)
        stored = await _invoice_lines(session=session, invoice_id=invoice_id)
        credited = (await credited_lines(session=session, invoice_ids=[invoice_id])).get(
            invoice_id, {}
        )
        chosen = _choose(invoice, stored, wanted, credited)
        taxed = [_taxed(line, invoice.currency) for line in chosen]
        totals = vat_totals(taxed, invoice.currency)
        if totals.net <= 0:
            raise InvalidCredit(
                f"a credit note's net total must be above zero (these lines give {totals.net})",
                detail={"invoice_id": invoice_id, "lines": [line.n for line in chosen]},
            )
        series = credit_series(invoice.series)
        note = CreditNote(
            invoice_id=invoice.id,
            account_id=invoice.account_id,
            series=series,
            number=await take_credit_number(session=session, series=series),
            currency=invoice.currency,
            reason=text,
            whole=wanted is None,
            net=totals.net,
            tax=totals.tax,
            gross=totals.gross,
            issued_at=now,
        )
        session.add(note)
        await session.flush()
        rows = [
            CreditNoteLine(
                credit_note_id=note.id,
                n=n,
                invoice_id=invoice.id,
                invoice_line=line.n,
                description=line.description,
                amount=amount.net,
                tax_category=amount.category,
                tax_rate=amount.rate,
            )
            for n, (line, amount) in enumerate(zip(chosen, taxed, strict=True), start=1)
        ]
        session.add_all(rows)
        await session.flush()
        issued = IssuedNote(note, rows, printed)
        await _emit_issued(session=session, issued=issued)
        return issued


def _refuse_draft(invoice: Invoice) -> str:
    """The invoice's printed number; `InvoiceNotFinalized` for a draft."""
    printed = invoice_number(invoice.series, invoice.number)
    if invoice.status != FINALIZED or printed is None:
        raise InvoiceNotFinalized(
            f"invoice {invoice.id} is a draft: only a finalized invoice can be credited "
            "(a draft is corrected by running its period again)",
            detail={"invoice_id": invoice.id, "status": invoice.status},
        )
    return printed


def _choose(
    invoice: Invoice,
    stored: Sequence[InvoiceLine],
    wanted: list[int] | None,
    credited: Mapping[int, str],
) -> list[InvoiceLine]:
    """The invoice lines to credit; raises for an unknown, zero or already credited one."""
    by_n = {line.n: line for line in stored}
    if wanted is None:
        open_lines = [line for line in stored if line.amount != 0 and line.n not in credited]
        if open_lines:
            return open_lines
        if any(line.amount != 0 for line in stored):
            _refuse_credited(invoice, sorted(credited), credited)
        raise InvalidCredit(
            f"invoice {invoice.id} has no line with an amount to credit",
            detail={"invoice_id": invoice.id},
        )
    unknown = [n for n in wanted if n not in by_n]
    if unknown:
        raise InvalidCredit(
            f"invoice {invoice.id} has no line {', '.join(map(str, unknown))} "
            f"(it has lines 1 to {len(stored)})",
            detail={"invoice_id": invoice.id, "unknown_lines": unknown, "lines": len(stored)},
        )
    zero = [n for n in wanted if by_n[n].amount == 0]
    if zero:
        raise InvalidCredit(
            f"invoice {invoice.id} line {', '.join(map(str, zero))}: a zero amount is not credited",
            detail={"invoice_id": invoice.id, "zero_lines": zero},
        )
    twice = [n for n in wanted if n in credited]
    if twice:
        _refuse_credited(invoice, twice, credited)
    return [by_n[n] for n in wanted]


def _refuse_credited(invoice: Invoice, lines: list[int], credited: Mapping[int, str]) -> None:
    notes = {str(n): credited[n] for n in lines}
    listed = ", ".join(f"line {n} by {credited[n]}" for n in lines)
    raise LineAlreadyCredited(
        f"invoice {invoice.id}: already credited ({listed}); a line is credited once, whole",
        detail={"invoice_id": invoice.id, "lines": lines, "credit_notes": notes},
    )


def _taxed(line: InvoiceLine, currency: str) -> TaxedAmount:
    """The line's net amount (rounded to the minor unit), tax category and rate, as invoiced."""
    category, rate = line_tax(line)
    return TaxedAmount(net=round_money(line.amount, currency), category=category, rate=rate)


def line_tax(line: InvoiceLine) -> tuple[str, Decimal]:
    """An invoice line's (tax category, rate in percent); "O" at 0 for lines with neither."""
    category: str | None = getattr(line, "tax_category", None)
    rate: Decimal | None = getattr(line, "tax_rate", None)
    if category is None or rate is None:
        return "O", Decimal(0)
    return category, Decimal(rate)


async def _invoice_lines(*, session: AsyncSession, invoice_id: int) -> list[InvoiceLine]:
    query = select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id).order_by(InvoiceLine.n)
    return list(await session.scalars(query))


async def take_credit_number(*, session: AsyncSession, series: str) -> int:
    """The credit-note series' next number, counted up in this transaction (the row created if
    missing; locked on PostgreSQL), like `finalization.take_number` for invoices."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(CreditNoteSeries).values(series=series, next_number=1).on_conflict_do_nothing()
    )
    query = select(CreditNoteSeries.next_number).where(CreditNoteSeries.series == series)
    number = (await session.execute(query.with_for_update())).scalar_one()
    await session.execute(
        update(CreditNoteSeries)
        .where(CreditNoteSeries.series == series)
        .values(next_number=number + 1)
    )
    return number


async def credited_lines(
    *, session: AsyncSession, invoice_ids: Sequence[int]
) -> dict[int, dict[int, str]]:
    """invoice id -> its credited line numbers -> the printed number of the crediting note."""
    if not invoice_ids:
        return {}
    query = (
        select(CreditNoteLine.invoice_id, CreditNoteLine.invoice_line, CreditNote.series)
        .add_columns(CreditNote.number)
        .join(CreditNote, CreditNote.id == CreditNoteLine.credit_note_id)
        .where(CreditNoteLine.invoice_id.in_(invoice_ids))
    )
    result: dict[int, dict[int, str]] = defaultdict(dict)
    for invoice_id, line, series, number in await session.execute(query):
        result[invoice_id][line] = credit_note_number(series, number)
    return dict(result)


async def credited_by(*, session: AsyncSession, invoice_id: int) -> list[str]:
    """The printed numbers of the credit notes of an invoice, oldest first."""
    query = (
        select(CreditNote.series, CreditNote.number)
        .where(CreditNote.invoice_id == invoice_id)
        .order_by(CreditNote.id)
    )
    return [credit_note_number(s, n) for s, n in await session.execute(query)]


async def without_credited(
    *, session: AsyncSession, corrections: Mapping[str, list[DraftLine]]
) -> dict[str, list[DraftLine]]:
    """`corrections` (account -> adjustment lines) minus those of credited invoice lines.

    An invoice line is settled by its credit note: it is not corrected again, nor is a line one
    of whose earlier corrections (an adjustment line on a later invoice) was credited.
    """
    targets = {
        line.corrects_invoice_id
        for lines in corrections.values()
        for line in lines
        if line.corrects_invoice_id is not None and line.corrects_line is not None
    }
    if not targets:
        return dict(corrections)
    settled = await _settled_lines(session=session, invoice_ids=sorted(targets))
    return {
        account_id: [
            line for line in lines if (line.corrects_invoice_id, line.corrects_line) not in settled
        ]
        for account_id, lines in corrections.items()
    }


async def _settled_lines(
    *, session: AsyncSession, invoice_ids: list[int]
) -> set[tuple[int | None, int | None]]:
    """(invoice id, line) of `invoice_ids` credited themselves or through a credited correction."""
    direct = select(CreditNoteLine.invoice_id, CreditNoteLine.invoice_line).where(
        CreditNoteLine.invoice_id.in_(invoice_ids)
    )
    through = (
        select(InvoiceLine.corrects_invoice_id, InvoiceLine.corrects_line)
        .join(
            CreditNoteLine,
            (CreditNoteLine.invoice_id == InvoiceLine.invoice_id)
            & (CreditNoteLine.invoice_line == InvoiceLine.n),
        )
        .where(InvoiceLine.corrects_invoice_id.in_(invoice_ids))
    )
    settled: set[tuple[int | None, int | None]] = set()
    for query in (direct, through):
        settled.update((row[0], row[1]) for row in await session.execute(query))
    return settled


async def get_credit_note(*, session: AsyncSession, credit_note_id: int) -> IssuedNote:
    """A credit note with its lines; `CreditNoteNotFound` otherwise."""
    note = await session.get(CreditNote, credit_note_id)
    if note is None:
        raise CreditNoteNotFound(
            f"no credit note {credit_note_id}", detail={"credit_note_id": credit_note_id}
        )
    return (await _with_lines(session=session, notes=[note]))[0]


async def list_credit_notes(
    *,
    session: AsyncSession,
    account_id: str | None = None,
    invoice_id: int | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> NotePage:
    """One page of credit notes, newest first (keyset by id), filtered by account and invoice."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidParameters(
            f"limit: 1 to {MAX_PAGE}", detail={"limit": limit, "max_limit": MAX_PAGE}
        )
    query = select(CreditNote).order_by(CreditNote.id.desc())
    if account_id is not None:
        query = query.where(CreditNote.account_id == account_id)
    if invoice_id is not None:
        query = query.where(CreditNote.invoice_id == invoice_id)
    if cursor is not None:
        query = query.where(CreditNote.id < parse_cursor(cursor))
    rows = list(await session.scalars(query.limit(limit + 1)))
    page = rows[:limit]
    more = len(rows) > limit
    return NotePage(
        notes=await _with_lines(session=session, notes=page),
        next_cursor=str(page[-1].id) if more else None,
    )


def parse_cursor(text: str) -> int:
    """A `next_cursor` given back; `InvalidParameters` if it is not one."""
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_CURSOR:
        raise InvalidParameters(
            "cursor is not a value returned as next_cursor",
            detail={"errors": [{"loc": ["query", "cursor"], "msg": "invalid cursor"}]},
        )
    return int(text)


async def _with_lines(*, session: AsyncSession, notes: list[CreditNote]) -> list[IssuedNote]:
    if not notes:
        return []
    ids = [note.id for note in notes]
    query = (
        select(CreditNoteLine)
        .where(CreditNoteLine.credit_note_id.in_(ids))
        .order_by(CreditNoteLine.credit_note_id, CreditNoteLine.n)
    )
    lines: dict[int, list[CreditNoteLine]] = defaultdict(list)
    for line in await session.scalars(query):
        lines[line.credit_note_id].append(line)
    invoices = {
        invoice_id: invoice_number(series, number) or ""
        for invoice_id, series, number in await session.execute(
            select(Invoice.id, Invoice.series, Invoice.number).where(
                Invoice.id.in_({note.invoice_id for note in notes})
            )
        )
    }
    return [IssuedNote(note, lines[note.id], invoices[note.invoice_id]) for note in notes]


def note_totals(issued: IssuedNote) -> VatTotals:
    """The credit note's EN 16931 totals, recomputed from its lines (what it stored)."""
    amounts = [
        TaxedAmount(net=line.amount, category=line.tax_category, rate=Decimal(line.tax_rate))
        for line in issued.lines
    ]
    return vat_totals(amounts, issued.note.currency)


def evidence_path(invoice_id: int, line: int) -> str:
    """Where a credit-note line's evidence is: the credited invoice line's evidence route."""
    return f"/v1/invoices/{invoice_id}/lines/{line}/evidence"


def local_date(moment: datetime, time_zone: str) -> str:
    """The ISO date of `moment` in `time_zone` (a credit note's issue date)."""
    return moment.astimezone(ZoneInfo(time_zone)).date().isoformat()


async def _emit_issued(*, session: AsyncSession, issued: IssuedNote) -> None:
    """`credit_note.issued` in the issuing transaction."""
    note = issued.note
    data: dict[str, Any] = {
        "credit_note_id": note.id,
        "number": issued.printed_number,
        "account_id": note.account_id,
        "invoice_id": note.invoice_id,
        "invoice_number": issued.invoice_number,
        "lines": [line.invoice_line for line in issued.lines],
        "net": str(round_money(note.net, note.currency)),
        "tax": str(round_money(note.tax, note.currency)),
        "gross": str(round_money(note.gross, note.currency)),
        "currency": note.currency,
        "reason": note.reason,
        "issued_at": note.issued_at.isoformat(),
    }
    await emit_async(session, EventType.CREDIT_NOTE_ISSUED, data)
