"""Invoice exports: the invoice as one JSON document, CSV rows (one per line), an HTML page, a
PDF/A-3 file, a Factur-X e-invoice (PDF with its CII XML) and the CII XML alone.

`invoice_document` reads an invoice with its account and lines; everything after it is pure and
works on that document. Decimals are strings (exact), times ISO 8601 in UTC, and the document
names the account's time zone so a reader can show local dates.

An invoice shows only what it froze when it was rated: its lines, and for the page's charts the
session pieces and events its evidence rows name (sessions and events are never changed or
deleted) with the catalog it froze, never today's sessions or late events.
"""

import csv
import io
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog.combined_rules import rule_from_document
from cloud.catalog.metrics import metric_spec
from cloud.catalog.models import Account, Metric
from cloud.choices import (
    ExportFormat as ExportFormat,  # defined there for the CLI's help (issue 18)
)
from cloud.domain import Aggregation, DurationUnit, LineKind, MetricField, MetricSource, MetricSpec
from cloud.errors import InvalidParameters, InvoiceNotFound
from cloud.invoices.combined_evidence import combined_evidence
from cloud.invoices.finalization import invoice_number
from cloud.invoices.frozen_usage import FrozenUsage, frozen_line_usage
from cloud.invoices.html import PageLinks, invoice_html
from cloud.invoices.models import Invoice, InvoiceLine
from cloud.invoices.parties import document_tax, header_parties, line_tax_document
from cloud.rating.combine import CombinedRule
from cloud.rating.money import round_money
from cloud.rating.periods import day_buckets
from cloud.rating.rating import AccountUsage
from cloud.seller import Seller
from cloud.usage.buckets import UsagePoint, measure_buckets

CSV_COLUMNS = (
    "invoice_number",
    "account",
    "period",
    "line",
    "kind",
    "description",
    "metric",
    "quantity",
    "billable",
    "amount",
    "currency",
    "part_start",
    "part_end",
    "corrects",
)


MEDIA_TYPES = {
    ExportFormat.JSON: "application/json",
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.HTML: "text/html; charset=utf-8",
    ExportFormat.PDF: "application/pdf",
    ExportFormat.FACTURX: "application/pdf",  # PDF/A-3 with factur-x.xml inside
    ExportFormat.CII: "application/xml",
}
FILE_SUFFIXES = {
    ExportFormat.JSON: ".json",
    ExportFormat.CSV: ".csv",
    ExportFormat.HTML: ".html",
    ExportFormat.PDF: ".pdf",
    ExportFormat.FACTURX: ".pdf",
    ExportFormat.CII: ".xml",
}
# The metric's unit as a line shows it: durations by duration_unit, counts by what they count.
DURATION_UNITS = {DurationUnit.SECOND: "s", DurationUnit.MINUTE: "min", DurationUnit.HOUR: "h"}


def check_format(name: str) -> ExportFormat:
    """`json`, `csv`, `html`, `pdf`, `facturx` or `cii`; `InvalidParameters` otherwise."""
    try:
        return ExportFormat(name)
    except ValueError:
        raise InvalidParameters(
            f"format {name!r}: one of {', '.join(ExportFormat)}", detail={"format": name}
        ) from None


async def export_invoice(
    *,
    session: AsyncSession,
    invoice_id: int,
    export_format: str,
    as_of: datetime | None = None,
    links: PageLinks | None = None,
    seller: Seller | None = None,
) -> tuple[bytes, str]:
    """The invoice in `export_format` and its media type; `InvoiceNotFound`, `InvalidParameters`,
    `EInvoiceNotReady` (facturx, cii: a draft, or no seller details).

    `as_of` is not used (an invoice shows what it froze); it is accepted for older callers.
    `links` default to relative ones for a served page and to a standalone file's (no dead
    links) for a PDF. `seller` (settings) is shown on a draft (`invoice_document`).
    """
    del as_of
    chosen = check_format(export_format)
    document = await invoice_document(session=session, invoice_id=invoice_id, seller=seller)
    if chosen is ExportFormat.JSON:
        body = invoice_json(document)
    elif chosen is ExportFormat.CSV:
        body = invoice_csv(document).encode("utf-8")
    elif chosen is ExportFormat.CII:
        from cloud.invoices.facturx import invoice_cii  # lxml + drafthorse: only when asked

        body = invoice_cii(document)
    else:
        body = await render_document(session=session, document=document, chosen=chosen, links=links)
    return body, MEDIA_TYPES[chosen]


