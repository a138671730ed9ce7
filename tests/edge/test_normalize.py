"""Counter deltas: plain advances, 16/32-bit wrap-around and device resets."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.config import PointConfig
from edge.normalize import CounterDelta, count_delta, normalize_counter
from edge.readings import Reading
from shared.events import ClockState, EventKind


@pytest.mark.parametrize(
    ("previous", "current", "bits", "expected"),
    [
        (0, 0, 16, CounterDelta(0)),
        (10, 15, 16, CounterDelta(5)),
        (65530, 4, 16, CounterDelta(10, wrapped=True)),  # wrapped past 65535
        (65535, 0, 16, CounterDelta(1, wrapped=True)),
        (49152, 0, 16, CounterDelta(16384, wrapped=True)),  # exactly a quarter of the range
        (49151, 0, 16, CounterDelta(0, reset=True)),  # one past: a reset to zero
        (500, 20, 16, CounterDelta(20, reset=True)),  # power cycle, then 20 counts
        (2**32 - 3, 2, 32, CounterDelta(5, wrapped=True)),
        (1_000_000, 7, 32, CounterDelta(7, reset=True)),
        (65530, 4, 32, CounterDelta(4, reset=True)),  # a 32-bit counter does not wrap there
    ],
)
def test_count_delta(previous: int, current: int, bits: int, expected: CounterDelta) -> None:
    assert count_delta(previous, current, bits=bits) == expected


def test_count_delta_refuses_values_wider_than_the_counter() -> None:
    with pytest.raises(ValueError, match="16 bits"):
        count_delta(1, 70000, bits=16)


@given(start=st.integers(0, 2**16 - 1), steps=st.lists(st.integers(0, 2**14), max_size=40))
def test_sum_of_deltas_equals_total_advance_across_wraps(start: int, steps: list[int]) -> None:
    value, total = start, 0
    for step in steps:
        new = (value + step) % 2**16
        total += count_delta(value, new, bits=16).delta
        value = new
    assert total == sum(steps)


POINT = PointConfig(name="door_open", table="input", address=4, type="uint16")
AT = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def test_first_reading_is_a_baseline_and_makes_no_event() -> None:
    reading = Reading("panel-1", "door_open", 42, AT)
    assert normalize_counter(reading, POINT, previous=None, clock=ClockState.SYNCED) is None


def test_reset_is_flagged_in_attrs() -> None:
    reading = Reading("panel-1", "door_open", 3, AT)
    draft = normalize_counter(reading, POINT, previous=900, clock=ClockState.UNSYNCED)
    assert draft is not None
    assert (draft.kind, draft.quantity, draft.unit) == (EventKind.ACTIVITY, Decimal(3), "count")
    assert draft.attrs == {"table": "input", "address": 4, "previous": 900, "raw": 3, "reset": True}
    assert draft.clock is ClockState.UNSYNCED and draft.occurred_at == AT


def test_reset_read_at_zero_still_makes_an_event() -> None:
    reading = Reading("panel-1", "door_open", 0, AT)
    draft = normalize_counter(reading, POINT, previous=900, clock=ClockState.SYNCED)
    assert draft is not None and draft.quantity == 0 and draft.attrs["reset"] is True


def test_unchanged_counter_makes_no_event() -> None:
    reading = Reading("panel-1", "door_open", 900, AT)
    assert normalize_counter(reading, POINT, previous=900, clock=ClockState.SYNCED) is None
