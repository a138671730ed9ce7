"""State transitions and gauge measurements, and `normalize_reading` dispatching on kind."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from edge.config import PointConfig
from edge.normalize import (
    GaugeTracker,
    normalize_reading,
    normalize_state,
    state_value,
)
from edge.readings import Reading
from shared.events import ClockState, EventKind

AT = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
SYNCED = ClockState.SYNCED
ARMED = PointConfig(
    name="armed", table="coil", address=0, activation="armed", deactivation="disarmed"
)
MODE = PointConfig.model_validate(
    {
        "name": "mode",
        "table": "holding",
        "address": 7,
        "type": "uint16",
        "kind": "state",
        "on_value": 5,
        "activation": "auto_on",
    }
)


def gauge(**fields: Any) -> PointConfig:
    base = {"name": "temp", "table": "input", "address": 0, "type": "int16", "kind": "gauge"}
    return PointConfig.model_validate({**base, "unit": "C", **fields})


def reading(value: Any, point: str = "armed", at: int = 0) -> Reading:
    return Reading("panel-1", point, value, AT + timedelta(seconds=at))


def test_first_state_reading_is_a_baseline() -> None:
    assert normalize_state(reading(True), ARMED, previous=None, clock=SYNCED) is None
    assert state_value(reading(True), ARMED) == 1


@pytest.mark.parametrize(
    ("previous", "value", "expected"),
    [
        (0, True, ("armed", EventKind.ACTIVATION)),
        (1, False, ("disarmed", EventKind.DEACTIVATION)),
        (1, True, None),
        (0, False, None),
    ],
)
def test_state_transitions(
    previous: int, value: bool, expected: tuple[str, EventKind] | None
) -> None:
    draft = normalize_state(reading(value), ARMED, previous=previous, clock=SYNCED)
    if expected is None:
        assert draft is None
        return
    assert draft is not None
    assert (draft.name, draft.kind, draft.quantity) == (*expected, None)
    assert draft.attrs["table"] == "coil" and draft.attrs["raw"] is value
    assert draft.occurred_at == AT


def test_register_state_is_on_only_at_on_value_and_may_have_no_deactivation() -> None:
    on = normalize_state(reading(5, "mode"), MODE, previous=0, clock=SYNCED)
    assert on is not None and on.name == "auto_on"
    assert state_value(reading(3, "mode"), MODE) == 0
    assert normalize_state(reading(3, "mode"), MODE, previous=1, clock=SYNCED) is None


def test_inverted_coil_uses_on_value_false() -> None:
    point = PointConfig(
        name="door", table="discrete", address=0, activation="door_open", on_value=False
    )  # type: ignore[arg-type]
    assert state_value(reading(False, "door"), point) == 1
    draft = normalize_state(reading(False, "door"), point, previous=0, clock=SYNCED)
    assert draft is not None and draft.name == "door_open"


def test_gauge_reports_first_then_beyond_deadband_from_last_reported() -> None:
    tracker = GaugeTracker()
    point = gauge(deadband="0.5")
    seen = []
    for at, value in enumerate(["20.0", "20.4", "20.5", "20.6", "20.1", "19.9", "21.2"]):
        draft = tracker.observe(reading(Decimal(value), "temp", at), point, clock=SYNCED)
        seen.append(None if draft is None else draft.quantity)
    # 20.5 is exactly the deadband away (not beyond); 20.6 is; 20.1 is 0.5 below 20.6 (not
    # beyond); 19.9 is.
    assert seen == [Decimal(v) if v else None for v in ["20", "", "", "20.6", "", "19.9", "21.2"]]


def test_gauge_reports_every_n_polls_even_unchanged() -> None:
    tracker = GaugeTracker()
    point = gauge(deadband="100", report_every=3)
    made = [
        tracker.observe(reading(Decimal(1), "temp", at), point, clock=SYNCED) is not None
        for at in range(7)
    ]
    assert made == [True, False, False, True, False, False, True]


def test_gauge_event_is_a_measurement_with_unit() -> None:
    draft = GaugeTracker().observe(reading(Decimal("-4.5"), "temp"), gauge(), clock=SYNCED)
    assert draft is not None
    assert (draft.name, draft.kind, draft.quantity, draft.unit) == (
        "temp",
        EventKind.MEASUREMENT,
        Decimal("-4.5"),
        "C",
    )


def test_gauges_are_tracked_per_device() -> None:
    tracker = GaugeTracker()
    point = gauge()
    assert tracker.observe(reading(Decimal(1), "temp"), point, clock=SYNCED)
    other = Reading("panel-2", "temp", Decimal(1), AT)
    assert tracker.observe(other, point, clock=SYNCED) is not None
    assert tracker.observe(reading(Decimal(1), "temp", 1), point, clock=SYNCED) is None


def test_normalize_reading_dispatches_and_says_what_to_store() -> None:
    tracker = GaugeTracker()
    counter = PointConfig.model_validate(
        {"name": "litres", "table": "input", "address": 0, "type": "uint16", "scale": "0.5"}
    )
    made = normalize_reading(
        reading(10, "litres"), counter, previous=4, clock=SYNCED, gauges=tracker
    )
    assert made.stored == 10
    assert made.draft is not None and made.draft.quantity == Decimal("3.0")
    state = normalize_reading(reading(True), ARMED, previous=0, clock=SYNCED, gauges=tracker)
    assert state.stored == 1 and state.draft is not None and state.draft.name == "armed"
    measured = normalize_reading(
        reading(Decimal(2), "temp"), gauge(), previous=None, clock=SYNCED, gauges=tracker
    )
    assert measured.stored is None and measured.draft is not None


def test_unscaled_counter_is_exactly_normalize_counter() -> None:
    counter = PointConfig(name="c", table="input", address=0, type="uint16")
    made = normalize_reading(
        reading(3, "c"), counter, previous=65534, clock=SYNCED, gauges=GaugeTracker()
    )
    assert made.draft is not None
    assert made.draft.quantity == Decimal(5) and made.draft.attrs["wrapped"] is True
