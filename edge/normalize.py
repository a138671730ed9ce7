"""Readings -> event drafts. Counter readings become `activity` events carrying the delta; state
readings become `activation` / `deactivation` events on a transition; gauge readings become
`measurement` events when they move past their deadband (`normalize_reading` dispatches).

Pure and synchronous: the caller owns the last value of each counter and stores the new one in
the same outbox transaction as the event it made (DESIGN guarantee 1 and 5).

A counter that goes down either wrapped (it passed its 16/32-bit maximum) or was reset (power
cycle, replaced board). We call it a wrap when the wrapped delta is at most a quarter of the
counter's range, otherwise a reset, and count the reset's new value as usage since zero. A
reset or wrap is flagged in `attrs` so the cloud can report it.

A reading the normalizer cannot turn into an event (a counter value that does not fit its type
or the outbox, a quantity beyond the event contract's digits, a value of the wrong kind) raises
`BadReading`; the agent counts it in that device's health and goes on with the other readings.
The stored last value of a point whose type or kind changed in the config is reconciled once at
start (`reconcile_stored`): a value the point can no longer have becomes a fresh baseline.
"""

from dataclasses import dataclass
from decimal import Decimal

from edge.config import PointConfig
from edge.errors import BadReading
from edge.readings import Reading
from shared.bounds import INT64_MAX, check_quantity
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
    if not isinstance(reading.value, int) or isinstance(reading.value, bool):
        raise TypeError(f"counter {point.name!r}: expected an int, got {reading.value!r}")
    if not counter_fits(reading.value, point):
        # Checked before the baseline too: a baseline that does not fit would break every
        # later reading (and the outbox stores counters as SQLite's signed 64-bit INTEGER).
        raise ValueError(
            f"counter {point.name!r} read {reading.value}, outside 0..{counter_limit(point)}"
        )
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


def counter_limit(point: PointConfig) -> int:
    """The largest value a counter point can have: its type's, or the outbox's 2**63 - 1."""
    return min((1 << point.bits) - 1, INT64_MAX)


def counter_fits(value: int, point: PointConfig) -> bool:
    """Whether `value` can be a reading (and a stored last value) of the counter `point`."""
    return 0 <= value <= counter_limit(point)


def state_value(reading: Reading, point: PointConfig) -> int:
    """A state reading as the outbox stores it: 1 when the raw value is `on_value`, else 0."""
    return int(reading.value == point.on_value)


def normalize_state(
    reading: Reading, point: PointConfig, *, previous: int | None, clock: ClockState
) -> EventDraft | None:
    """The activation or deactivation event of a state point, or None.

    `previous` is the stored 0/1 of the last reading (`state_value`); None means this is the
    first reading, a baseline that makes no event. A point without a `deactivation` name makes
    no event when it turns off.
    """
    current = state_value(reading, point)
    if previous is None or current == previous:
        return None
    name = point.activation if current else point.deactivation
    if name is None:
        return None
    return EventDraft(
        device_id=reading.device_id,
        name=name,
        kind=EventKind.ACTIVATION if current else EventKind.DEACTIVATION,
        occurred_at=reading.observed_at,
        observed_at=reading.observed_at,
        clock=clock,
        attrs={
            "table": point.table,
            "address": point.address,
            "point": point.name,
            "raw": _attr(reading.value),
        },
    )


@dataclass(slots=True)
class _Gauge:
    reported: Decimal
    polls: int = 0


class GaugeTracker:
    """Decides which gauge readings become `measurement` events (kept in memory only).

    A gauge is reported on its first reading, then whenever it has moved more than `deadband`
    from the last reported value, and every `report_every` polls even when it has not (so the
    cloud sees it is alive). After a restart the first reading is reported again: measurements
    are samples, not usage deltas, so a repeated one double-counts nothing.
    """

    def __init__(self) -> None:
        self._gauges: dict[tuple[str, str], _Gauge] = {}

    def observe(
        self, reading: Reading, point: PointConfig, *, clock: ClockState
    ) -> EventDraft | None:
        """The measurement event for this reading, or None when it is not worth reporting."""
        if not isinstance(reading.value, Decimal):
            raise TypeError(f"gauge {point.name!r}: expected a Decimal, got {reading.value!r}")
        check_quantity(reading.value)  # before it is tracked: a refused value is not "reported"
        key = (reading.device_id, point.name)
        gauge = self._gauges.get(key)
        if gauge is not None:
            gauge.polls += 1
            moved = abs(reading.value - gauge.reported) > point.deadband
            due = point.report_every is not None and gauge.polls >= point.report_every
            if not moved and not due:
                return None
        self._gauges[key] = _Gauge(reported=reading.value)
        return _measurement(reading, point, clock)

    def forget(self, device_id: str) -> None:
        """Drop what is known of a device's gauges (its next readings are reported afresh)."""
        for key in [key for key in self._gauges if key[0] == device_id]:
            del self._gauges[key]


