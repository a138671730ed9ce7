"""A readable, printable invoice page: one self-contained HTML document, no JavaScript, no CDN.

Pure: it renders the export document (`cloud.invoices.exports.invoice_document`) and, per usage
line, its daily usage (`cloud.usage.buckets.UsagePoint`s) as an inline SVG bar chart drawn
here. Every value from the database goes through `html.escape`; URLs are built from numbers and
quoted query values only.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from cloud.usage.buckets import UsagePoint

CHART_WIDTH = 560
CHART_HEIGHT = 120
_CSS = """
body { font-family: system-ui, sans-serif; color: #111; margin: 2rem auto; max-width: 60rem; }
header { display: flex; justify-content: space-between; border-bottom: 2px solid #111; }
h1 { margin: 0 0 .5rem 0; }
table { border-collapse: collapse; width: 100%; margin-top: 1rem; }
th, td { border-bottom: 1px solid #ccc; padding: .3rem .4rem; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tfoot td { font-weight: bold; border-top: 2px solid #111; }
.status { font-weight: bold; text-transform: uppercase; }
.watermark { position: fixed; top: 40%; left: 10%; font-size: 8rem; color: rgba(200,0,0,.12);
  transform: rotate(-30deg); pointer-events: none; z-index: -1; }
figure { margin: 1rem 0; } figcaption { font-size: .9rem; color: #444; }
svg .bar { fill: #3b6ea5; } svg .axis { stroke: #888; }
nav { margin-top: 1.5rem; font-size: .9rem; }
@media print {
  @page { size: A4; margin: 15mm; }
  body { margin: 0; max-width: none; font-size: 10pt; }
  nav, .links { display: none; }
  a { color: inherit; text-decoration: none; }
  tr, figure { page-break-inside: avoid; }
}
"""


@dataclass(frozen=True, slots=True)
class PageLinks:
    """Where the page's links point: the API (for staff with a key) or a share link's paths.

    `base` is the collector's public URL (`TOLLGATE_PUBLIC_URL`), so the links work in a file
    opened on its own; empty, they are relative to the collector that served the page.
    """

    base: str = ""
    share_token: str | None = None

    def evidence(self, invoice_id: int, n: int) -> str:
        """The evidence of line `n`."""
        if self.share_token is not None:
            return f"{self.base}/v1/shared/{self.share_token}/lines/{n}/evidence"
        return f"{self.base}/v1/invoices/{invoice_id}/lines/{n}/evidence"

    def export(self, invoice_id: int, export_format: str) -> str | None:
        """The invoice in another format (not offered through a share link)."""
        if self.share_token is not None:
            return None
        return f"{self.base}/v1/invoices/{invoice_id}/export?format={export_format}"


def invoice_html(
    document: Mapping[str, Any],
    *,
    charts: Mapping[int, Sequence[UsagePoint]] | None = None,
    links: PageLinks | None = None,
) -> str:
    """The invoice page; `charts` maps a usage line's number to its daily usage."""
    links = links or PageLinks()
    zone = ZoneInfo(str(document["time_zone"]))
    title = f"Invoice {_number(document)}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        _watermark(document),
        _header(document, zone),
        _lines_table(document, zone, links),
        _charts(document, charts or {}),
        _nav(document, links),
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part)


def _number(document: Mapping[str, Any]) -> str:
    printed = document.get("printed_number")
    return "DRAFT" if printed is None else str(printed)


def _watermark(document: Mapping[str, Any]) -> str:
    if document.get("status") == "finalized":
        return ""
    return '<div class="watermark" aria-hidden="true">DRAFT</div>'


def _header(document: Mapping[str, Any], zone: ZoneInfo) -> str:
    account = document["account"]
    first = _local_date(document["period_start"], zone)
    last = _local_date(document["period_end"], zone, before=True)
    return (
        "<header><div>"
        f"<h1>Invoice {escape(_number(document))}</h1>"
        f'<p>Status: <span class="status">{escape(str(document["status"]))}</span></p>'
        f"<p>Period {escape(str(document['period']))}: {escape(first)} to {escape(last)} "
        f"({escape(str(document['time_zone']))})</p>"
        "</div><div>"
        f"<p><strong>{escape(str(account['name']))}</strong><br>"
        f"Account {escape(str(account['id']))} ({escape(str(account['kind']))})</p>"
        f"<p>Currency {escape(str(document['currency']))}</p>"
        "</div></header>"
    )


def _lines_table(document: Mapping[str, Any], zone: ZoneInfo, links: PageLinks) -> str:
    rows = "\n".join(_line_row(document, line, zone, links) for line in document["lines"])
    currency = escape(str(document["currency"]))
    return (
        "<table><thead><tr><th>#</th><th>Description</th><th>Period part</th>"
        '<th class="num">Usage</th><th class="num">Billable</th>'
        f'<th class="num">Amount ({currency})</th><th class="links">Evidence</th></tr></thead>'
        f"<tbody>\n{rows}\n</tbody>"
        f'<tfoot><tr><td colspan="5">Total</td><td class="num" id="total">'
        f"{escape(str(document['total']))} {currency}</td><td></td></tr></tfoot></table>"
    )


def _line_row(
    document: Mapping[str, Any], line: Mapping[str, Any], zone: ZoneInfo, links: PageLinks
) -> str:
    n = int(line["n"])
    part = (
        f"{_local_date(line['part_start'], zone)} to "
        f"{_local_date(line['part_end'], zone, before=True)}"
    )
    description = escape(str(line["description"]))
    if line.get("corrects_invoice_id") is not None:
        description += (
            f"<br><small>corrects invoice {int(line['corrects_invoice_id'])} line "
            f"{int(line['corrects_line'])}</small>"
        )
    return (
        f'<tr id="line-{n}"><td>{n}</td><td>{description}</td><td>{escape(part)}</td>'
        f'<td class="num">{escape(_text(line.get("quantity")))}</td>'
        f'<td class="num">{escape(_text(line.get("billable")))}</td>'
        f'<td class="num">{escape(str(line["amount"]))}</td>'
        f'<td class="links">{_links(document, line, links)}</td></tr>'
    )


def _links(document: Mapping[str, Any], line: Mapping[str, Any], links: PageLinks) -> str:
    # The evidence holds exactly the line's events (signed, in wire form): no time-range query
    # over every device, which would show other accounts' devices.
    evidence = links.evidence(int(document["id"]), int(line["n"]))
    return f'<a href="{escape(evidence)}">sessions &amp; signed events (JSON)</a>'


def _charts(document: Mapping[str, Any], charts: Mapping[int, Sequence[UsagePoint]]) -> str:
    lines = {int(line["n"]): line for line in document["lines"]}
    figures = [
        _chart(lines[n], points, ZoneInfo(str(document["time_zone"])))
        for n, points in sorted(charts.items())
        if n in lines and points
    ]
    if not figures:
        return ""
    return "<section><h2>Daily usage</h2>\n" + "\n".join(figures) + "</section>"


def _chart(line: Mapping[str, Any], points: Sequence[UsagePoint], zone: ZoneInfo) -> str:
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
            f'<rect class="bar" x="{x}" y="{_px(CHART_HEIGHT - max(height, Decimal(0)))}" '
            f'width="{_px(max(slot - 2, Decimal(1)))}" height="{h}">'
            f"<title>{escape(day)}: {escape(str(point.value))}</title></rect>"
        )
    metric = escape(_text(line.get("metric")))
    return (
        f'<figure id="chart-{n}"><svg xmlns="http://www.w3.org/2000/svg" role="img" '
        f'width="{CHART_WIDTH}" height="{CHART_HEIGHT}" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}">'
        f"<title>Line {n}: {metric} per day</title>"
        f'<line class="axis" x1="0" y1="{CHART_HEIGHT}" x2="{CHART_WIDTH}" y2="{CHART_HEIGHT}"/>'
        + "".join(bars)
        + f"</svg><figcaption>Line {n}: {metric} per local day, "
        f"highest {escape(str(top))}</figcaption></figure>"
    )


def _nav(document: Mapping[str, Any], links: PageLinks) -> str:
    invoice_id = int(document["id"])
    json_link, csv_link = links.export(invoice_id, "json"), links.export(invoice_id, "csv")
    if json_link is None or csv_link is None:
        return "<nav>print this page for a PDF</nav>"
    return (
        f'<nav><a href="{escape(json_link)}">JSON</a> · <a href="{escape(csv_link)}">CSV</a> · '
        "print this page for a PDF</nav>"
    )


def _local_date(text: str, zone: ZoneInfo, *, before: bool = False) -> str:
    """The local calendar date of an instant; `before`: of the instant just before it."""
    moment = datetime.fromisoformat(text)
    if before:
        moment -= timedelta(microseconds=1)
    return moment.astimezone(zone).date().isoformat()


def _px(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.1")))


def _text(value: object) -> str:
    return "" if value is None else str(value)
