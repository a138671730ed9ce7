"""Folding a batch's events into a device twin: pure, so every rule is tested without a database.

The twin keeps, per device, the newest of each thing by the event's own time (`occurred_at`),
not by arrival: a late event (an outbox flushed after an outage) never overwrites a newer state.

- channels: activation / deactivation events (`EventKind`) set a channel "active" / "inactive".
  The channel is the event's `channel` (an IT-100 partition), else the state point it came
  from (`attrs.point`, a Modbus coil), else "" (one channel, as sessions read it). `since` is
  when it entered that state: a repeated activation (a panel's status report) keeps it.
- points: every event with a quantity, by event name: the last quantity, unit and time.
- counter: counter events (`attrs.raw` and `attrs.previous`, see edge/normalize.py), by name:
  the last raw value and the times of the last wrap and reset (`attrs.wrapped`, `attrs.reset`).
- clock_offset_ms: a lock's measured offset (`attrs.clock_offset_ms`, ble_lock_mapping.py).

Every map is bounded (MAX_ENTRIES, the newest kept), so a gateway inventing names cannot grow
a twin without limit.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from shared.canonical import format_decimal, format_time
from shared.events import EventKind, UsageEvent

ACTIVE = "active"
INACTIVE = "inactive"
MAX_ENTRIES = 64  # channels, points and counters kept per device
MAX_CHANNEL = 64  # characters of a channel name taken from attrs.point
_STATES = {EventKind.ACTIVATION: ACTIVE, EventKind.DEACTIVATION: INACTIVE}


@dataclass(frozen=True, slots=True)
class TwinValues:
    """What the change feed keeps of a device (the heartbeat keeps the rest of the twin)."""

    gateway_id: str
    last_occurred_at: datetime | None = None
    last_received_at: datetime | None = None
    last_seq: int | None = None
    channels: dict[str, Any] = field(default_factory=dict)
    points: dict[str, Any] = field(default_factory=dict)
    counter: dict[str, Any] = field(default_factory=dict)
    clock_offset_ms: int | None = None
    clock_offset_at: str | None = None  # not stored: only orders offsets within one fold

    @property
    def state(self) -> str | None:
        """ "active" if any channel is, "inactive" if every channel is, None with no channel."""
        if not self.channels:
            return None
        states = {entry.get("state") for entry in self.channels.values()}
        return ACTIVE if ACTIVE in states else INACTIVE


def fold_events(
    twin: TwinValues, events: Sequence[UsageEvent], *, gateway_id: str, received_at: datetime
) -> TwinValues:
    """`twin` after `events` (one device's, in seq order) arrived through `gateway_id`."""
    channels = dict(twin.channels)
    points = dict(twin.points)
    counter = dict(twin.counter)
    offset, offset_at = twin.clock_offset_ms, twin.clock_offset_at
    last_occurred = twin.last_occurred_at
    for event in events:
        at = format_time(event.occurred_at)
        if last_occurred is None or event.occurred_at > last_occurred:
            last_occurred = event.occurred_at
        state = _STATES.get(event.kind)
        if state is not None:
            _note_state(channels, channel_of(event), state, event.name, at)
        if event.quantity is not None:
            _note_point(points, event, at)
        _note_counter(counter, event, at)
        measured = event.attrs.get("clock_offset_ms")
        fresher = offset_at is None or at >= offset_at
        if isinstance(measured, int) and not isinstance(measured, bool) and fresher:
            offset, offset_at = measured, at
    return replace(
        twin,
        gateway_id=gateway_id,
        last_occurred_at=last_occurred,
        last_received_at=received_at,
        last_seq=events[-1].seq if events else twin.last_seq,
        channels=_bounded(channels, "since"),
        points=_bounded(points, "at"),
        counter=_bounded(counter, "at"),
        clock_offset_ms=offset,
        clock_offset_at=offset_at,
    )


def channel_of(event: UsageEvent) -> str:
    """The channel a state event sets (see the module docstring)."""
    if event.channel:
        return event.channel
    point = event.attrs.get("point")
    if isinstance(point, str) and len(point) <= MAX_CHANNEL:
        return point
    return ""


def group_by_device(events: Iterable[UsageEvent]) -> dict[str, list[UsageEvent]]:
    """The events per device, each list in the given (seq) order; devices sorted by id."""
    grouped: dict[str, list[UsageEvent]] = {}
    for event in events:
        grouped.setdefault(event.device_id, []).append(event)
    return dict(sorted(grouped.items()))


def _note_state(channels: dict[str, Any], channel: str, state: str, name: str, at: str) -> None:
    known = channels.get(channel)
    if known is not None and known.get("at", known.get("since", "")) > at:
        return  # a late event: the stored state is newer
    since = known["since"] if known is not None and known.get("state") == state else at
    channels[channel] = {"state": state, "since": since, "event": name, "at": at}


def _note_point(points: dict[str, Any], event: UsageEvent, at: str) -> None:
    known = points.get(event.name)
    if known is not None and known.get("at", "") > at:
        return
    assert event.quantity is not None
    points[event.name] = {
        "quantity": format_decimal(event.quantity),
        "unit": event.unit,
        "at": at,
    }


def _note_counter(counter: dict[str, Any], event: UsageEvent, at: str) -> None:
    raw = event.attrs.get("raw")
    if not _is_int(raw) or "previous" not in event.attrs:
        return
    known = dict(counter.get(event.name) or {})
    if known.get("at", "") <= at:
        known["raw"], known["at"] = raw, at
    for flag, key in (("wrapped", "last_wrap_at"), ("reset", "last_reset_at")):
        if event.attrs.get(flag) is True and (known.get(key) or "") < at:
            known[key] = at
    known.setdefault("last_wrap_at", None)
    known.setdefault("last_reset_at", None)
    counter[event.name] = known


def _bounded(entries: dict[str, Any], time_key: str) -> dict[str, Any]:
    if len(entries) <= MAX_ENTRIES:
        return entries
    newest = sorted(entries.items(), key=lambda item: str(item[1].get(time_key, "")), reverse=True)
    return dict(sorted(newest[:MAX_ENTRIES]))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
