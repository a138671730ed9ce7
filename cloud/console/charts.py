"""The console's charts: inline SVG drawn on the server, pure (no I/O, no JavaScript).

`bar_chart` draws one value per bucket with both axes, the unit on the value axis, the caption
(period and time zone) as the chart's <title>, each value as a label over its bar and in the
bar's own <title> (native hover). `timeline` draws spans (bindings, sessions) as bars on a time
axis whose ticks are in the given time zone, each bar labelled and titled. Presentation
attributes only (fill=, stroke=): the console's CSP allows no inline style. Every text is
escaped. `quantity_text` is how a value reads, on the chart and in the table under it.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from shared.canonical import format_decimal

WIDTH = 760
BAR_HEIGHT = 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 64
LANE = 30  # a timeline row's height
MAX_DECIMALS = 3
CHAR_WIDTH = 6.5  # about one character of the 11 px labels
INK, MUTED, LINE, ACCENT = "#1d2330", "#5b6474", "#d9dee7", "#1f5fbf"
SPAN_COLOURS = {"open": "#bfe3c9", "ended": "#c9d8f2", "other": "#f2dfb8"}  # text stays legible


@dataclass(frozen=True, slots=True)
class Bar:
    """One bucket: its axis label, its value, what hovering it says, and where it opens."""

    label: str
    value: Decimal
    title: str
    href: str | None = None


@dataclass(frozen=True, slots=True)
class Span:
    """One bar of a timeline on the row `row`, from `start` to `end`, labelled `label`;
    `tone` is open, ended or other (its colour)."""

    row: str
    start: datetime
    end: datetime
    label: str
    title: str
    tone: str = "ended"


def quantity_text(value: Decimal) -> str:
    """A value as the chart and its table show it: plain, at most 3 decimals (half up)."""
    if value.as_tuple().exponent < -MAX_DECIMALS:  # type: ignore[operator]
        value = value.quantize(Decimal(1).scaleb(-MAX_DECIMALS), rounding=ROUND_HALF_UP)
    return format_decimal(value)


def bar_chart(*, bars: Sequence[Bar], unit: str, caption: str, chart_id: str) -> Markup:
    """A bar chart of `bars`: value axis in `unit` from 0 to a round top, bucket labels under
    the bars (thinned to fit), each value over its bar and in its <title>."""
    count = max(len(bars), 1)
    vertical = count > 16  # value labels turned upright when the bars are narrow
    pad = 64 if vertical else TOP
    width = max(WIDTH, LEFT + RIGHT + count * 22)
    plot_w, plot_h = width - LEFT - RIGHT, BAR_HEIGHT - TOP - BOTTOM
    top = _round_top(max((bar.value for bar in bars), default=Decimal(0)))
    slot = plot_w / count
    base = pad + plot_h
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart bar-chart" id="{escape(chart_id)}"'
        f' viewBox="0 0 {width} {BAR_HEIGHT + pad - TOP}" role="img" data-unit="{escape(unit)}">',
        f"<title>{escape(caption)}</title>",
    ]
    for fraction in (Decimal(0), Decimal("0.5"), Decimal(1)):  # value axis: 0, half, top
        y = base - float(fraction) * plot_h
        tick = quantity_text(top * fraction)
        parts.append(_line(LEFT, y, width - RIGHT, y, LINE))
        parts.append(_text(LEFT - 6, y + 4, tick, "tick y-tick", anchor="end"))
    parts.append(_line(LEFT, pad, LEFT, base, INK))  # the axes
    parts.append(_line(LEFT, base, width - RIGHT, base, INK))
    parts.append(
        f'<text class="axis-unit" x="14" y="{pad + plot_h / 2:.1f}" fill="{MUTED}"'
        f' font-size="12" text-anchor="middle"'
        f' transform="rotate(-90 14 {pad + plot_h / 2:.1f})">{escape(unit)}</text>'
    )
    every = max(1, round(count / 16))  # bucket labels: at most about 16
    for index, bar in enumerate(bars):
        x = LEFT + index * slot
        height = 0.0 if top == 0 else float(bar.value / top) * plot_h
        centre = x + slot / 2
        shown = quantity_text(bar.value)
        if bar.href is not None:
            parts.append(f'<a href="{escape(bar.href)}">')
        parts.append(
            f'<g class="bar" data-label="{escape(bar.label)}" data-value="{escape(shown)}">'
            f"<title>{escape(bar.title)}</title>"
            f'<rect x="{x + slot * 0.15:.1f}" y="{base - height:.1f}" width="{slot * 0.7:.1f}"'
            f' height="{height:.1f}" fill="{ACCENT}"/>'
            + _value_label(centre, base - height, shown, vertical)
            + "</g>"
        )
        if bar.href is not None:
            parts.append("</a>")
        if index % every == 0:
            parts.append(_text(centre, base + 16, bar.label, "tick x-tick", anchor="middle"))
    parts.append("</svg>")
    return Markup("".join(parts))


def timeline(
    *,
    spans: Sequence[Span],
    start: datetime,
    end: datetime,
    time_zone: str,
    chart_id: str,
    caption: str,
) -> Markup:
    """Spans as bars over [start, end) (clipped to it), one row per distinct `row`, with a
    time axis of local date ticks in `time_zone`."""
    rows = list(dict.fromkeys(span.row for span in spans))
    height = TOP + max(len(rows), 1) * LANE + 40
    plot_w = WIDTH - 160 - RIGHT
    left = 160
    total = (end - start).total_seconds() or 1.0

    def x_of(moment: datetime) -> float:
        moment = min(max(moment, start), end)
        return left + (moment - start).total_seconds() / total * plot_w

    base = TOP + max(len(rows), 1) * LANE
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart timeline" id="{escape(chart_id)}"'
        f' viewBox="0 0 {WIDTH} {height}" role="img">',
        f"<title>{escape(caption)}</title>",
        _line(left, TOP - 4, left, base, INK),
        _line(left, base, WIDTH - RIGHT, base, INK),
    ]
    for moment, text in time_ticks(start, end, time_zone):
        x = x_of(moment)
        parts.append(_line(x, TOP - 4, x, base, LINE))
        parts.append(_text(x, base + 16, text, "tick x-tick", anchor="middle"))
    for index, row in enumerate(rows):
        y = TOP + index * LANE
        parts.append(_text(left - 8, y + LANE / 2 + 4, row, "row-label", anchor="end"))
    for span in spans:
        if span.end <= start or span.start >= end:
            continue
        y = TOP + rows.index(span.row) * LANE + 5
        x0, x1 = x_of(span.start), x_of(span.end)
        colour = SPAN_COLOURS.get(span.tone, SPAN_COLOURS["other"])
        parts.append(
            f'<g class="span" data-row="{escape(span.row)}" data-label="{escape(span.label)}">'
            f"<title>{escape(span.title)}</title>"
            f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0, 2):.1f}" height="{LANE - 10}"'
            f' rx="3" fill="{colour}" stroke="{MUTED}"/>'
            + _span_label(x0, y + LANE / 2, span.label, left=left, right=WIDTH - RIGHT)
            + "</g>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def time_ticks(start: datetime, end: datetime, time_zone: str) -> list[tuple[datetime, str]]:
    """About six ticks on [start, end]: local midnights (dates) for spans of days, else local
    whole hours (times), labelled in `time_zone`."""
    zone = ZoneInfo(time_zone)
    span = end - start
    ticks: list[tuple[datetime, str]] = []
    if span >= timedelta(days=2):
        step_days = max(1, round(span.days / 6))
        day = start.astimezone(zone).date() + timedelta(days=1)
        moment = datetime(day.year, day.month, day.day, tzinfo=zone)
        while moment < end:
            ticks.append((moment, moment.strftime("%Y-%m-%d")))
            day += timedelta(days=step_days)
            moment = datetime(day.year, day.month, day.day, tzinfo=zone)
        return ticks
    step = timedelta(hours=max(1, round(span / timedelta(hours=1) / 6)))
    moment = start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    while moment < end:
        ticks.append((moment, moment.astimezone(zone).strftime("%m-%d %H:%M")))
        moment += step
    return ticks


def _round_top(largest: Decimal) -> Decimal:
    """The value axis' top: 1, 2 or 5 times a power of ten, at least `largest` (1 when 0)."""
    if largest <= 0:
        return Decimal(1)
    power = Decimal(10) ** (largest.adjusted())
    for factor in (1, 2, 5, 10):
        if power * factor >= largest:
            return power * factor
    return power * 10  # pragma: no cover (10 x the leading power is always enough)


