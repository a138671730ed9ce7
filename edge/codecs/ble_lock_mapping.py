"""Lock log entries -> usage events: the pure mapping under the BLE lock driver.

An entry's time is the lock's clock. Battery locks drift (tens of ppm, seconds per week), so
the driver measures the offset `lock clock - gateway clock` when it connects and the event's
`occurred_at` is the lock time corrected by it; `clock` is `device` (the time came from the
device) and `attrs` keep the raw lock time and the offset applied, so the correction can be
audited or undone.

A door lock opening is an `activation` and closing a `deactivation` (a session is the time the
door stood open); a waste lock's `closed` entry carries the weighed pour as its quantity.
"""

from datetime import UTC, datetime, timedelta

from edge.codecs.ble_lock import LogEntry
from shared.canonical import format_time
from shared.events import ClockState, EventDraft, EventKind

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_KINDS = {"opened": EventKind.ACTIVATION, "closed": EventKind.DEACTIVATION}


def lock_time(milliseconds: int) -> datetime:
    """A lock's millisecond timestamp as a UTC datetime (integer arithmetic: no float)."""
    return EPOCH + timedelta(milliseconds=milliseconds)


def dedupe_key(lock_id: int, entry: LogEntry) -> str:
    """What makes an entry unique across redeliveries: the lock, its seq and its own time.

    The time is part of it so that a lock whose seqs restart after a reset (new battery,
    factory reset) does not have its new entries taken for old ones.
    """
    return f"ble-lock:{lock_id}:{entry.seq}:{entry.lock_time_ms}"


def lock_event(
    device_id: str,
    lock_id: int,
    entry: LogEntry,
    *,
    clock_offset_ms: int,
    observed_at: datetime,
) -> EventDraft:
    """The usage event for one log entry of the lock `lock_id`, configured as `device_id`."""
    measured = entry.unit is not None
    return EventDraft(
        device_id=device_id,
        name=entry.action,
        kind=_KINDS[entry.action],
        quantity=entry.amount if measured else None,
        unit=entry.unit,
        occurred_at=lock_time(entry.lock_time_ms - clock_offset_ms),
        observed_at=observed_at,
        clock=ClockState.DEVICE,
        attrs={
            "lock_id": lock_id,
            "lock_seq": entry.seq,
            "badge": entry.badge,
            "lock_time": format_time(lock_time(entry.lock_time_ms)),
            "clock_offset_ms": clock_offset_ms,
        },
    )
