"""The detection rules, pure: a stored batch and what the catalog says about its devices in,
findings out (no I/O; `cloud.quality.detection` loads the context and files the findings).

Per batch, each rule yields at most one finding per (kind, device): the sink folds repeated
findings into one incident per subject, and the evidence names the batch and the seqs.

- clock_skew: an event that occurred more than `clock_skew_after` after it was received (no
  clock is allowed to run ahead of the collector's), or, when `clock_behind_after` is set, a
  `synced` event received more than that after it occurred. Off by default: an outbox backlog
  delivers synced events late by design, and late_arrival names the late ones billing cares for.
- counter_reset / counter_wrap: the edge normalizer's `attrs.reset` / `attrs.wrapped`.
- unbound_usage: a usage event (not a status report) of a catalog device that no binding covers
  at its `occurred_at`. Devices the catalog does not know are not billing's yet and are left
  out (direct sources file them as unknown_device; the fleet twins list every device seen).
- late_arrival: a usage event of a bound device received more than `late_arrival_after`
  (forwarding latency, 1 h by default) after its billing month ended in the account's time
  zone: from then on the invoice run may have drafted that month (the invoices table is above
  this layer, so the rule uses the run's own period boundary, `period_of`).
- unbilled_usage: a usage event of a bound device that no metric of the plan version in force
  at `occurred_at` counts, by the rating's own matching (`cloud.rating.metrics.measure` over
  the one event, for event metrics), or, for session metrics, an event of a profile the metric
  covers whose name starts or ends that profile's sessions.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cloud.domain import BillableEvent, MetricSource, MetricSpec, PlanVersion
from cloud.incidents.models import IncidentKind
from cloud.rating.metrics import measure
from cloud.rating.periods import period_of
from shared.canonical import format_decimal
from shared.events import ClockState, UsageEvent

MAX_READINGS = 5  # readings quoted per finding


@dataclass(frozen=True, slots=True)
class Thresholds:
    """How far event time and receipt may drift apart before it is an incident."""

    clock_skew_after: timedelta = timedelta(minutes=5)
    clock_behind_after: timedelta | None = None
    late_arrival_after: timedelta = timedelta(hours=1)  # after the month's end


@dataclass(frozen=True, slots=True)
class BoundSpan:
    """One binding of a device: billed to `account_id` over [valid_from, valid_to)."""

    account_id: str
    valid_from: datetime
    valid_to: datetime | None

    def covers(self, at: datetime) -> bool:
        """Whether `at` falls within the binding."""
        return self.valid_from <= at and (self.valid_to is None or at < self.valid_to)


@dataclass(frozen=True, slots=True)
class ProfileSessions:
    """Which event names start and end a profile's sessions."""

    start_on: frozenset[str]
    end_on: frozenset[str]


@dataclass(frozen=True, slots=True)
class AccountTerms:
    """An account's time zone and its plan's versions (oldest first), with their metrics."""

    time_zone: str
    versions: tuple[PlanVersion, ...] = ()

    def version_at(self, at: datetime) -> PlanVersion | None:
        """The plan version in force at `at`, if any."""
        current = None
        for version in self.versions:
            if version.effective_from <= at:
                current = version
        return current


@dataclass(frozen=True, slots=True)
class Catalog:
    """What the catalog says about the devices of one batch."""

    profile_of: Mapping[str, str] = field(default_factory=dict)  # catalog devices only
    bindings: Mapping[str, Sequence[BoundSpan]] = field(default_factory=dict)
    accounts: Mapping[str, AccountTerms] = field(default_factory=dict)
    metrics: Mapping[str, MetricSpec] = field(default_factory=dict)
    sessions: Mapping[str, ProfileSessions] = field(default_factory=dict)  # by profile id


@dataclass(frozen=True, slots=True)
class Finding:
    """One incident to file: of a device of the batch's gateway."""

    kind: IncidentKind
    device_id: str
    detail: str
    seqs: tuple[int, ...]
    readings: tuple[dict[str, Any], ...]

    def evidence(self, batch_id: int) -> dict[str, Any]:
        """The incident evidence: the batch, its seqs and a few readings."""
        return {"batch_id": batch_id, "seqs": list(self.seqs), "readings": list(self.readings)}


def find(
    events: Sequence[UsageEvent],
    *,
    received_at: datetime,
    catalog: Catalog,
    thresholds: Thresholds,
) -> list[Finding]:
    """Every finding of every rule over the batch's stored events."""
    flagged: dict[tuple[IncidentKind, str], list[tuple[UsageEvent, str]]] = {}
    usage_of = _usage_classifier(catalog)
    for event in events:
        for kind, why in _event_findings(event, received_at, catalog, thresholds, usage_of):
            flagged.setdefault((kind, event.device_id), []).append((event, why))
    return [_finding(kind, device, hits) for (kind, device), hits in flagged.items()]


