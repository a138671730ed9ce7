"""The alarm rules of edge.alarms, each at its threshold: one below does not fire, at it fires.

Pure: the health objects are built by hand (what the forwarder, heartbeat and drivers record),
with a fixed `now`; nothing to mock."""

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from edge.alarms import (
    DEVICE_FAILURES,
    DEVICE_RECENT,
    LINK_FAILURES,
    LINK_SILENCE,
    MB,
    OUTBOX_NEAR_PERCENT,
    Alarm,
    derive_alarms,
    format_duration,
)
from edge.forwarder import LinkHealth
from edge.health import DeviceHealth
from edge.heartbeat import HeartbeatHealth
from edge.outbox import OutboxStats

NOW = datetime(2026, 12, 7, 14, 30, tzinfo=UTC)
REFUSED = "ConnectError: [Errno 111] Connection refused"
BUDGET = 64 * MB
NEAR = -(-BUDGET * OUTBOX_NEAR_PERCENT // 100)  # the first byte count at 80 % (rounded up)


def stats(*, backlog: int = 0, used: int = 0) -> OutboxStats:
    return OutboxStats(
        last_seq=backlog,
        acked_seq=0,
        backlog=backlog,
        oldest_unsent=None,
        used_bytes=used,
        file_bytes=used,
        budget_bytes=BUDGET,
        synced=True,
        dead_letters=0,
    )


def failing_link(failures: int, *, since: timedelta, success: datetime | None = None) -> LinkHealth:
    return LinkHealth(
        last_success=success,
        last_error=REFUSED,
        last_error_at=NOW - timedelta(seconds=20),
        consecutive_failures=failures,
        failing_since=NOW - since,
    )


def alarms(
    *,
    outbox: OutboxStats | None = None,
    outbox_full: bool = False,
    link: LinkHealth | None = None,
    heartbeat: HeartbeatHealth | None = None,
    devices: tuple[DeviceHealth, ...] = (),
    clock: str | None = "synced",
) -> list[Alarm]:
    return derive_alarms(
        now=NOW,
        outbox=outbox or stats(),
        outbox_full=outbox_full,
        link=link or LinkHealth(),
        heartbeat=heartbeat,
        devices=devices,
        clock=clock,
    )


def codes(found: list[Alarm]) -> list[str]:
    return [alarm.code for alarm in found]


def test_a_healthy_snapshot_has_no_alarms() -> None:
    healthy = LinkHealth(last_success=NOW - timedelta(seconds=3))
    assert alarms(link=healthy, heartbeat=HeartbeatHealth(sent=4)) == []


def test_the_link_is_down_at_the_third_failure_in_a_row() -> None:
    below = failing_link(LINK_FAILURES - 1, since=timedelta(seconds=30), success=NOW)
    assert alarms(link=below, outbox=stats(backlog=5)) == []

    at = failing_link(LINK_FAILURES, since=timedelta(minutes=12), success=NOW)
    [alarm] = alarms(link=at, outbox=stats(backlog=37))
    assert alarm.code == "cloud_link_down" and alarm.severity == "alarm"
    assert alarm.since == NOW - timedelta(minutes=12)
    assert alarm.message == (
        "Cloud link down for 12 min: 3 batch attempts failed in a row; last error 20 s ago: "
        f"{REFUSED}. 37 events wait in the outbox."
    )


def test_the_link_is_down_after_five_minutes_without_success_while_events_wait() -> None:
    # One failure only (a long retry backoff), but nothing got through for longer than M.
    just = failing_link(1, since=LINK_SILENCE, success=NOW - LINK_SILENCE)
    assert alarms(link=just, outbox=stats(backlog=3)) == []
    past = failing_link(1, since=LINK_SILENCE, success=NOW - LINK_SILENCE - timedelta(seconds=1))
    assert codes(alarms(link=past, outbox=stats(backlog=3))) == ["cloud_link_down"]
    # Nothing waits: the silence is an idle gateway, not a down link.
    assert alarms(link=past, outbox=stats(backlog=0)) == []


def test_an_idle_gateway_whose_heartbeats_fail_has_its_link_down() -> None:
    quiet = LinkHealth(last_success=NOW - timedelta(hours=2))
    beats = HeartbeatHealth(
        failed=LINK_FAILURES - 1,
        consecutive_failures=LINK_FAILURES - 1,
        last_error=REFUSED,
        last_error_at=NOW - timedelta(seconds=5),
        failing_since=NOW - timedelta(minutes=2),
    )
    assert alarms(link=quiet, heartbeat=beats) == []

    beats.consecutive_failures = LINK_FAILURES
    beats.failing_since = NOW - timedelta(minutes=3)
    [alarm] = alarms(link=quiet, heartbeat=beats)
    assert alarm.message.startswith("Cloud link down for 3 min: 3 heartbeats failed in a row")
    assert f"last error 5 s ago: {REFUSED}" in alarm.message
    # Batches got through a minute ago: the link works, only the heartbeats fail.
    assert alarms(link=LinkHealth(last_success=NOW - timedelta(minutes=1)), heartbeat=beats) == []


@pytest.mark.parametrize(
    ("used", "expected"),
    [
        (NEAR - 1, []),
        (NEAR, [("outbox_near_budget", "warn")]),
        (BUDGET - 1, [("outbox_near_budget", "warn")]),
        (BUDGET, [("outbox_full", "alarm")]),
    ],
)
def test_the_outbox_warns_from_80_percent_and_alarms_when_full(
    used: int, expected: list[tuple[str, str]]
) -> None:
    found = alarms(outbox=stats(used=used, backlog=1000))
    assert [(alarm.code, alarm.severity) for alarm in found] == expected


def test_the_outbox_message_is_in_mb_and_a_full_writer_is_an_alarm_below_the_budget() -> None:
    [near] = alarms(outbox=stats(used=int(54.4 * MB), backlog=12345))
    assert near.message.startswith("Outbox near its budget: 54.4 MB of 64.0 MB used (85%), 12345")
    [full] = alarms(outbox=stats(used=10 * MB), outbox_full=True)
    assert full.code == "outbox_full"
    assert "sources that keep their own log are paused" in full.message


def test_a_device_with_errors_counted_recently_is_not_ok() -> None:
    panel = DeviceHealth(device_id="it100-1", driver="it100", address="/dev/ttyUSB0", state="ok")
    panel.errors = Counter({"DeviceUnreachable": 114})
    panel.protocol = Counter({"bad_checksum": 95, "ignored_frames": 3})
    panel.last_error = "DeviceUnreachable: cable pulled"
    panel.last_error_at = NOW - timedelta(hours=1)
    panel.last_protocol_error = "bad_checksum"
    panel.last_protocol_error_at = NOW - DEVICE_RECENT - timedelta(seconds=1)
    assert alarms(devices=(panel,)) == []  # the counts are old news

    panel.last_protocol_error_at = NOW - DEVICE_RECENT
    [alarm] = alarms(devices=(panel,))
    assert (alarm.code, alarm.severity, alarm.device_id) == ("device_errors", "warn", "it100-1")
    assert alarm.message == (
        "Device it100-1: answers, but counted errors within 15 min; last 15 min ago: "
        "bad_checksum; since start: DeviceUnreachable 114, bad_checksum 95, ignored_frames 3."
    )


def test_routine_counts_are_not_errors() -> None:
    broker_device = DeviceHealth(device_id="meter", driver="mqtt", address="t/#", state="ok")
    for kind in ("retained", "duplicate", "ignored_frames", "unmatched", "resent"):
        broker_device.count(kind)
    assert broker_device.last_trouble_at() is None
    broker_device.count("bad_checksum")
    assert broker_device.last_trouble_at() is not None


def test_a_failing_device_warns_at_once_and_alarms_at_the_third_failure() -> None:
    device = DeviceHealth(device_id="panel-1", driver="modbus", address="tcp://10.0.0.5:502")
    device.record_failure(TimeoutError("no answer"))

    def judged(*, after: timedelta) -> list[Alarm]:
        return derive_alarms(
            now=datetime.now(UTC) + after,
            outbox=stats(),
            outbox_full=False,
            link=LinkHealth(),
            heartbeat=None,
            devices=[device],
            clock="synced",
        )

    # Long after its last failure it still fails (no poll answered since): consecutive_failures.
    [alarm] = judged(after=timedelta(days=1))
    assert alarm.severity == "warn" and "1 failures in a row" in alarm.message
    assert "TimeoutError: no answer" in alarm.message
    for _ in range(DEVICE_FAILURES - 1):
        device.record_failure(TimeoutError("no answer"))
    assert [(a.code, a.severity) for a in judged(after=timedelta(0))] == [
        ("device_errors", "alarm")
    ]
    device.record_success([])
    assert codes(judged(after=timedelta(0))) == ["device_errors"]  # answers, failed just now
    assert judged(after=DEVICE_RECENT + timedelta(seconds=1)) == []


def test_an_unsynced_clock_says_what_it_means_for_billing() -> None:
    assert alarms(clock="synced") == [] and alarms(clock=None) == []
    [alarm] = alarms(clock="unsynced")
    assert (alarm.code, alarm.severity) == ("clock_unsynced", "warn")
    assert "invoices bill by event time" in alarm.message
    assert "wrong billing period until the clock syncs" in alarm.message


def test_alarms_come_before_warnings_and_serialize_to_json() -> None:
    found = alarms(
        clock="unsynced",
        link=failing_link(5, since=timedelta(minutes=2), success=None),
    )
    assert codes(found) == ["cloud_link_down", "clock_unsynced"]
    assert found[0].as_dict() == {
        "code": "cloud_link_down",
        "severity": "alarm",
        "message": found[0].message,
        "since": (NOW - timedelta(minutes=2)).isoformat(),
        "device_id": None,
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (89, "89 s"),
        (90, "2 min"),
        (720, "12 min"),
        (5400, "1.5 h"),
        (2 * 86400, "2.0 d"),
    ],
)
def test_durations_read_as_a_technician_says_them(seconds: int, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text