def _span_label(x: float, y: float, text: str, *, left: float, right: float) -> str:
    """Inside the bar from its start, or ending just before it when it would run off the plot."""
    if x + 4 + len(text) * CHAR_WIDTH > right and x - 4 - len(text) * CHAR_WIDTH >= left:
        return _text(x - 4, y, text, "span-label", anchor="end", fill=INK)
    return _text(x + 4, y, text, "span-label", anchor="start", fill=INK)


def _value_label(x: float, y: float, text: str, vertical: bool) -> str:
    if vertical:
        return (
            f'<text class="value" x="{x:.1f}" y="{y - 4:.1f}" fill="{INK}" font-size="10"'
            f' text-anchor="start" transform="rotate(-90 {x:.1f} {y - 4:.1f})"'
            f' dominant-baseline="middle">{escape(text)}</text>'
        )
    return _text(x, y - 4, text, "value", anchor="middle", fill=INK)


def _line(x1: float, y1: float, x2: float, y2: float, colour: str) -> str:
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}"'
        ' stroke-width="1"/>'
    )


def _text(x: float, y: float, text: str, css: str, *, anchor: str, fill: str = MUTED) -> str:
    return (
        f'<text class="{css}" x="{x:.1f}" y="{y:.1f}" fill="{fill}" font-size="11"'
        f' text-anchor="{anchor}">{escape(text)}</text>'
    )
