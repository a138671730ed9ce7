"""What the invoice API accepts and answers (money as decimal strings)."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cloud.invoices.finalization import invoice_number
from cloud.invoices.models import Invoice, InvoiceLine
from cloud.invoices.parties import taxed
from cloud.invoices.service import AccountResult, RunReport
from cloud.invoices.vat import vat_totals
from cloud.quality.period_report import AccountQuality
from cloud.rating.money import round_money
from cloud.storable_text import RequestBody

PERIOD_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"


class InvoiceRunRequest(RequestBody):
    """Run one billing period, for every account or for one."""

    model_config = ConfigDict(extra="forbid")

    period: str = Field(pattern=PERIOD_PATTERN, examples=["2026-11"])
    account_id: str | None = Field(default=None, max_length=64)


class AccountResultOut(BaseModel):
    """What the run did for one account (drafted, updated, finalized, skipped, failed)."""

    account_id: str
    outcome: str
    invoice_id: int | None
    total: Decimal | None
    lines: int
    adjustments: int
    error: str | None
    error_code: str | None = None
    tax_note: str | None = Field(
        default=None, description='why no VAT is charged, e.g. "the account has no tax country"'
    )

    @classmethod
    def of(cls, result: AccountResult) -> "AccountResultOut":
        """From the service's value."""
        return cls(
            account_id=result.account_id,
            outcome=result.outcome,
            invoice_id=result.invoice_id,
            total=result.total,
            lines=result.lines,
            adjustments=result.adjustments,
            error=result.error,
            error_code=result.error_code,
            tax_note=result.tax_note,
        )


class RunFailureOut(BaseModel):
    """An account the run could not rate, and why (the error body's code, message, detail).

    `invoice_id` names a draft of an earlier run, left as it was; the next run retries.
    """

    account_id: str
    code: str
    message: str
    detail: dict[str, Any]
    invoice_id: int | None

    @classmethod
    def of(cls, result: AccountResult) -> "RunFailureOut":
        """From a failed account's result."""
        return cls(
            account_id=result.account_id,
            code=result.error_code or "invalid_billing_input",
            message=result.error or "",
            detail=result.error_detail or {"account_id": result.account_id},
            invoice_id=result.invoice_id,
        )


class RunReportOut(BaseModel):
    """The counts of an invoice run and each account's result."""

    period: str
    drafted: int
    updated: int
    unchanged_finalized: int
    skipped: int
    failed: int
    nothing_to_bill: int = Field(description="accounts given no draft: no line with an amount")
    finalized_due: list[int]
    accounts: list[AccountResultOut]
    failures: list[RunFailureOut]
    quality: dict[str, AccountQuality] = Field(
        description="per account, the period's incidents touching its billed devices"
    )

    @classmethod
    def of(cls, report: RunReport) -> "RunReportOut":
        """From the service's value."""
        return cls(
            period=report.period,
            drafted=report.drafted,
            updated=report.updated,
            unchanged_finalized=report.unchanged_finalized,
            skipped=report.skipped,
            failed=report.failed,
            nothing_to_bill=report.nothing_to_bill,
            finalized_due=report.finalized_due,
            accounts=[AccountResultOut.of(result) for result in report.accounts],
            failures=[RunFailureOut.of(result) for result in report.failures],
            quality=report.quality,
        )


