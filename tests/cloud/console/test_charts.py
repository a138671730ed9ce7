"""The console's SVG charts, pure: the bars and labels are the input numbers, the axes, the unit
and the caption are there, text is escaped, and timelines place spans on the time axis."""

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from cloud.console.charts import Bar, Span, bar_chart, quantity_text, time_ticks, timeline

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    """The SVG as XML (so it is well-formed)."""
    return ET.fromstring(markup)


def test_each_bar_carries_its_value_as_label_and_title_on_a_labelled_axis() -> None:
    values = [Decimal("0"), Decimal("1.5"), Decimal("12.25"), Decimal("0.0004")]
    bars = [
        Bar(f"12-0{i + 1}", value, f"day {i + 1}: {value} kWh") for i, value in enumerate(values)
    ]

    svg = parse(
        bar_chart(
            bars=bars, unit="kWh", caption="kwh per day, 2026-12, Europe/Berlin", chart_id="c"
        )
    )

    groups = svg.findall(f"{SVG}g")
    assert [g.get("data-value") for g in groups] == ["0", "1.5", "12.25", "0"]
    assert [g.findtext(f"{SVG}text") for g in groups] == ["0", "1.5", "12.25", "0"]
    assert [g.findtext(f"{SVG}title") for g in groups] == [bar.title for bar in bars]
    assert svg.findtext(f"{SVG}title") == "kwh per day, 2026-12, Europe/Berlin"
    texts = {(t.get("class"), t.text) for t in svg.iter(f"{SVG}text")}
    assert ("axis-unit", "kWh") in texts
    assert {("tick y-tick", "0"), ("tick y-tick", "10"), ("tick y-tick", "20")} <= texts  # top 20
    assert {("tick x-tick", bar.label) for bar in bars} <= texts
    assert len(svg.findall(f"{SVG}line")) == 5  # three grid lines, two axes
    heights = [float(_rect(g).get("height") or 0) for g in groups]
    assert heights[0] == 0 and heights[2] > heights[1] > 0
    assert abs(heights[2] / heights[1] - 12.25 / 1.5) < 0.05  # proportional to the values


def test_texts_are_escaped_and_values_read_plainly() -> None:
    bars = [Bar("<b>", Decimal("1E+3"), "a & b")]

    markup = bar_chart(bars=bars, unit="m<sup>3</sup>", caption="<script>", chart_id='x"y')
    svg = parse(markup)

    assert "<script>" not in markup and "<b>" not in markup
    assert svg.findtext(f"{SVG}title") == "<script>"
    assert svg.find(f"{SVG}g").get("data-value") == "1000"  # type: ignore[union-attr]
    assert quantity_text(Decimal("2.33333333")) == "2.333"
    assert quantity_text(Decimal("2.0005")) == "2.001"  # half up
    assert quantity_text(Decimal("7.500")) == "7.5"


def test_many_bars_turn_their_labels_upright_and_thin_the_axis() -> None:
    bars = [Bar(f"{h:02d}:00", Decimal(h), f"{h}") for h in range(24)]

    svg = parse(bar_chart(bars=bars, unit="l", caption="today", chart_id="h"))

    values = [t for t in svg.iter(f"{SVG}text") if t.get("class") == "value"]
    assert [t.text for t in values] == [str(h) for h in range(24)]
    assert all((t.get("transform") or "").startswith("rotate(-90") for t in values)
    ticks = [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "tick x-tick"]
    assert 8 <= len(ticks) < 24 and ticks[0] == "00:00"


def test_a_timeline_draws_a_row_per_key_and_clips_spans_to_its_range() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    end = start + timedelta(days=10)
    spans = [
        Span("meter-1", start - timedelta(days=5), start + timedelta(days=5), "first", "t1"),
        Span("meter-1", start + timedelta(days=5), end + timedelta(days=1), "second", "t2", "open"),
        Span("cam-1", start + timedelta(days=2), start + timedelta(days=3), "cam", "t3"),
        Span("gone", start - timedelta(days=9), start - timedelta(days=8), "outside", "t4"),
    ]

    svg = parse(
        timeline(
            spans=spans, start=start, end=end, time_zone="Europe/Berlin", chart_id="t", caption="c"
        )
    )

    rows = [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "row-label"]
    assert rows == ["meter-1", "cam-1", "gone"]
    drawn = {g.get("data-label"): g.find(f"{SVG}rect") for g in svg.findall(f"{SVG}g")}
    assert set(drawn) == {"first", "second", "cam"}  # the span outside the range is not drawn
    first, second = drawn["first"], drawn["second"]
    assert first is not None and second is not None
    left = float(first.get("x") or 0)
    middle = float(second.get("x") or 0)
    right = middle + float(second.get("width") or 0)
    assert abs((middle - left) - (right - middle)) < 0.5  # five days each side, clipped
    ticks = [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "tick x-tick"]
    assert ticks and ticks[0] == "2026-12-02"  # local midnights in Berlin


def test_time_ticks_are_local_hours_for_a_short_range() -> None:
    start = datetime(2026, 12, 1, 10, 15, tzinfo=UTC)

    ticks = time_ticks(start, start + timedelta(hours=12), "Asia/Kolkata")

    assert ticks[0] == (datetime(2026, 12, 1, 11, tzinfo=UTC), "12-01 16:30")
    assert all(start <= moment < start + timedelta(hours=12) for moment, _ in ticks)


def _rect(group: ET.Element) -> ET.Element:
    rect = group.find(f"{SVG}rect")
    assert rect is not None
    return rect
