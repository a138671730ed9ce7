"""What the invoice pages show, read through the invoice services that own it.

The list is `list_invoices` (GET /v1/invoices); an invoice is its export document
(`invoice_document`) with each line explained by the sentences of the printable page
(`cloud.invoices.html`: `line_title`, `line_sentence`, `unit_price`); a line's evidence is
`line_evidence`, and its verified mark is `check_invoice` over the invoice's export document and
every line's evidence, read as `tollgate-cloud verify-invoice ID --db URL` reads them
(`cloud.invoices.evidence_cli.load_documents`).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from cloud.errors import InvoiceLineNotFound
from cloud.invoices.evidence import line_evidence
from cloud.invoices.exports import invoice_document
from cloud.invoices.html import Formats, line_sentence, line_title, local_day, unit_price
from cloud.invoices.models import Invoice
from cloud.invoices.service import list_invoices
from cloud.invoices.verify import Check, check_invoice
from cloud.rating.money import add_amounts, round_money
from cloud.seller import Seller

MAX_LISTED = 500  # invoices shown on one list page; the filters narrow it
MAX_SHOWN_ITEMS = 200  # sessions, events or batches shown of one line's evidence


@dataclass(frozen=True, slots=True)
class InvoiceList:
    """The invoices of the filters (at most MAX_LISTED shown) and their totals per currency."""

    invoices: list[Invoice]
    count: int  # how many match
    totals: dict[str, Decimal]  # currency -> sum of the matching invoices' net totals


async def read_list(
    *, session: AsyncSession, period: str | None, status: str | None
) -> InvoiceList:
    """The invoices of `period` and `status` (None: any), newest period first."""
    rows = await list_invoices(session=session, period=period, status=status)
    by_currency: dict[str, list[Decimal]] = {}
    for invoice in rows:
        by_currency.setdefault(invoice.currency, []).append(invoice.total)
    totals = {
        currency: round_money(add_amounts(amounts), currency)
        for currency, amounts in sorted(by_currency.items())
    }
    return InvoiceList(invoices=rows[:MAX_LISTED], count=len(rows), totals=totals)


def money(amount: Decimal | str | None, currency: str) -> str:
    """An amount with the currency's decimals ("12.50"), or "-" when there is none."""
    return "-" if amount is None else str(round_money(Decimal(str(amount)), currency))


@dataclass(frozen=True, slots=True)
class LineView:
    """One invoice line as the page shows it, explained as the printable page explains it."""

    n: int
    kind: str
    title: str
    sentence: str
    part_start: str
    part_end: str
    days: str  # the part as local days, as the printable page names it: "1 Nov 2026 to 30 Nov 2026"
    quantity: str | None
    billable: str | None
    unit: str | None
    unit_price: str
    amount: str
    corrects: str | None  # "invoice 7 line 2" for an adjustment


@dataclass(frozen=True, slots=True)
class InvoiceView:
    """An invoice's export document and its lines explained."""

    document: dict[str, Any]
    lines: list[LineView]
    days: str  # the period as local days

    @property
    def number(self) -> str:
        """The printed number, or DRAFT."""
        return str(self.document["printed_number"] or "DRAFT")

    @property
    def totals(self) -> dict[str, str]:
        """net, tax and gross as stored (the tax and gross of a draft from before VAT:
        recomputed from the lines, as the document's `totals`)."""
        document = self.document
        computed = document["totals"]
        return {
            "net": str(document["total"]),
            "tax": str(document["tax_total"] or computed["tax"]),
            "gross": str(document["gross_total"] or computed["gross"]),
        }


async def read_invoice(
    *, session: AsyncSession, invoice_id: int, seller: Seller | None
) -> InvoiceView:
    """The invoice and its explained lines; `InvoiceNotFound`."""
    document = await invoice_document(session=session, invoice_id=invoice_id, seller=seller)
    fmt = Formats.of(document)
    zone = ZoneInfo(str(document["time_zone"]))
    lines = [_line(line, fmt, zone) for line in document["lines"]]
    return InvoiceView(document=document, lines=lines, days=_days(document, fmt, zone))


