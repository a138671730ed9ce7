"""The twin fold (pure): channel states, last values, counters, lock offsets, bounds."""

from datetime import UTC, datetime, timedelta

from cloud.fleet.twin_state import MAX_ENTRIES, TwinValues, channel_of, fold_events
from shared.events import EventDraft, EventKind, UsageEvent
from tests.cloud.fleet.conftest import event
from tests.support.batches import T0, chain_events

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)
A, D, ACT, MEAS = (
    EventKind.ACTIVATION,
    EventKind.DEACTIVATION,
    EventKind.ACTIVITY,
    EventKind.MEASUREMENT,
)


def sealed(*drafts: EventDraft) -> list[UsageEvent]:
    return chain_events(drafts, gateway_id="gw")


def fold(events: list[UsageEvent], twin: TwinValues | None = None) -> TwinValues:
    return fold_events(
        twin or TwinValues(gateway_id="gw"), events, gateway_id="gw", received_at=NOW
    )


def at(n: int) -> str:
    return (T0 + timedelta(seconds=n)).isoformat(timespec="microseconds").replace("+00:00", "Z")


def test_channel_states_keep_since_on_repeats_and_ignore_late_events() -> None:
    twin = fold(
        sealed(
            event(1, device_id="p", name="armed", kind=A, channel="1"),
            event(2, device_id="p", name="armed", kind=A, channel="2"),
            event(3, device_id="p", name="disarmed", kind=D, channel="2"),
            event(4, device_id="p", name="armed", kind=A, channel="1"),  # a status report
        )
    )
    assert twin.channels["1"] == {"state": "active", "since": at(1), "event": "armed", "at": at(4)}
    assert twin.channels["2"]["state"] == "inactive" and twin.channels["2"]["since"] == at(3)
    assert twin.state == "active"

    late = fold(sealed(event(0, device_id="p", name="disarmed", kind=D, channel="1")), twin)
    assert late.channels["1"]["state"] == "active"  # older than the stored state
    assert late.last_occurred_at == T0 + timedelta(seconds=4)

    off = fold(sealed(event(9, device_id="p", name="disarmed", kind=D, channel="1")), twin)
    assert off.state == "inactive" and off.channels["1"]["since"] == at(9)


def test_channel_comes_from_the_event_then_the_state_point() -> None:
    with_channel, with_point, bare = sealed(
        event(1, device_id="p", name="on", kind=A, channel="zone-3", attrs={"point": "pump"}),
        event(2, device_id="p", name="on", kind=A, attrs={"point": "pump"}),
        event(3, device_id="p", name="on", kind=A, attrs={"point": 7}),
    )
    assert [channel_of(e) for e in (with_channel, with_point, bare)] == ["zone-3", "pump", ""]
    assert TwinValues(gateway_id="gw").state is None


def test_points_keep_the_newest_quantity_as_decimal_text() -> None:
    twin = fold(
        sealed(
            event(2, device_id="m", name="power", kind=MEAS, quantity="2.250", unit="kW"),
            event(1, device_id="m", name="power", kind=MEAS, quantity="1.5", unit="kW"),
            event(3, device_id="m", name="poured", kind=D, quantity="12.5", unit="kg"),
        )
    )
    assert twin.points["power"] == {"quantity": "2.25", "unit": "kW", "at": at(2)}
    assert twin.points["poured"]["quantity"] == "12.5"
    assert twin.channels[""]["state"] == "inactive"


def test_counters_track_raw_value_wraps_and_resets() -> None:
    def counter(n: int, raw: int, previous: int, **flags: bool) -> EventDraft:
        attrs = {"table": "holding", "address": 4, "previous": previous, "raw": raw, **flags}
        return event(n, device_id="c", name="energy", kind=ACT, quantity="1", attrs=attrs)

    first = fold(sealed(counter(1, 100, 95)))
    assert first.counter["energy"] == {
        "raw": 100,
        "at": at(1),
        "last_wrap_at": None,
        "last_reset_at": None,
    }
    later = fold(
        sealed(counter(2, 3, 65530, wrapped=True), counter(3, 2, 50000, reset=True)), first
    )
    assert later.counter["energy"] == {
        "raw": 2,
        "at": at(3),
        "last_wrap_at": at(2),
        "last_reset_at": at(3),
    }
    # A register reading with attrs.raw but no `previous` is not a counter.
    plain = fold(
        sealed(event(4, device_id="c", name="temp", kind=MEAS, quantity="1", attrs={"raw": 7}))
    )
    assert plain.counter == {}


def test_lock_clock_offset_is_the_newest_measured() -> None:
    twin = fold(
        sealed(
            event(2, device_id="l", name="opened", kind=A, attrs={"clock_offset_ms": -1500}),
            event(1, device_id="l", name="closed", kind=D, attrs={"clock_offset_ms": 900}),
            event(3, device_id="l", name="closed", kind=D, attrs={"clock_offset_ms": True}),
        )
    )
    assert twin.clock_offset_ms == -1500


def test_seen_times_seq_and_gateway_follow_the_batch() -> None:
    events = sealed(
        event(5, device_id="p", name="x", kind=ACT), event(3, device_id="p", name="x", kind=ACT)
    )
    twin = fold_events(TwinValues(gateway_id="old-gw"), events, gateway_id="gw", received_at=NOW)
    assert twin.gateway_id == "gw" and twin.last_seq == 2 and twin.last_received_at == NOW
    assert twin.last_occurred_at == T0 + timedelta(seconds=5)


def test_maps_are_bounded_keeping_the_newest() -> None:
    many = [
        event(n, device_id="p", name=f"gauge-{n:03}", kind=MEAS, quantity="1")
        for n in range(MAX_ENTRIES + 10)
    ]
    twin = fold(sealed(*many))
    assert len(twin.points) == MAX_ENTRIES
    assert "gauge-000" not in twin.points and f"gauge-{MAX_ENTRIES + 9:03}" in twin.points
