"""Readings -> event drafts. Counter readings become `activity` events carrying the delta.

Pure and synchronous: the caller owns the last value of each counter and stores the new one in
the same outbox transaction as the event it made (DESIGN guarantee 1 and 5).

A counter that goes down either wrapped (it passed its 16/32-bit maximum) or was reset (power
cycle, replaced board). We call it a wrap when the wrapped delta is at most a quarter of the
counter's range, otherwise a reset, and count the reset's new value as usage since zero. A
reset or wrap is flagged in `attrs` so the cloud can report it.
"""

from dataclasses import dataclass
from decimal import Decimal

from edge.config import PointConfig
from edge.readings import Reading
from shared.events import ClockState, EventDraft, EventKind

WRAP_FRACTION = 4


@dataclass(frozen=True, slots=True)
class CounterDelta:
    """How far a counter moved between two readings."""

    delta: int
    wrapped: bool = False
    reset: bool = False


def count_delta(previous: int, current: int, *, bits: int) -> CounterDelta:
    """The advance from `previous` to `current` for an unsigned counter of `bits` width."""
    modulus = 1 << bits
    if not 0 <= current < modulus or not 0 <= previous < modulus:
        raise ValueError(f"counter values must fit in {bits} bits: {previous} -> {current}")
    if current >= previous:
        return CounterDelta(current - previous)
    wrapped = current + modulus - previous
    if wrapped <= modulus // WRAP_FRACTION:
        return CounterDelta(wrapped, wrapped=True)
    return CounterDelta(current, reset=True)


def normalize_counter(
    reading: Reading, point: PointConfig, *, previous: int | None, clock: ClockState
) -> EventDraft | None:
    """The event for a counter reading, or None for a first reading (baseline) or no change.

    A reset always makes an event, even when the counter is read at exactly 0 (quantity 0), so
    the cloud learns of every reset.
    """
    if previous is None:
        return None
    moved = count_delta(previous, reading.value, bits=point.bits)
    if moved.delta == 0 and not moved.reset:
        return None
    attrs: dict[str, str | int | bool | None] = {
        "table": point.table,
        "address": point.address,
        "previous": previous,
        "raw": reading.value,
    }
    if moved.wrapped:
        attrs["wrapped"] = True
    if moved.reset:
        attrs["reset"] = True
    return EventDraft(
        device_id=reading.device_id,
        name=point.name,
        kind=EventKind.ACTIVITY,
        quantity=Decimal(moved.delta),
        unit=point.unit,
        occurred_at=reading.observed_at,
        observed_at=reading.observed_at,
        clock=clock,
        attrs=attrs,
    )