class InvoiceOut(BaseModel):
    """An invoice header; `number` (e.g. "INV-000012") only once finalized."""

    id: int
    account_id: str
    period: str
    period_start: datetime
    period_end: datetime
    currency: str
    status: str
    series: str
    number: str | None
    total: Decimal = Field(description="the net total (as net_total)")
    computed_at: datetime
    grace_until: datetime
    finalized_at: datetime | None
    net_total: Decimal
    tax_total: Decimal | None = Field(description="EN 16931 VAT total; null: drafted before VAT")
    gross_total: Decimal | None = Field(description="net + VAT; null: drafted before VAT")
    issue_date: date | None = Field(description="local date of finalization; null for a draft")
    due_date: date | None = Field(description="issue date + payment terms; null for a draft")

    @classmethod
    def of(cls, invoice: Invoice) -> "InvoiceOut":
        """From the stored row."""
        return cls(
            id=invoice.id,
            account_id=invoice.account_id,
            period=invoice.period,
            period_start=invoice.period_start,
            period_end=invoice.period_end,
            currency=invoice.currency,
            status=invoice.status,
            series=invoice.series,
            number=invoice_number(invoice.series, invoice.number),
            total=round_money(invoice.total, invoice.currency),  # SQLite drops trailing zeros
            computed_at=invoice.computed_at,
            grace_until=invoice.grace_until,
            finalized_at=invoice.finalized_at,
            net_total=round_money(invoice.total, invoice.currency),
            tax_total=_money(invoice.tax_total, invoice.currency),
            gross_total=_money(invoice.gross_total, invoice.currency),
            issue_date=invoice.issue_date,
            due_date=invoice.due_date,
        )


def _money(amount: Decimal | None, currency: str) -> Decimal | None:
    return None if amount is None else round_money(amount, currency)


class VatSubtotalOut(BaseModel):
    """The VAT of one (category, rate) group (EN 16931 BG-23)."""

    category: str = Field(description="UNCL5305: S, Z, E, AE, K, G or O")
    rate: Decimal = Field(description="percent")
    taxable: Decimal
    tax: Decimal
    exemption_reason: str | None


class InvoiceLineOut(BaseModel):
    """A line; an adjustment names the invoice (`corrects_invoice_id`) and line it corrects."""

    n: int
    kind: str
    description: str
    plan_id: str | None
    plan_version: int | None
    metric: str | None
    part_start: datetime
    part_end: datetime
    quantity: Decimal | None
    billable: Decimal | None
    amount: Decimal
    detail: dict[str, Any]
    corrects_invoice_id: int | None
    corrects_line: int | None
    tax_category: str | None = Field(description="UNCL5305; null: drafted before VAT")
    tax_rate: Decimal | None = Field(description="percent; null: drafted before VAT")

    @classmethod
    def of(cls, line: InvoiceLine, *, currency: str) -> "InvoiceLineOut":
        """From the stored row; the amount shown with the currency's minor unit."""
        return cls(
            n=line.n,
            kind=line.kind,
            description=line.description,
            plan_id=line.plan_id,
            plan_version=line.plan_version,
            metric=line.metric,
            part_start=line.part_start,
            part_end=line.part_end,
            quantity=line.quantity,
            billable=line.billable,
            amount=round_money(line.amount, currency),
            detail=line.detail,
            corrects_invoice_id=line.corrects_invoice_id,
            corrects_line=line.corrects_line,
            tax_category=line.tax_category,
            tax_rate=line.tax_rate,
        )


class InvoiceDetailOut(InvoiceOut):
    """An invoice header with its lines."""

    lines: list[InvoiceLineOut]
    vat: list[VatSubtotalOut] = Field(description="the VAT breakdown per category and rate")
    credited: list[str] = Field(
        default=[], description='its credit notes\' numbers, e.g. ["INV-CN-000001"]'
    )

    @classmethod
    def with_lines(cls, invoice: Invoice, lines: list[InvoiceLine]) -> "InvoiceDetailOut":
        """From the stored rows; the breakdown recomputed from the lines (`vat_totals`)."""
        header = InvoiceOut.of(invoice).model_dump()
        totals = vat_totals(
            [taxed(line.amount, line.tax_category, line.tax_rate) for line in lines],
            invoice.currency,
        )
        return cls(
            **header,
            lines=[InvoiceLineOut.of(line, currency=invoice.currency) for line in lines],
            vat=[
                VatSubtotalOut(
                    category=sub.category,
                    rate=sub.rate,
                    taxable=sub.taxable,
                    tax=sub.tax,
                    exemption_reason=sub.exemption_reason,
                )
                for sub in totals.subtotals
            ],
        )