def _event_findings(
    event: UsageEvent,
    received_at: datetime,
    catalog: Catalog,
    thresholds: Thresholds,
    usage_of: "_UsageClassifier",
) -> Iterable[tuple[IncidentKind, str]]:
    ahead = event.occurred_at - received_at
    if ahead > thresholds.clock_skew_after:
        yield IncidentKind.CLOCK_SKEW, f"occurred {_span(ahead)} after it was received"
    behind = thresholds.clock_behind_after
    if behind is not None and event.clock is ClockState.SYNCED and -ahead > behind:
        yield IncidentKind.CLOCK_SKEW, f"synced clock, received {_span(-ahead)} after it occurred"
    attrs = event.attrs or {}
    if attrs.get("reset") is True:
        yield IncidentKind.COUNTER_RESET, "counter reset"
    if attrs.get("wrapped") is True:
        yield IncidentKind.COUNTER_WRAP, "counter wrapped"
    if event.device_id not in catalog.profile_of or attrs.get("report") is not None:
        return  # not a catalog device, or a status report (not usage)
    span = next(
        (b for b in catalog.bindings.get(event.device_id, ()) if b.covers(event.occurred_at)), None
    )
    if span is None:
        yield IncidentKind.UNBOUND_USAGE, "no binding covers it"
        return
    account = catalog.accounts.get(span.account_id)
    if account is None:
        return
    period = period_of(event.occurred_at, account.time_zone)
    if received_at >= period.end + thresholds.late_arrival_after:
        yield (
            IncidentKind.LATE_ARRIVAL,
            f"received after {period.label} ended for {span.account_id}",
        )
    version = account.version_at(event.occurred_at)
    if version is None:
        yield IncidentKind.UNBILLED_USAGE, f"account {span.account_id} has no plan version in force"
    elif not usage_of(event, version):
        yield (
            IncidentKind.UNBILLED_USAGE,
            (
                f"no metric of plan {version.plan_id} v{version.version} counts "
                f"{event.name!r} "
                + ("without a unit" if event.unit is None else f"in {event.unit!r}")
            ),
        )


class _UsageClassifier:
    """Whether a plan version counts an event; memoized by what the matching looks at."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._seen: dict[tuple[Any, ...], bool] = {}

    def __call__(self, event: UsageEvent, version: PlanVersion) -> bool:
        profile = self._catalog.profile_of[event.device_id]
        key = (
            version.plan_id,
            version.version,
            profile,
            event.name,
            event.unit,
            event.quantity is None,
        )
        known = self._seen.get(key)
        if known is None:
            known = self._seen[key] = self._counts(event, version, profile)
        return known

    def _counts(self, event: UsageEvent, version: PlanVersion, profile: str) -> bool:
        billable = BillableEvent(
            gateway_id=event.gateway_id,
            seq=event.seq,
            device_id=event.device_id,
            channel=event.channel,
            name=event.name,
            kind=event.kind.value,
            quantity=event.quantity,
            unit=event.unit,
            occurred_at=event.occurred_at,
        )
        rules = self._catalog.sessions.get(profile)
        for charge in version.charges:
            spec = self._catalog.metrics.get(charge.metric)
            if spec is None:
                continue
            if spec.source is MetricSource.EVENTS:
                counted = measure(
                    spec, pieces=(), events=[billable], profile_of={event.device_id: profile}
                )
                if counted.events:
                    return True
            elif rules is not None and (not spec.profiles or profile in spec.profiles):
                starts = event.name in rules.start_on and (
                    not spec.names or event.name in spec.names
                )
                if starts or event.name in rules.end_on:
                    return True
        return False


def _usage_classifier(catalog: Catalog) -> _UsageClassifier:
    return _UsageClassifier(catalog)


def _finding(kind: IncidentKind, device_id: str, hits: list[tuple[UsageEvent, str]]) -> Finding:
    first_event, why = hits[0]
    detail = f"{len(hits)} event(s) of {device_id}: {why}" + (
        f" (seq {first_event.seq})"
        if len(hits) == 1
        else f" (seqs {first_event.seq}..{hits[-1][0].seq})"
    )
    return Finding(
        kind=kind,
        device_id=device_id,
        detail=detail,
        seqs=tuple(event.seq for event, _ in hits),
        readings=tuple(_reading(event) for event, _ in hits[:MAX_READINGS]),
    )


def _reading(event: UsageEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "name": event.name,
        "quantity": None if event.quantity is None else format_decimal(event.quantity),
        "unit": event.unit,
        "occurred_at": event.occurred_at.isoformat(),
        "clock": event.clock.value,
        "attrs": dict(event.attrs or {}),
    }


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"