async def render_document(
    *,
    session: AsyncSession,
    document: dict[str, Any],
    chosen: ExportFormat,
    links: PageLinks | None,
) -> bytes:
    """The HTML page, the PDF or the Factur-X PDF of a document (with its usage charts).

    The renderers are imported here: WeasyPrint (Pango) and drafthorse cost about a second to
    import, which no other route and no other command should pay.
    """
    from cloud.invoices.facturx import facturx_pdf, invoice_cii
    from cloud.invoices.pdf import invoice_pdf

    if chosen is ExportFormat.FACTURX:
        invoice_cii(document)  # refuse a draft before the expensive rendering
    charts = await daily_usage(session=session, document=document)
    if chosen is ExportFormat.HTML:
        return invoice_html(document, charts=charts, links=links).encode("utf-8")
    pdf = invoice_pdf(document, charts=charts, links=links or PageLinks(standalone=True))
    return pdf if chosen is ExportFormat.PDF else facturx_pdf(document, pdf)


async def daily_usage(
    *, session: AsyncSession, document: dict[str, Any]
) -> dict[int, list[UsagePoint]]:
    """Each usage line's metric per local day of its part, measured over what the line was
    rated from (its evidence), so the days add up to the line (for the page's charts)."""
    wanted = [
        line for line in _lines(document) if line["kind"] == LineKind.USAGE and line["metric"]
    ]
    if not wanted:
        return {}
    frozen = await frozen_line_usage(session=session, invoice_id=int(document["id"]))
    metrics = {
        row.id: metric_spec(row)
        for row in await session.scalars(
            select(Metric).where(Metric.id.in_({line["metric"] for line in wanted}))
        )
    }
    charts = {}
    for line in wanted:
        n = int(line["n"])
        spec = metrics.get(line["metric"])
        if spec is None:
            continue
        usage = frozen.get(n, FrozenUsage([], [], {}))
        buckets = day_buckets(
            datetime.fromisoformat(line["part_start"]),
            datetime.fromisoformat(line["part_end"]),
            str(document["time_zone"]),
        )
        combined, site_of = await _frozen_combined(
            session=session, invoice_id=int(document["id"]), spec=spec, usage=usage
        )
        account_usage = AccountUsage(
            usage.pieces, usage.events, usage.profile_of, combined=combined, site_of=site_of
        )
        charts[n] = measure_buckets(spec, account_usage, buckets)
    return charts


async def _frozen_combined(
    *, session: AsyncSession, invoice_id: int, spec: MetricSpec, usage: FrozenUsage
) -> tuple[dict[str, CombinedRule], dict[str, str | None]]:
    """The combined rule a line's metric names and its member devices' sites, as the invoice
    froze them (the evidence's own reading), so a combined line's chart measures the combined
    sessions the line was rated from; ({}, {}) for any other line."""
    metric = {"source": spec.source.value, "profiles": sorted(spec.profiles)}
    devices = {piece.device_id for piece in usage.pieces}
    found = await combined_evidence(
        session=session, invoice_id=invoice_id, metric=metric, device_ids=devices
    )
    if not found:
        return {}, {}
    rule = found["combined_rule"]
    return {rule["id"]: rule_from_document(**rule)}, dict(found["device_sites"])


async def invoice_document(
    *, session: AsyncSession, invoice_id: int, seller: Seller | None = None
) -> dict[str, Any]:
    """The invoice with its account and every line as a JSON-ready document; `InvoiceNotFound`.
    `seller` (settings) is shown on a draft; a finalized invoice shows the one it froze."""
    invoice = await session.get(Invoice, invoice_id)
    if invoice is None:
        raise InvoiceNotFound(f"no invoice {invoice_id}", detail={"invoice_id": invoice_id})
    account = await session.get(Account, invoice.account_id)
    assert account is not None  # a foreign key
    lines = list(
        await session.scalars(
            select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id).order_by(InvoiceLine.n)
        )
    )
    units = await metric_units(session=session, metric_ids={line.metric for line in lines})
    return {
        **invoice_header(invoice, account, lines=lines, seller=seller),
        "lines": [
            line_document(line, currency=invoice.currency, unit=units.get(line.metric))
            for line in lines
        ],
    }


async def metric_units(
    *, session: AsyncSession, metric_ids: set[str | None]
) -> dict[str | None, str | None]:
    """Each metric's unit (`metric_unit`), by metric id."""
    wanted = {metric for metric in metric_ids if metric is not None}
    if not wanted:
        return {}
    rows = await session.scalars(select(Metric).where(Metric.id.in_(wanted)))
    return {row.id: metric_unit(metric_spec(row)) for row in rows}


def metric_unit(spec: MetricSpec) -> str | None:
    """What a metric's quantity counts: `h`/`min`/`s` for durations, `sessions`, `devices`,
    the events' unit for a sum, max or latest (None when the metric names none), and for a
    count of events their unit when the metric names one (`openings`), else `events`."""
    if spec.field is MetricField.DURATION:
        return DURATION_UNITS[spec.duration_unit]
    if spec.aggregation is Aggregation.UNIQUE_COUNT:
        return "devices"
    if spec.aggregation is Aggregation.COUNT:
        if spec.source is MetricSource.SESSIONS:
            return "sessions"
        return spec.unit if spec.unit and spec.unit != "count" else "events"
    return spec.unit


