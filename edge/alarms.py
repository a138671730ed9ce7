"""The alarms of one status snapshot: what a technician must see first, derived, never stored.

`derive_alarms` is pure: the same snapshot and `now` give the same alarms. Each alarm is an
`Alarm` (code, severity "alarm" or "warn", one sentence with the numbers, since when, and the
device it is about, if any). The rules, with their thresholds below:

- `cloud_link_down` (alarm): batches failed `LINK_FAILURES` times in a row; or batches wait,
  the last attempt failed and no batch got through for more than `LINK_SILENCE`; or heartbeats
  failed `LINK_FAILURES` times in a row and no batch got through for more than `LINK_SILENCE`
  (an idle gateway sends no batches, only heartbeats). Since the first failure after the last
  success; the message says for how long, the last error and its age.
- `outbox_full` (alarm): the writer found the outbox over its budget (sources that keep their
  own log are paused), or it uses at least 100 % of it.
- `outbox_near_budget` (warn): at least `OUTBOX_NEAR_PERCENT` % of the budget is used.
- `device_errors` (warn; alarm after `DEVICE_FAILURES` failures in a row): one per device whose
  last poll or connect failed, or that counted a failure, a refused reading or a protocol error
  (not a routine count: `edge.health.ROUTINE_COUNTS`) within `DEVICE_RECENT`. A device that
  answers its polls but counted 95 bad checksums ten minutes ago is not "ok".
- `clock_unsynced` (warn): the kernel says the clock is not synchronized; events carry the
  gateway's time and invoices bill by event time.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from edge.forwarder import LinkHealth
from edge.health import DeviceHealth
from edge.heartbeat import HeartbeatHealth
from edge.outbox import OutboxStats

LINK_FAILURES = 3
LINK_SILENCE = timedelta(minutes=5)
OUTBOX_NEAR_PERCENT = 80
DEVICE_RECENT = timedelta(minutes=15)
DEVICE_FAILURES = 3
MB = 1024 * 1024  # as `[gateway] outbox_budget_mb` counts them

Severity = Literal["alarm", "warn"]

ALARM_CODES = (
    "cloud_link_down",
    "outbox_full",
    "outbox_near_budget",
    "device_errors",
    "clock_unsynced",
)
"""Every alarm `derive_alarms` can raise (the metrics list each, 0 when it is not raised)."""


@dataclass(frozen=True)
class Alarm:
    """One alarm: what, how bad, one sentence with the numbers, since when, about which device."""

    code: str
    severity: Severity
    message: str
    since: datetime | None = None
    device_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view (`since` as RFC 3339 text)."""
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "since": self.since.isoformat() if self.since else None,
            "device_id": self.device_id,
        }


def derive_alarms(
    *,
    now: datetime,
    outbox: OutboxStats,
    outbox_full: bool,
    link: LinkHealth,
    heartbeat: HeartbeatHealth | None,
    devices: Iterable[DeviceHealth],
    clock: str | None,
) -> list[Alarm]:
    """Every alarm of this snapshot, the worst first (alarms before warnings)."""
    found = [
        cloud_link_alarm(now=now, link=link, heartbeat=heartbeat, backlog=outbox.backlog),
        outbox_alarm(outbox, full=outbox_full),
        *(device_alarm(now=now, health=health) for health in devices),
        clock_alarm(clock),
    ]
    alarms = [alarm for alarm in found if alarm is not None]
    return sorted(alarms, key=lambda alarm: alarm.severity != "alarm")


