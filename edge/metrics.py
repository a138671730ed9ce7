"""The agent's Prometheus metrics, read from its own state when scraped (no second bookkeeping).

    tollgate_edge_outbox_backlog_events           committed events not yet acked by the collector
    tollgate_edge_outbox_oldest_age_seconds       age of the oldest unsent event (0 when none)
    tollgate_edge_outbox_used_bytes               bytes the outbox counts against its budget
    tollgate_edge_outbox_budget_bytes             the budget (`[gateway] outbox_budget_mb`)
    tollgate_edge_outbox_dead_letters             batches the collector refused, kept
    tollgate_edge_events_total{device}            events committed to the outbox since the start
    tollgate_edge_device_errors_total{device,kind}  the device health counters: failures by error
                                                  type (DeviceTimeout, FrameError, bad_reading, ...)
                                                  and protocol counts (bad_checksum, crc_error, ...)
    tollgate_edge_cloud_link_up                   1 when the last exchange with the collector
                                                  (batch or heartbeat) succeeded, else 0
    tollgate_edge_batches_sent_total              batches the collector acknowledged since the start
    tollgate_edge_alarm{code,severity,device}     1 per alarm raised now (the page's banners,
                                                  `status`'s first lines); every code of
                                                  edge.alarms.ALARM_CODES not raised is 0

Nothing here counts anything: `SnapshotCollector` turns one status snapshot (`Agent.status`,
the same document the diagnostics page and `status.json` show, taken when Prometheus scrapes)
into metric families. The diagnostics app imports this module on the first scrape only, so an
agent nobody scrapes never loads prometheus-client.
"""

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

from edge.alarms import ALARM_CODES

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""What `render` writes: the classic text format, version 0.0.4 (read by Prometheus 2 and 3)."""


class SnapshotCollector(Collector):
    """The agent's metric families from one status document and the events committed per device."""

    def __init__(self, status: Mapping[str, Any], events: Mapping[str, int]) -> None:
        self._status = status
        self._events = events

    def collect(self) -> Iterator[Metric]:
        """Every agent metric, from the snapshot."""
        yield from _outbox(self._status["outbox"])
        yield _events(self._status["devices"], self._events)
        yield _device_errors(self._status["devices"])
        link = self._status["cloud_link"]
        yield GaugeMetricFamily(
            "tollgate_edge_cloud_link_up",
            "1 when the last exchange with the collector (batch or heartbeat) succeeded, else 0.",
            value=link_up(link, self._status.get("heartbeat")),
        )
        yield CounterMetricFamily(
            "tollgate_edge_batches_sent",
            "Batches the collector acknowledged since the agent started.",
            value=link["batches_sent"],
        )
        yield _alarms(self._status["alarms"])


def render(status: Mapping[str, Any], events: Mapping[str, int]) -> bytes:
    """The process's default metrics (process_*, python_*) and the agent's, in text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(status, events))
    return generate_latest(REGISTRY) + generate_latest(registry)


def link_up(link: Mapping[str, Any], heartbeat: Mapping[str, Any] | None) -> int:
    """1 when the most recent exchange with the collector succeeded; 0 after a failure or before
    any exchange (a fresh agent has not shown that it can reach the collector yet)."""
    beats = heartbeat or {}
    success = _latest(link.get("last_success"), beats.get("last_sent_at"))
    failure = _latest(link.get("last_error_at"), beats.get("last_error_at"))
    return int(success is not None and (failure is None or success > failure))


def _outbox(outbox: Mapping[str, Any]) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "tollgate_edge_outbox_backlog_events",
        "Events committed to the outbox and not yet acknowledged by the collector.",
        value=outbox["backlog"],
    )
    yield GaugeMetricFamily(
        "tollgate_edge_outbox_oldest_age_seconds",
        "Age of the oldest unsent event by its occurred_at (0 when nothing waits).",
        value=_age_seconds(outbox.get("oldest_unsent")),
    )
    yield GaugeMetricFamily(
        "tollgate_edge_outbox_used_bytes",
        "Bytes the outbox counts against its budget.",
        value=outbox["used_bytes"],
    )
    yield GaugeMetricFamily(
        "tollgate_edge_outbox_budget_bytes",
        "The outbox budget: past it new readings wait (or unlogged ones are written anyway).",
        value=outbox["budget_bytes"],
    )
    yield GaugeMetricFamily(
        "tollgate_edge_outbox_dead_letters",
        "Batches the collector refused, kept in the outbox with its answer.",
        value=outbox["dead_letters"],
    )


def _events(devices: list[Mapping[str, Any]], events: Mapping[str, int]) -> Metric:
    family = CounterMetricFamily(
        "tollgate_edge_events",
        "Events committed to the outbox since the agent started, by device.",
        labels=["device"],
    )
    # Every configured device appears, at 0 until its first event: a silent device is visible.
    for device_id in sorted({d["device_id"] for d in devices} | set(events)):
        family.add_metric([device_id], events.get(device_id, 0))
    return family


def _device_errors(devices: list[Mapping[str, Any]]) -> Metric:
    family = CounterMetricFamily(
        "tollgate_edge_device_errors",
        "Device errors since the agent started, by device and kind: failed connects and polls "
        "by error type, refused readings (bad_reading) and protocol counts of the driver.",
        labels=["device", "kind"],
    )
    for device in devices:
        kinds: dict[str, int] = {}
        for kind, count in [*device["errors"].items(), *device["protocol"].items()]:
            kinds[kind] = kinds.get(kind, 0) + count
        for kind in sorted(kinds):
            family.add_metric([device["device_id"], kind], kinds[kind])
    return family


def _alarms(alarms: list[Mapping[str, Any]]) -> Metric:
    family = GaugeMetricFamily(
        "tollgate_edge_alarm",
        "1 for each alarm the agent raises now (the diagnostics page's banners); 0 for an alarm "
        "code not raised, so an alert rule and a dashboard find every code.",
        labels=["code", "severity", "device"],
    )
    for alarm in alarms:
        family.add_metric([alarm["code"], alarm["severity"], alarm.get("device_id") or ""], 1)
    for code in sorted(set(ALARM_CODES) - {alarm["code"] for alarm in alarms}):
        family.add_metric([code, "", ""], 0)
    return family


def _age_seconds(moment: str | None) -> float:
    if not moment:
        return 0.0
    return max(0.0, (datetime.now(UTC) - datetime.fromisoformat(moment)).total_seconds())


def _latest(*moments: Any) -> datetime | None:
    present = [_moment(m) for m in moments if m is not None]
    return max(present) if present else None


def _moment(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