def invoice_header(
    invoice: Invoice,
    account: Account,
    *,
    lines: Sequence[InvoiceLine] = (),
    seller: Seller | None = None,
) -> dict[str, Any]:
    """An invoice's own fields and its account, JSON-ready; with its parties, dates and locale
    (`cloud.invoices.parties.header_parties`) and the VAT breakdown and totals of `lines`."""
    parties = header_parties(invoice, account, seller)
    return {
        "id": invoice.id,
        "series": invoice.series,
        "number": invoice.number,
        "printed_number": invoice_number(invoice.series, invoice.number),
        "status": invoice.status,
        "account_id": invoice.account_id,
        "account": {
            "id": account.id,
            "name": account.name,
            "kind": account.kind,
            "time_zone": account.time_zone,
        },
        "time_zone": account.time_zone,
        "period": invoice.period,
        "period_start": format_utc(invoice.period_start),
        "period_end": format_utc(invoice.period_end),
        "currency": invoice.currency,
        "total": money_text(invoice.total, invoice.currency),
        # the stored VAT totals (null: drafted before VAT); `totals` recomputes them from the
        # lines and verify-invoice checks that both agree
        "tax_total": _stored_money(invoice.tax_total, invoice.currency),
        "gross_total": _stored_money(invoice.gross_total, invoice.currency),
        "computed_at": format_utc(invoice.computed_at),
        "as_of": format_utc(invoice.as_of or invoice.computed_at),
        "grace_until": format_utc(invoice.grace_until),
        "finalized_at": format_utc(invoice.finalized_at),
        **parties,
        **document_tax(invoice, lines, parties["buyer"]),
    }


def line_document(line: InvoiceLine, *, currency: str, unit: str | None = None) -> dict[str, Any]:
    """Every field of an invoice line, JSON-ready (the amount with the currency's decimals);
    `unit` is what quantity and billable count (`metric_unit` of the line's metric)."""
    return {
        "n": line.n,
        "kind": line.kind,
        "description": line.description,
        "plan_id": line.plan_id,
        "plan_version": line.plan_version,
        "metric": line.metric,
        "part_start": format_utc(line.part_start),
        "part_end": format_utc(line.part_end),
        "quantity": decimal_text(line.quantity),
        "billable": decimal_text(line.billable),
        "unit": unit,
        "amount": money_text(line.amount, currency),
        "detail": line.detail,
        "corrects_invoice_id": line.corrects_invoice_id,
        "corrects_line": line.corrects_line,
        **line_tax_document(line),
    }


def invoice_json(document: dict[str, Any]) -> bytes:
    """The invoice document as indented UTF-8 JSON."""
    return orjson.dumps(document, option=orjson.OPT_INDENT_2)


def invoice_csv(document: dict[str, Any]) -> str:
    """The invoice lines as RFC 4180 CSV (CRLF line ends, a header row, one row per line)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_rows(document))
    return out.getvalue()


def csv_rows(document: dict[str, Any]) -> list[list[str]]:
    """One CSV row per line, in `CSV_COLUMNS` order; empty cells for missing values."""
    printed = document["printed_number"] or ""
    return [
        [
            printed,
            document["account_id"],
            document["period"],
            str(line["n"]),
            line["kind"],
            line["description"],
            line["metric"] or "",
            line["quantity"] or "",
            line["billable"] or "",
            line["amount"],
            document["currency"],
            line["part_start"],
            line["part_end"],
            corrects_text(line),
        ]
        for line in _lines(document)
    ]


def corrects_text(line: dict[str, Any]) -> str:
    """`INVOICE_ID/LINE` of the line an adjustment corrects, or an empty string."""
    if line.get("corrects_invoice_id") is None:
        return ""
    return f"{line['corrects_invoice_id']}/{line['corrects_line']}"


def format_utc(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC (`+00:00`), or None."""
    return None if moment is None else moment.astimezone(UTC).isoformat()


def money_text(amount: Decimal, currency: str) -> str:
    """An amount with exactly the currency's minor-unit decimals ("1.60", "125" for JPY)."""
    return str(round_money(amount, currency))


def _stored_money(amount: Decimal | None, currency: str) -> str | None:
    return None if amount is None else money_text(amount, currency)


def decimal_text(value: Decimal | None) -> str | None:
    """A decimal as its exact string, or None."""
    return None if value is None else str(value)


def _lines(document: dict[str, Any]) -> Sequence[dict[str, Any]]:
    lines: Sequence[dict[str, Any]] = document["lines"]
    return lines
