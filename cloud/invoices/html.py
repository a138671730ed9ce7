"""A readable, printable invoice or credit note: one self-contained HTML page, no JavaScript.

Pure: it renders the export document (`cloud.invoices.exports.invoice_document`, or a credit
note document of the same shape) and, per usage line, its daily usage
(`cloud.usage.buckets.UsagePoint`s) as an inline SVG bar chart drawn here. Amounts, quantities
and dates are formatted for the document's `locale` with Babel (de_DE: `1.234,56 €`,
`05.12.2026`); the labels stay English. Every value from the database goes through
`html.escape`; URLs are built from numbers and quoted query values only.

Links: only usage lines (and corrections of them) link their evidence, base-fee and minimum
lines are not rated from events. `PageLinks.standalone` marks a page that will be a file (CLI
export, PDF): its links are absolute (`TOLLGATE_PUBLIC_URL` or a share link), and with no public
URL configured the page says that evidence needs the collector instead of printing dead links.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal

from cloud.usage.buckets import UsagePoint

CHART_WIDTH = 560
CHART_HEIGHT = 120
DAY_LABEL_ROOM = 14  # below the axis: day-of-month labels
DEFAULT_LOCALE = "en_GB"
# Units that count things read "0.50 € each"; measured units read "0.0003 € per Wh".
_COUNTED = frozenset({"events", "sessions", "devices"})
_CSS = """
body { font-family: "DejaVu Sans", system-ui, sans-serif; color: #111; margin: 2rem auto;
  max-width: 60rem; font-size: 11pt; }