def cloud_link_alarm(
    *, now: datetime, link: LinkHealth, heartbeat: HeartbeatHealth | None, backlog: int
) -> Alarm | None:
    """`cloud_link_down` when batches or heartbeats keep failing (rules in the module doc)."""
    silent = link.last_success is None or now - link.last_success > LINK_SILENCE
    batches_down = link.consecutive_failures >= LINK_FAILURES or (
        backlog > 0 and link.consecutive_failures > 0 and silent
    )
    beats_down = (
        heartbeat is not None and heartbeat.consecutive_failures >= LINK_FAILURES and silent
    )
    failing: list[tuple[str, datetime | None, str | None, datetime | None]] = []
    if batches_down:
        failing.append(
            (
                f"{link.consecutive_failures} batch attempts failed in a row",
                link.failing_since,
                link.last_error,
                link.last_error_at,
            )
        )
    if beats_down and heartbeat is not None:
        failing.append(
            (
                f"{heartbeat.consecutive_failures} heartbeats failed in a row",
                heartbeat.failing_since,
                heartbeat.last_error,
                heartbeat.last_error_at,
            )
        )
    if not failing:
        return None
    tries = "; ".join(what for what, _, _, _ in failing)
    since = min((start for _, start, _, _ in failing if start is not None), default=None)
    # The most recent error of the failing exchanges is the one worth reading.
    _, _, error, error_at = max(failing, key=lambda item: (item[3] is not None, item[3] or now))
    down_for = f"for {format_duration(now - since)}" if since else "since the start"
    return Alarm(
        code="cloud_link_down",
        severity="alarm",
        message=(
            f"Cloud link down {down_for}: {tries}; last error {format_age(now, error_at)}: "
            f"{error or 'unknown'}. {backlog} events wait in the outbox."
        ),
        since=since,
    )


def outbox_alarm(outbox: OutboxStats, *, full: bool) -> Alarm | None:
    """`outbox_full` over the budget (or when the writer found it full), `outbox_near_budget`
    from `OUTBOX_NEAR_PERCENT` of it (integer arithmetic: exact at the threshold)."""
    used, budget = outbox.used_bytes, outbox.budget_bytes
    sizes = (
        f"{format_mb(outbox.used_bytes)} of {format_mb(outbox.budget_bytes)} used "
        f"({used / budget if budget else 0:.0%}), {outbox.backlog} events unsent"
    )
    if full or (budget and used >= budget):
        return Alarm(
            code="outbox_full",
            severity="alarm",
            message=(
                f"Outbox full: {sizes}; sources that keep their own log are paused until the "
                "cloud link drains it."
            ),
        )
    if budget and 100 * used >= OUTBOX_NEAR_PERCENT * budget:
        return Alarm(
            code="outbox_near_budget",
            severity="warn",
            message=(
                f"Outbox near its budget: {sizes}; when full, sources that keep their own log "
                "pause."
            ),
        )
    return None


def device_alarm(*, now: datetime, health: DeviceHealth) -> Alarm | None:
    """`device_errors` for a device failing now or with trouble counted within `DEVICE_RECENT`."""
    last = health.last_trouble_at()
    recent = last is not None and now - last <= DEVICE_RECENT
    if health.consecutive_failures == 0 and not recent:
        return None
    counts = {**health.errors, **health.protocol}
    shown = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()) if n) or "none counted"
    if health.consecutive_failures:
        what = f"{health.consecutive_failures} failures in a row"
    else:
        what = f"answers, but counted errors within {format_duration(DEVICE_RECENT)}"
    latest = health.last_error if last == health.last_error_at else health.last_protocol_error
    if last == health.last_bad_reading_at and last != health.last_error_at:
        latest = f"bad reading: {health.last_bad_reading}"
    return Alarm(
        code="device_errors",
        severity="alarm" if health.consecutive_failures >= DEVICE_FAILURES else "warn",
        message=(
            f"Device {health.device_id}: {what}; last {format_age(now, last)}: "
            f"{latest or 'unknown'}; since start: {shown}."
        ),
        since=last,
        device_id=health.device_id,
    )


def clock_alarm(clock: str | None) -> Alarm | None:
    """`clock_unsynced` when the kernel says the clock is not synchronized."""
    if clock != "unsynced":
        return None
    return Alarm(
        code="clock_unsynced",
        severity="warn",
        message=(
            "Clock not synchronized (no NTP): event times may be off, and invoices bill by "
            "event time, so usage could land in the wrong billing period until the clock syncs."
        ),
    )


def format_mb(n: int) -> str:
    """Bytes as MB with one decimal: 67108864 -> "64.0 MB"."""
    return f"{n / MB:.1f} MB"


def format_duration(span: timedelta) -> str:
    """A span as a technician says it: "40 s", "12 min", "3.5 h", "2.0 d"."""
    seconds = max(0.0, span.total_seconds())
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def format_age(now: datetime, then: datetime | str | None) -> str:
    """How long ago: "3 min ago", "never" for None (RFC 3339 text or a datetime)."""
    if then is None:
        return "never"
    stamp = datetime.fromisoformat(then) if isinstance(then, str) else then
    return f"{format_duration(now - stamp)} ago"
