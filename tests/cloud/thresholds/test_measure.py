"""What a threshold observes in a draft's lines (pure): usage lines only, exact, >= reaches."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from cloud.domain import LineKind, RatedLine
from cloud.thresholds.measure import ThresholdSpec, crossings, observed
from cloud.thresholds.models import Measure

D = Decimal
START, MID, END = (datetime(2026, 11, day, tzinfo=UTC) for day in (1, 16, 30))


def line(
    kind: LineKind,
    amount: str,
    metric: str | None = None,
    quantity: str | None = None,
    start: datetime = START,
) -> RatedLine:
    """A rated line of one part."""
    return RatedLine(
        kind=kind,
        description=kind.value,
        amount=D(amount),
        part_start=start,
        part_end=END,
        metric=metric,
        quantity=None if quantity is None else D(quantity),
    )


LINES = [
    line(LineKind.BASE_FEE, "10.00"),
    line(LineKind.USAGE, "2.30", "kwh", "13"),
    line(LineKind.USAGE, "1.00", "stream_hours", "2"),
    line(LineKind.MINIMUM, "5.00"),
    # a second plan version from mid-month: kwh again, in its own part
    line(LineKind.USAGE, "0.40", "kwh", "2", start=MID),
]


def test_units_sum_the_metric_over_every_part() -> None:
    assert observed(LINES, metric_id="kwh", measure=Measure.UNITS) == D("15")
    assert observed(LINES, metric_id="stream_hours", measure=Measure.UNITS) == D("2")


def test_amounts_count_usage_lines_only_never_the_base_fee_or_minimum() -> None:
    assert observed(LINES, metric_id="kwh", measure=Measure.AMOUNT) == D("2.70")
    assert observed(LINES, metric_id=None, measure=Measure.AMOUNT) == D("3.70")
    assert observed([line(LineKind.BASE_FEE, "10.00")], metric_id=None, measure=Measure.AMOUNT) == 0


def test_a_metric_with_no_line_observes_zero() -> None:
    assert observed(LINES, metric_id="water", measure=Measure.UNITS) == 0


def test_units_without_a_metric_is_a_bug() -> None:
    with pytest.raises(ValueError, match="needs a metric"):
        observed(LINES, metric_id=None, measure=Measure.UNITS)


def test_sums_are_exact_beyond_the_default_context() -> None:
    big = [line(LineKind.USAGE, "0", "kwh", "1" * 29 + ".000000000000000000000000000001")] * 2
    assert observed(big, metric_id="kwh", measure=Measure.UNITS) == D(
        "2" * 29 + ".000000000000000000000000000002"
    )


def test_reached_means_at_least_the_value() -> None:
    specs = [
        ThresholdSpec(1, "a", "kwh", Measure.UNITS, D("15")),  # exactly reached
        ThresholdSpec(2, "a", "kwh", Measure.UNITS, D("15.0000001")),  # just short
        ThresholdSpec(3, "a", None, Measure.AMOUNT, D("3.70")),
        ThresholdSpec(4, "a", None, Measure.AMOUNT, D("3.71")),
    ]
    found = crossings(specs, LINES)
    assert [(c.threshold.id, c.observed) for c in found] == [(1, D("15")), (3, D("3.70"))]