header.top { display: flex; justify-content: space-between; gap: 2rem;
  border-bottom: 2px solid #111; padding-bottom: .5rem; }
h1 { margin: 0 0 .5rem 0; } h2 { font-size: 1.05rem; margin: 1.2rem 0 .3rem 0; }
.parties { display: flex; justify-content: space-between; gap: 2rem; margin-top: 1rem; }
.party p, dl { margin: .2rem 0; } address { font-style: normal; }
dl.facts { display: grid; grid-template-columns: auto auto; gap: .1rem 1rem; }
dl.facts dt { color: #444; } dl.facts dd { margin: 0; }
.warning { border: 2px solid #b00; color: #b00; padding: .4rem; font-weight: bold; }
table { border-collapse: collapse; width: 100%; margin-top: .8rem; }
th, td { border-bottom: 1px solid #ccc; padding: .3rem .4rem; text-align: left;
  vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.totals { width: 45%; margin-left: auto; }
table.totals tr.due td { font-weight: bold; border-top: 2px solid #111; }
.sentence { color: #333; font-size: .92em; }
.status { font-weight: bold; text-transform: uppercase; }
.watermark { position: fixed; top: 40%; left: 10%; font-size: 8rem; color: rgba(200,0,0,.12);
  transform: rotate(-30deg); pointer-events: none; z-index: -1; }
figure { margin: 1rem 0; } figcaption { font-size: .9rem; color: #444; }
nav, .evidence-note { margin-top: 1.5rem; font-size: .9rem; }
@media print {
  @page { size: A4; margin: 15mm; }
  body { margin: 0; max-width: none; font-size: 9.5pt; }
  nav { display: none; }
  a { color: inherit; }
  tr, figure, section { page-break-inside: avoid; }
}
"""


@dataclass(frozen=True, slots=True)
class PageLinks:
    """Where the page's links point: the API (for staff with a key) or a share link's paths.

    `base` is the collector's public URL (`TOLLGATE_PUBLIC_URL`), so the links work in a file
    opened on its own; empty, they are relative to the collector that served the page.
    `standalone`: the page becomes a file (an export, a PDF), so relative links would be dead:
    with no `base` the page prints a note instead of them.
    """

    base: str = ""
    share_token: str | None = None
    standalone: bool = False

    @property
    def usable(self) -> bool:
        """Whether links can be printed (they will resolve where the page is read)."""
        return bool(self.base) or not self.standalone

    def evidence(self, invoice_id: int, n: int) -> str:
        """The evidence of line `n`."""
        if self.share_token is not None:
            return f"{self.base}/v1/shared/{self.share_token}/lines/{n}/evidence"
        return f"{self.base}/v1/invoices/{invoice_id}/lines/{n}/evidence"

    def export(self, invoice_id: int, export_format: str) -> str | None:
        """The invoice in another format (only the PDF through a share link)."""
        if self.share_token is not None:
            if export_format == "pdf":
                return f"{self.base}/v1/shared/{self.share_token}/invoice.pdf"
            return None
        return f"{self.base}/v1/invoices/{invoice_id}/export?format={export_format}"


@dataclass(frozen=True, slots=True)
class Formats:
    """Babel formatting for one document: its locale and currency."""

    locale: Locale
    currency: str

    @classmethod
    def of(cls, document: Mapping[str, Any]) -> "Formats":
        """The document's locale (`en_GB` when it names none or one Babel does not know)."""
        name = str(document.get("locale") or DEFAULT_LOCALE)
        try:
            locale = Locale.parse(name)
        except (UnknownLocaleError, ValueError):
            locale = Locale.parse(DEFAULT_LOCALE)
        return cls(locale=locale, currency=str(document["currency"]))

    def money(self, value: object) -> str:
        """An amount with the currency's decimals: `1.234,56 €` (de_DE), `€1,234.56` (en_GB)."""
        return format_currency(_decimal(value), self.currency, locale=self.locale)

    def price(self, value: object) -> str:
        """A unit price with every decimal it has (never rounded): `0,0003 €`."""
        return format_currency(
            _decimal(value), self.currency, locale=self.locale, decimal_quantization=False
        )

    def number(self, value: object) -> str:
        """A quantity with every decimal it has: `861.000` (de_DE), `861,000` (en_GB)."""
        return format_decimal(_decimal(value), locale=self.locale, decimal_quantization=False)

    def day(self, value: date) -> str:
        """A calendar date: `05.12.2026` (de_DE), `5 Dec 2026` (en_GB)."""
        return format_date(value, format="medium", locale=self.locale)

    def iso_day(self, text: object) -> str:
        """An ISO date string formatted, or an empty string."""
        return "" if not text else self.day(date.fromisoformat(str(text)))

    def quantity(self, value: object, unit: str | None) -> str:
        """A quantity with its unit: `190 openings`, `861,000 Wh`."""
        number = self.number(value)
        return f"{number} {unit}" if unit else number


def invoice_html(
    document: Mapping[str, Any],
    *,
    charts: Mapping[int, Sequence[UsagePoint]] | None = None,
    links: PageLinks | None = None,
) -> str:
    """The page; `charts` maps a usage line's number to its daily usage."""
    links = links or PageLinks()
    zone = ZoneInfo(str(document["time_zone"]))
    fmt = Formats.of(document)
    title = f"{document_title(document)} {_number(document)}"
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{escape(fmt.locale.language)}"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        _watermark(document),
        _header(document, zone, fmt),
        _parties(document),
        _references(document, fmt),
        _lines_table(document, zone, links, fmt),
        _vat_table(document, fmt),
        _totals(document, fmt),
        _payment(document, fmt),
        _notes(document),
        _charts(document, charts or {}, fmt),
        _evidence_note(document, links),
        _nav(document, links),
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part)


def document_title(document: Mapping[str, Any]) -> str:
    """`Invoice` or `Credit note`."""
    return "Credit note" if document.get("document_type") == "credit_note" else "Invoice"


def _is_credit_note(document: Mapping[str, Any]) -> bool:
    return document.get("document_type") == "credit_note"


def _number(document: Mapping[str, Any]) -> str:
    printed = document.get("printed_number")
    return "DRAFT" if printed is None else str(printed)


def _watermark(document: Mapping[str, Any]) -> str:
    if document.get("status") == "finalized":
        return ""
    return '<div class="watermark" aria-hidden="true">DRAFT</div>'


def _header(document: Mapping[str, Any], zone: ZoneInfo, fmt: Formats) -> str:
    first, last = _service_period(document, zone)
    number = escape(_number(document))
    facts = [
        (f"{document_title(document)} number", number),
        ("Issue date", escape(fmt.iso_day(document.get("issue_date")) or "not issued yet")),
    ]
    if document.get("document_type") != "credit_note":
        facts.append(("Due date", escape(fmt.iso_day(document.get("due_date")) or "-")))
    facts += [
        ("Service period", f"{escape(fmt.day(first))} to {escape(fmt.day(last))}"),
        ("Billing period", escape(str(document["period"]))),
        ("Status", f'<span class="status">{escape(str(document["status"]))}</span>'),
    ]
    rows = "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in facts)
    return (
        '<header class="top"><div>'
        f"<h1>{escape(document_title(document))} {number}</h1>"
        f'<dl class="facts">{rows}</dl></div>'
        f'<div class="party seller">{_seller(document.get("seller"))}</div></header>'
    )


def _service_period(document: Mapping[str, Any], zone: ZoneInfo) -> tuple[date, date]:
    """First and last local day of the period (the tax data's `service_period` when present)."""
    period = document.get("service_period")
    if isinstance(period, Mapping) and period.get("start") and period.get("end"):
        return date.fromisoformat(str(period["start"])), date.fromisoformat(str(period["end"]))
    return (
        local_day(str(document["period_start"]), zone),
        local_day(str(document["period_end"]), zone, before=True),
    )


def _seller(seller: object) -> str:
    if not isinstance(seller, Mapping):
        return (
            '<p class="warning" id="seller-missing">Seller details not configured: this page is '
            "not a valid invoice to send.</p>"
        )
    lines = [f"<strong>{escape(str(seller.get('name') or ''))}</strong>"]
    lines += _address(seller.get("address"))
    if seller.get("vat_id"):
        lines.append(f"VAT ID {escape(str(seller['vat_id']))}")
    if seller.get("email"):
        lines.append(escape(str(seller["email"])))
    return '<address id="seller">' + "<br>".join(lines) + "</address>"


def _parties(document: Mapping[str, Any]) -> str:
    buyer = document.get("buyer")
    account = document["account"]
    if not isinstance(buyer, Mapping):
        buyer = {"name": account["name"], "customer_number": account["id"]}
    lines = [f"<strong>{escape(str(buyer.get('name') or account['name']))}</strong>"]
    lines += _address(buyer.get("address"))
    if buyer.get("vat_id"):
        lines.append(f"VAT ID {escape(str(buyer['vat_id']))}")
    lines.append(f"Customer number {escape(str(buyer.get('customer_number') or account['id']))}")
    return (
        '<div class="parties"><div class="party buyer"><h2>Bill to</h2>'
        f'<address id="buyer">{"<br>".join(lines)}</address></div></div>'
    )


def _address(address: object) -> list[str]:
    if not isinstance(address, Mapping):
        return []
    lines = [escape(str(line)) for line in address.get("lines") or []]
    city = " ".join(str(part) for part in (address.get("postcode"), address.get("city")) if part)
    if city:
        lines.append(escape(city))
    if address.get("country"):
        lines.append(escape(country_name(str(address["country"]))))
    return lines


def country_name(code: str) -> str:
    """An ISO 3166 code as the country's English name (labels are English), e.g. Germany."""
    return str(Locale.parse("en").territories.get(code.upper(), code))


def _references(document: Mapping[str, Any], fmt: Formats) -> str:
    """A credit note names the invoices (and lines) it credits."""
    references = document.get("references") or []
    if not references:
        return ""
    items = []
    for ref in references:
        text = f"invoice {ref.get('printed_number') or ref.get('invoice_id')}"
        if ref.get("issue_date"):
            text += f" of {fmt.iso_day(ref['issue_date'])}"
        if ref.get("line") is not None:
            text += f", line {int(ref['line'])}"
        items.append(f"<li>{escape(text)}</li>")
    return f'<section id="references"><h2>Credits</h2><ul>{"".join(items)}</ul></section>'


def _lines_table(
    document: Mapping[str, Any], zone: ZoneInfo, links: PageLinks, fmt: Formats
) -> str:
    rows = "\n".join(_line_row(document, line, zone, links, fmt) for line in document["lines"])
    evidence_head = '<th class="links">Evidence</th>' if links.usable else ""
    return (
        '<table class="lines"><thead><tr><th>#</th><th>Description</th>'
        '<th class="num">Quantity</th><th class="num">Billable</th>'
        '<th class="num">Unit price</th><th class="num">VAT</th>'
        f'<th class="num">Amount (net)</th>{evidence_head}</tr></thead>'
        f"<tbody>\n{rows}\n</tbody></table>"
    )


def _line_row(
    document: Mapping[str, Any],
    line: Mapping[str, Any],
    zone: ZoneInfo,
    links: PageLinks,
    fmt: Formats,
) -> str:
    n = int(line["n"])
    part = (
        f"{fmt.day(local_day(str(line['part_start']), zone))} to "
        f"{fmt.day(local_day(str(line['part_end']), zone, before=True))}"
    )
    unit = line.get("unit")
    description = (
        f"<strong>{escape(line_title(line))}</strong>"
        f'<br><span class="sentence">{escape(line_sentence(line, fmt))}</span>'
        f"<br><small>{escape(part)}</small>"
    )
    if line.get("corrects_invoice_id") is not None:
        description += (
            f"<br><small>corrects invoice {int(line['corrects_invoice_id'])} line "
            f"{_text(line.get('corrects_line'))}</small>"
        )
    if line.get("credits_line") is not None:
        description += f"<br><small>credits line {int(line['credits_line'])}</small>"
    rate = line.get("tax_rate")
    vat = "" if rate is None else f"{fmt.number(rate)} %"
    evidence = f'<td class="links">{_links(document, line, links)}</td>' if links.usable else ""
    return (
        f'<tr id="line-{n}"><td>{n}</td><td>{description}</td>'
        f'<td class="num">{escape(_quantity(line.get("quantity"), unit, fmt))}</td>'
        f'<td class="num">{escape(_quantity(line.get("billable"), unit, fmt))}</td>'
        f'<td class="num">{escape(unit_price(line, fmt))}</td>'
        f'<td class="num">{escape(vat)}</td>'
        f'<td class="num amount">{escape(fmt.money(line["amount"]))}</td>{evidence}</tr>'
    )


def _quantity(value: object, unit: object, fmt: Formats) -> str:
    return "" if value is None else fmt.quantity(value, None if unit is None else str(unit))


def _links(document: Mapping[str, Any], line: Mapping[str, Any], links: PageLinks) -> str:
    # Only lines rated from usage have evidence; a base fee or a minimum is not from events.
    # A credit note's line links the evidence of the invoice line it credits (staff links: a
    # share link opens one invoice, not its credit notes).
    if not line.get("metric"):
        return ""
    if _is_credit_note(document):
        credited = _credited_invoice_id(document)
        if links.share_token is not None or credited is None or line.get("credits_line") is None:
            return ""
        invoice_id, n = credited, int(line["credits_line"])
    else:
        invoice_id, n = int(document["id"]), int(line["n"])
    # The evidence holds exactly the line's events (signed, in wire form): no time-range query
    # over every device, which would show other accounts' devices.
    evidence = links.evidence(invoice_id, n)
    return f'<a href="{escape(evidence)}">sessions &amp; signed events (JSON)</a>'


def _credited_invoice_id(document: Mapping[str, Any]) -> int | None:
    if document.get("invoice_id") is not None:
        return int(document["invoice_id"])
    references = [ref for ref in document.get("references") or [] if isinstance(ref, Mapping)]
    return int(references[0]["invoice_id"]) if references else None


# --- the line as a sentence -------------------------------------------------------------------


def line_title(line: Mapping[str, Any]) -> str:
    """What the line is for: the charge's name, `Base fee`, `Minimum charge`, `Correction`."""
    kind = line.get("kind")
    if kind == "base_fee":
        return f"Base fee, plan {line.get('plan_id')} (version {line.get('plan_version')})"
    if kind == "minimum":
        return f"Minimum charge, plan {line.get('plan_id')} (version {line.get('plan_version')})"
    if kind == "adjustment":
        return "Correction of an earlier invoice"
    return charge_name(str(line.get("description") or line.get("metric") or ""))


def charge_name(description: str) -> str:
    """The charge's name from a rated description (`Door openings, 190: ...` -> `Door openings`)."""
    head = description.rsplit(": ", 1)[0] if ": " in description else description
    return head.rsplit(", ", 1)[0] if ", " in head else head


def line_sentence(line: Mapping[str, Any], fmt: Formats) -> str:
    """The line explained to a customer from its detail (tiers, included units, proration)."""
    detail = line.get("detail") or {}
    kind = line.get("kind")
    if kind == "base_fee":
        return _base_fee_sentence(detail, fmt)
    if kind == "minimum":
        return _minimum_sentence(detail, fmt)
    if kind == "adjustment":
        return _adjustment_sentence(line, detail, fmt)
    return usage_sentence(line, detail, fmt)


def _base_fee_sentence(detail: Mapping[str, Any], fmt: Formats) -> str:
    fee = fmt.money(detail.get("base_fee", "0"))
    prorated = _proration(detail, fmt)
    if prorated is None:
        return f"The plan's base fee of {fee} for the whole period."
    return f"The plan's base fee of {fee}, prorated for {prorated}."


def _minimum_sentence(detail: Mapping[str, Any], fmt: Formats) -> str:
    minimum = fmt.money(detail.get("prorated_minimum", detail.get("minimum_amount", "0")))
    subtotal = fmt.money(detail.get("subtotal", "0"))
    prorated = _proration(detail, fmt)
    scope = "" if prorated is None else f" (prorated for {prorated})"
    return (
        f"The plan bills at least {minimum}{scope}; the charges above came to {subtotal}, "
        "so the difference is added."
    )


def _adjustment_sentence(line: Mapping[str, Any], detail: Mapping[str, Any], fmt: Formats) -> str:
    target = detail.get("corrects_invoice") or line.get("corrects_invoice_id")
    where = (
        f"line {detail['corrects_line']}"
        if detail.get("corrects_line") is not None
        else "a line it did not have"
    )
    return (
        f"Invoice {target}, {where}, billed {fmt.money(detail.get('previous_amount', '0'))}; "
        f"re-rated with late data it comes to {fmt.money(detail.get('new_amount', '0'))}: "
        "this line bills the difference."
    )


def _proration(detail: Mapping[str, Any], fmt: Formats) -> str | None:
    """`12 of 30 days` when the line covers part of the period, None for all of it."""
    try:
        part = Decimal(str(detail["part_seconds"]))
        whole = Decimal(str(detail["period_seconds"]))
    except (KeyError, InvalidOperation):
        return None
    if part == whole or whole <= 0:
        return None
    day = Decimal(86400)
    days = (part / day).quantize(Decimal("0.01")).normalize()
    of = (whole / day).quantize(Decimal("0.01")).normalize()
    return f"{fmt.number(days)} of {fmt.number(of)} days"


def usage_sentence(line: Mapping[str, Any], detail: Mapping[str, Any], fmt: Formats) -> str:
    """E.g. `190 openings measured, 10 included; 180 billable at 0,50 € each.`"""
    unit = line.get("unit")
    unit_text = None if unit is None else str(unit)
    quantity = fmt.quantity(detail.get("quantity", line.get("quantity") or "0"), unit_text)
    included = _decimal(detail.get("included_units", "0"))
    billable = _decimal(detail.get("billable", line.get("billable") or "0"))
    head = f"{quantity} measured"
    if included > 0:
        head += f", the first {fmt.quantity(included, unit_text)} included"
    if billable <= 0:
        return f"{head}: nothing billable."
    return f"{head}; {_pricing(detail, billable, unit_text, fmt)}."


def _pricing(detail: Mapping[str, Any], billable: Decimal, unit: str | None, fmt: Formats) -> str:
    model = detail.get("model")
    amount = fmt.quantity(billable, unit)
    if model == "standard":
        return f"{amount} billable at {_per(fmt.price(detail.get('unit_price', '0')), unit)}"
    if model == "package":
        size = fmt.quantity(detail.get("package_size", "0"), unit)
        return (
            f"{amount} billable, in packages of {size} at {fmt.price(detail.get('package_price'))} "
            f"each (a started package counts whole): {_packages(detail.get('packages', '0'), fmt)}"
        )
    steps = [step for step in detail.get("steps") or [] if isinstance(step, Mapping)]
    parts = [_step_sentence(step, unit, fmt) for step in steps]
    if model == "volume":
        return f"{amount} billable, all at the price of the tier they reach: " + "; ".join(parts)
    return f"{amount} billable, priced by tier: " + "; ".join(parts)


def _packages(count: object, fmt: Formats) -> str:
    return f"{fmt.number(count)} package" + ("" if _decimal(count) == 1 else "s")


def _step_sentence(step: Mapping[str, Any], unit: str | None, fmt: Formats) -> str:
    units = fmt.quantity(step.get("units", "0"), unit)
    lower = fmt.number(step.get("from", "0"))
    upper = step.get("up_to")
    tier = f"above {lower}" if upper is None else f"{lower} to {fmt.number(upper)}"
    text = f"{units} ({tier}) at {_per(fmt.price(step.get('unit_price', '0')), unit)}"
    if _decimal(step.get("flat_fee", "0")):
        text += f" plus a flat {fmt.money(step['flat_fee'])}"
    return text


def _per(price: str, unit: str | None) -> str:
    """`0,50 € each` for counted things, `0,0003 € per Wh` for a measure."""
    if unit is None or is_counted(unit):
        return f"{price} each"
    return f"{price} per {unit}"


def is_counted(unit: str) -> bool:
    """Whether the unit counts things (`events`, `openings`) rather than measures (`h`, `Wh`)."""
    return unit in _COUNTED or (unit.isalpha() and len(unit) > 3 and unit.endswith("s"))


def unit_price(line: Mapping[str, Any], fmt: Formats) -> str:
    """The unit price column: a standard price with its unit, `tiered`, or a package price."""
    detail = line.get("detail") or {}
    unit = line.get("unit")
    model = detail.get("model")
    if line.get("kind") == "base_fee":
        return f"{fmt.price(detail.get('base_fee', '0'))} / period"
    if model == "standard":
        price = fmt.price(detail.get("unit_price", "0"))
        return price if unit is None or is_counted(str(unit)) else f"{price} / {unit}"
    if model == "package":
        return f"{fmt.price(detail.get('package_price', '0'))} / package"
    if model in ("graduated", "volume"):
        return "tiered"
    return ""


# --- taxes, totals, payment -------------------------------------------------------------------


def _vat_table(document: Mapping[str, Any], fmt: Formats) -> str:
    taxes = document.get("tax") or []
    if not taxes:
        return ""
    rows = "".join(
        f"<tr><td>{escape(_category(str(tax.get('category'))))}</td>"
        f'<td class="num">{escape(fmt.number(tax.get("rate", "0")))} %</td>'
        f'<td class="num">{escape(fmt.money(tax.get("taxable", "0")))}</td>'
        f'<td class="num">{escape(fmt.money(tax.get("tax", "0")))}</td>'
        f"<td>{escape(_text(tax.get('exemption_reason')))}</td></tr>"
        for tax in taxes
    )
    return (
        '<section id="vat"><h2>VAT breakdown</h2><table class="vat"><thead><tr>'
        '<th>Category</th><th class="num">Rate</th><th class="num">Taxable amount</th>'
        f'<th class="num">VAT</th><th>Note</th></tr></thead><tbody>{rows}</tbody></table>'
        "</section>"
    )


_CATEGORIES = {
    "S": "VAT",  # UNCL5305 S is any positive rate, reduced ones too: the rate column says which
    "AE": "Reverse charge",
    "Z": "Zero rated",
    "E": "Exempt",
    "O": "Not subject to VAT",
    "K": "Intra-community supply",
    "G": "Export outside the EU",
}


def _category(code: str) -> str:
    return f"{_CATEGORIES.get(code, code)} ({code})"


def _totals(document: Mapping[str, Any], fmt: Formats) -> str:
    totals = document.get("totals")
    if not isinstance(totals, Mapping):
        return (
            '<table class="totals"><tbody><tr class="due"><td>Total</td>'
            f'<td class="num" id="total">{escape(fmt.money(document["total"]))}</td></tr>'
            "</tbody></table>"
        )
    due_label = (
        "Amount credited" if document.get("document_type") == "credit_note" else "Amount due"
    )
    rows = [
        ("Net", "net", fmt.money(totals.get("net", "0"))),
        ("VAT", "tax", fmt.money(totals.get("tax", "0"))),
        ("Total", "total", fmt.money(totals.get("gross", "0"))),
    ]
    body = "".join(
        f'<tr><td>{label}</td><td class="num" id="{key}">{escape(value)}</td></tr>'
        for label, key, value in rows
    )
    due = fmt.money(totals.get("due", totals.get("gross", "0")))
    return (
        f'<table class="totals"><tbody>{body}<tr class="due"><td>{due_label}</td>'
        f'<td class="num" id="due">{escape(due)}</td></tr></tbody></table>'
    )


def _payment(document: Mapping[str, Any], fmt: Formats) -> str:
    if document.get("document_type") == "credit_note":
        return ""
    seller = document.get("seller")
    bank = seller.get("bank") if isinstance(seller, Mapping) else None
    if not isinstance(bank, Mapping) or not bank.get("iban"):
        return ""
    if document.get("printed_number") is None:
        return (
            '<section id="payment"><h2>Payment</h2><p>This is a draft, not a request for '
            "payment: the invoice with its number and due date follows.</p></section>"
        )
    totals = document.get("totals")
    due = totals.get("due") if isinstance(totals, Mapping) else document["total"]
    by = fmt.iso_day(document.get("due_date"))
    when = f" by {escape(by)}" if by else ""
    parts = [f"IBAN {escape(str(bank['iban']))}"]
    if bank.get("bic"):
        parts.append(f"BIC {escape(str(bank['bic']))}")
    if bank.get("account_name"):
        parts.append(f"account holder {escape(str(bank['account_name']))}")
    return (
        '<section id="payment"><h2>Payment</h2>'
        f"<p>Please transfer {escape(fmt.money(due))}{when} to {', '.join(parts)}, "
        f"quoting <strong>{escape(_number(document))}</strong> as the reference.</p></section>"
    )


def _notes(document: Mapping[str, Any]) -> str:
    notes = [str(note) for note in document.get("notes") or []]
    if not notes:
        return ""
    items = "".join(f"<p>{escape(note)}</p>" for note in notes)
    return f'<section id="notes"><h2>Notes</h2>{items}</section>'


# --- charts and links -------------------------------------------------------------------------


def _charts(
    document: Mapping[str, Any], charts: Mapping[int, Sequence[UsagePoint]], fmt: Formats
) -> str:
    lines = {int(line["n"]): line for line in document["lines"]}
    figures = [
        _chart(lines[n], points, ZoneInfo(str(document["time_zone"])), fmt)
        for n, points in sorted(charts.items())
        if n in lines and points
    ]
    if not figures:
        return ""
    return "<section><h2>Daily usage</h2>\n" + "\n".join(figures) + "</section>"


def _chart(
    line: Mapping[str, Any], points: Sequence[UsagePoint], zone: ZoneInfo, fmt: Formats
) -> str:
    """A bar per day, heights scaled to the largest value (geometry only, never money)."""
    n = int(line["n"])
    top = max((point.value for point in points), default=Decimal(0))
    slot = Decimal(CHART_WIDTH) / len(points)
    bars = []
    for index, point in enumerate(points):
        height = Decimal(0) if top <= 0 else Decimal(CHART_HEIGHT - 10) * point.value / top
        x, h = _px(slot * index + 1), _px(max(height, Decimal(0)))
        day = point.start.astimezone(zone).date().isoformat()
        bars.append(
            f'<rect class="bar" fill="#3b6ea5" x="{x}" '
            f'y="{_px(CHART_HEIGHT - max(height, Decimal(0)))}" '
            f'width="{_px(max(slot - 2, Decimal(1)))}" height="{h}">'
            f"<title>{escape(day)}: {escape(str(point.value))}</title></rect>"
        )
    name = escape(line_title(line))
    unit = line.get("unit")
    highest = escape(fmt.quantity(top, None if unit is None else str(unit)))
    first, last = (points[i].start.astimezone(zone).date() for i in (0, -1))
    svg_height = CHART_HEIGHT + DAY_LABEL_ROOM
    return (
        f'<figure id="chart-{n}"><svg xmlns="http://www.w3.org/2000/svg" role="img" '
        f'width="{CHART_WIDTH}" height="{svg_height}" viewBox="0 0 {CHART_WIDTH} {svg_height}">'
        f"<title>Line {n}: {name} per day</title>"
        f'<line class="axis" stroke="#888" x1="0" y1="{CHART_HEIGHT}" x2="{CHART_WIDTH}" '
        f'y2="{CHART_HEIGHT}"/>'
        + "".join(bars)
        + _day_labels(points, zone, slot)
        + f"</svg><figcaption>Line {n}: {name} per local day ({escape(str(zone))}), "
        f"{escape(fmt.day(first))} to {escape(fmt.day(last))}, highest {highest}</figcaption>"
        "</figure>"
    )


def _day_labels(points: Sequence[UsagePoint], zone: ZoneInfo, slot: Decimal) -> str:
    """The x axis: the day of the month under the first bar and every seventh after it."""
    labels = []
    for index in range(0, len(points), 7):
        day = points[index].start.astimezone(zone).day
        x = _px(slot * index + slot / 2)
        labels.append(
            f'<text class="day" x="{x}" y="{CHART_HEIGHT + DAY_LABEL_ROOM - 3}" '
            f'font-size="10" text-anchor="middle" fill="#444">{day}</text>'
        )
    return "".join(labels)


def _evidence_note(document: Mapping[str, Any], links: PageLinks) -> str:
    if _is_credit_note(document) or links.usable:
        return ""
    if not any(line.get("metric") for line in document["lines"]):
        return ""
    return (
        '<p class="evidence-note" id="evidence-note">The signed evidence of each usage line '
        "(sessions and events) is available from the collector: ask your billing contact for "
        "a share link, or set TOLLGATE_PUBLIC_URL so that this file links to it.</p>"
    )


def _nav(document: Mapping[str, Any], links: PageLinks) -> str:
    if not links.usable or _is_credit_note(document):
        return ""
    invoice_id = int(document["id"])
    formats = [("PDF", "pdf"), ("JSON", "json"), ("CSV", "csv"), ("Factur-X", "facturx")]
    anchors = [
        f'<a href="{escape(url)}">{label}</a>'
        for label, name in formats
        if (url := links.export(invoice_id, name)) is not None
    ]
    return f"<nav>{' · '.join(anchors)}</nav>" if anchors else ""


def local_day(text: str, zone: ZoneInfo, *, before: bool = False) -> date:
    """The local calendar date of an instant; `before`: of the instant just before it."""
    moment = datetime.fromisoformat(text)
    if before:
        moment -= timedelta(microseconds=1)
    return moment.astimezone(zone).date()


def _decimal(value: object) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _px(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.1")))


def _text(value: object) -> str:
    return "" if value is None else str(value)