def _days(part: Mapping[str, Any], fmt: Formats, zone: ZoneInfo) -> str:
    """A period or a line's part as its first and last local day."""
    first = local_day(str(part.get("part_start", part.get("period_start"))), zone)
    last = local_day(str(part.get("part_end", part.get("period_end"))), zone, before=True)
    return f"{fmt.day(first)} to {fmt.day(last)}"


def _line(line: Mapping[str, Any], fmt: Formats, zone: ZoneInfo) -> LineView:
    corrects = None
    if line.get("corrects_invoice_id") is not None:
        corrects = f"invoice {line['corrects_invoice_id']} line {line.get('corrects_line')}"
    return LineView(
        n=int(line["n"]),
        kind=str(line["kind"]),
        title=line_title(line),
        sentence=line_sentence(line, fmt),
        part_start=str(line["part_start"]),
        part_end=str(line["part_end"]),
        days=_days(line, fmt, zone),
        quantity=line.get("quantity"),
        billable=line.get("billable"),
        unit=line.get("unit"),
        unit_price=unit_price(line, fmt),
        amount=str(line["amount"]),
        corrects=corrects,
    )


@dataclass(frozen=True, slots=True)
class EvidenceView:
    """A line's evidence and the checks of `verify-invoice` that concern it."""

    invoice: dict[str, Any]
    line: LineView
    evidence: dict[str, Any]
    checks: list[Check]  # the invoice's own checks, then this line's
    other_failures: dict[int, int]  # another line -> its failed checks

    @property
    def verified(self) -> bool:
        """Whether every check of the invoice and of this line passes."""
        return all(check.ok for check in self.checks)

    @property
    def failed(self) -> list[Check]:
        """The failed checks among `checks`."""
        return [check for check in self.checks if not check.ok]

    def batch_ok(self, batch: Mapping[str, Any]) -> bool:
        """Whether the batch's chain and signature checks pass (`verify-invoice` names them)."""
        name = f"batch {batch.get('gateway_id')} {batch.get('first_seq')}..{batch.get('last_seq')}:"
        return all(check.ok for check in self.checks if check.what.startswith(name))

    def shown(self, key: str) -> list[Mapping[str, Any]]:
        """The first MAX_SHOWN_ITEMS sessions, events or batches of the evidence."""
        items: Sequence[Mapping[str, Any]] = self.evidence.get(key, [])
        return list(items[:MAX_SHOWN_ITEMS])

    def count(self, key: str) -> int:
        """How many sessions, events or batches the evidence holds."""
        return len(self.evidence.get(key, []))


async def read_evidence(*, session: AsyncSession, invoice_id: int, n: int) -> EvidenceView:
    """Line `n`'s evidence, verified from the documents `verify-invoice --db` reads;
    `InvoiceNotFound`, `InvoiceLineNotFound`."""
    invoice = await invoice_document(session=session, invoice_id=invoice_id)
    numbers = [int(line["n"]) for line in invoice["lines"]]
    if n not in numbers:
        raise InvoiceLineNotFound(
            f"invoice {invoice_id} has no line {n}", detail={"invoice_id": invoice_id, "n": n}
        )
    evidence = [
        await line_evidence(session=session, invoice_id=invoice_id, n=number) for number in numbers
    ]
    checks = check_invoice(invoice, evidence)
    others: dict[int, int] = {}
    for check in checks:
        if check.line not in (None, n) and not check.ok:
            others[check.line] = others.get(check.line, 0) + 1
    line = invoice["lines"][numbers.index(n)]
    return EvidenceView(
        invoice=invoice,
        line=_line(line, Formats.of(invoice), ZoneInfo(str(invoice["time_zone"]))),
        evidence=evidence[numbers.index(n)],
        checks=[check for check in checks if check.line in (None, n)],
        other_failures=dict(sorted(others.items())),
    )
