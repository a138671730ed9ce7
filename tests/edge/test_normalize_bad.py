"""Readings the normalizer refuses (`BadReading`) and stored values reconciled with a changed
point config (`reconcile_stored`)."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from edge.config import PointConfig
from edge.errors import BadReading
from edge.normalize import GaugeTracker, normalize_reading, reconcile_stored
from edge.readings import Reading
from shared.events import ClockState

AT = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def point(**fields: Any) -> PointConfig:
    return PointConfig.model_validate({"name": "p", "table": "holding", "address": 0, **fields})


def normalize(config: PointConfig, value: Any, previous: int | None, gauges: GaugeTracker) -> Any:
    reading = Reading("panel-1", "p", value, AT)
    return normalize_reading(
        reading, config, previous=previous, clock=ClockState.SYNCED, gauges=gauges
    )


@pytest.mark.parametrize(
    ("config", "value", "previous", "expected"),
    [
        (point(type="uint16"), 70_000, None, r"read 70000, outside 0\.\.65535"),  # even a baseline
        (point(type="uint16"), 5, 70_000, "must fit in 16 bits"),  # stored value of another type
        (point(type="uint64"), 2**63, None, r"outside 0\.\.9223372036854775807"),  # the outbox's
        (point(type="uint16"), Decimal("1.5"), 1, "expected an int"),
        (point(type="uint32", scale="1e30"), 7, 1, "more than 30 digits"),  # delta 6 * 1e30
        (point(type="float64", kind="gauge"), Decimal("1e300"), None, "more than 30 digits"),
        (point(type="float64", kind="gauge"), Decimal("1e-40"), None, "digits after the point"),
        (point(type="float64", kind="gauge"), 3, None, "expected a Decimal"),
    ],
)
def test_bad_readings_raise_bad_reading_naming_device_and_point(
    config: PointConfig, value: Any, previous: int | None, expected: str
) -> None:
    with pytest.raises(BadReading, match=expected) as caught:
        normalize(config, value, previous, GaugeTracker())
    assert str(caught.value).startswith("device 'panel-1' point 'p': bad reading ")


def test_a_refused_gauge_reading_is_not_taken_as_reported() -> None:
    gauges = GaugeTracker()
    config = point(type="float64", kind="gauge")
    with pytest.raises(BadReading):
        normalize(config, Decimal("1e300"), None, gauges)
    # The next good reading is the gauge's first report, not compared with the refused one.
    result = normalize(config, Decimal("21.5"), None, gauges)
    assert result.draft is not None and result.draft.quantity == Decimal("21.5")


COUNTER16 = point(type="uint16")
STATE = point(type="uint16", kind="state", activation="on")
GAUGE = point(type="float32", kind="gauge")


def test_stored_values_a_changed_point_cannot_have_become_baselines() -> None:
    points = {("d", "narrowed"): COUNTER16, ("d", "now_state"): STATE, ("d", "level"): GAUGE}
    points |= {("d", "fits"): COUNTER16, ("d", "state_ok"): STATE}
    stored = {
        ("d", "narrowed"): 70_000,  # was a uint32 counter
        ("d", "now_state"): 1234,  # was a counter
        ("d", "fits"): 65_535,
        ("d", "state_ok"): 1,
        ("d", "level"): 99,  # gauges read no stored value: kept as is
        ("lock-1", "lock_seq"): 2**40,  # a BLE lock's mark: not a configured point
    }
    kept, dropped = reconcile_stored(stored, points)
    assert kept == {
        ("d", "fits"): 65_535,
        ("d", "state_ok"): 1,
        ("d", "level"): 99,
        ("lock-1", "lock_seq"): 2**40,
    }
    assert [(r.point, r.stored) for r in dropped] == [("narrowed", 70_000), ("now_state", 1234)]
    assert dropped[0].reason == "does not fit a uint16 counter (0..65535)"
    assert dropped[1].reason == "is not a state's 0 or 1"