def _measurement(reading: Reading, point: PointConfig, clock: ClockState) -> EventDraft:
    assert isinstance(reading.value, Decimal)
    return EventDraft(
        device_id=reading.device_id,
        name=point.name,
        kind=EventKind.MEASUREMENT,
        quantity=reading.value,
        unit=point.unit,
        occurred_at=reading.observed_at,
        observed_at=reading.observed_at,
        clock=clock,
        attrs={"table": point.table, "address": point.address, "raw": _attr(reading.raw)},
    )


@dataclass(frozen=True, slots=True)
class Normalized:
    """What one reading made: maybe an event, and the integer to store as the point's last
    value in the same outbox transaction (None for gauges, which store nothing)."""

    draft: EventDraft | None
    stored: int | None


def normalize_reading(
    reading: Reading,
    point: PointConfig,
    *,
    previous: int | None,
    clock: ClockState,
    gauges: GaugeTracker,
) -> Normalized:
    """Normalize any Modbus reading by its point's kind; the one call the agent needs.

    - counter: `normalize_counter` (baseline, deltas, wraps, resets), its quantity times
      `point.scale`; stores the raw counter value.
    - state: `normalize_state`; stores 0/1 (`state_value`).
    - gauge: `gauges.observe` (deadband, report_every); stores nothing.

    `previous` is the stored last value of the point (None if there is none yet). A reading
    that cannot become an event raises `BadReading` naming the device and point; nothing of it
    is tracked, so the caller keeps the previous stored value.
    """
    try:
        return _normalize(reading, point, previous=previous, clock=clock, gauges=gauges)
    except (ValueError, TypeError, ArithmeticError) as exc:  # pydantic's errors are ValueErrors
        raise BadReading(
            f"device {reading.device_id!r} point {point.name!r}: bad reading "
            f"{_attr(reading.value)!r}: {exc}"
        ) from exc


def _normalize(
    reading: Reading,
    point: PointConfig,
    *,
    previous: int | None,
    clock: ClockState,
    gauges: GaugeTracker,
) -> Normalized:
    if point.kind == "state":
        draft = normalize_state(reading, point, previous=previous, clock=clock)
        return Normalized(draft, state_value(reading, point))
    if point.kind == "gauge":
        return Normalized(gauges.observe(reading, point, clock=clock), None)
    if isinstance(reading.value, Decimal | bool):
        raise TypeError(f"counter {point.name!r}: expected an int, got {reading.value!r}")
    draft = normalize_counter(reading, point, previous=previous, clock=clock)
    if draft is not None and point.scale != 1 and draft.quantity is not None:
        quantity = check_quantity(draft.quantity * point.scale)
        draft = EventDraft(**{**dict(draft), "quantity": quantity})
    return Normalized(draft, reading.value)


@dataclass(frozen=True, slots=True)
class Rebaselined:
    """A stored last value the point's current config cannot have: it becomes a baseline."""

    device_id: str
    point: str
    stored: int
    reason: str


def reconcile_stored(
    stored: dict[tuple[str, str], int], points: dict[tuple[str, str], PointConfig]
) -> tuple[dict[tuple[str, str], int], list[Rebaselined]]:
    """The stored last values still valid for `points`, and those dropped (fresh baselines).

    A counter's stored value must fit its (possibly changed) type, a state's must be 0 or 1:
    after a config change from uint32 to uint16, a stored 70000 would make every reading fail,
    and a stored counter value under a state point would make a bogus transition. Values of
    points the config does not list as counter or state (gauges, lock and MQTT marks) are kept
    as they are.
    """
    kept: dict[tuple[str, str], int] = {}
    dropped: list[Rebaselined] = []
    for key, value in stored.items():
        reason = _stored_mismatch(value, points.get(key))
        if reason is None:
            kept[key] = value
        else:
            dropped.append(Rebaselined(key[0], key[1], value, reason))
    return kept, dropped


def _stored_mismatch(value: int, point: PointConfig | None) -> str | None:
    if point is None:
        return None
    if point.kind == "counter" and not counter_fits(value, point):
        return f"does not fit a {point.type} counter (0..{counter_limit(point)})"
    if point.kind == "state" and value not in (0, 1):
        return "is not a state's 0 or 1"
    return None


def _attr(value: object) -> str | int | bool | None:
    # attrs hold JSON scalars; a float or Decimal goes as its string so nothing is rounded.
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)
