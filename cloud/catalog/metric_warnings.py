"""Warnings for a metric that matches none of its devices' recent events.

A metric filters events (or sessions) by profile, name and unit; one word wrong
(`unit = "openings"` where the events say `count`) bills 0 without an error. When a metric is
created, corrected or loaded, and when a plan version charges it, the event names and units the
metric's devices sent in the last `WARN_DAYS` days are read (one bounded query: distinct
(name, unit) pairs, at most `MAX_PAIRS`) and a warning says what the metric asks for and what
the events carry. No events at all is no warning (a new installation has none yet).
"""

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog.metrics import metric_spec
from cloud.catalog.models import Device, DeviceProfile, Metric
from cloud.catalog.plan_terms import PlanTerms
from cloud.domain import MetricSource, MetricSpec
from cloud.ingest.models import StoredEvent

WARN_DAYS = 30
MAX_PAIRS = 200  # distinct (name, unit) pairs read per metric
SHOWN = 8  # names or units quoted in one warning


async def metric_warnings(
    *, session: AsyncSession, spec: MetricSpec, now: datetime, days: int = WARN_DAYS
) -> list[str]:
    """One warning if the metric's devices sent events lately and none of them matches it."""
    pairs = await _recent_pairs(session, spec, since=now - timedelta(days=days))
    if not pairs or any(metric_matches_pair(spec, name, unit) for name, unit in pairs):
        return []
    if spec.source is MetricSource.SESSIONS:
        return [await _session_warning(session, spec, pairs, days)]
    return [_event_warning(spec, pairs, days)]


async def charge_warnings(
    *, session: AsyncSession, terms: PlanTerms, where: str, now: datetime
) -> list[str]:
    """The metric warnings of each charge of a version, naming the version (`where`, e.g.
    "plan basic version 2") and the charge."""
    found = []
    for charge in terms.charges:
        row = await session.get(Metric, charge.metric)
        if row is None:
            continue
        for text in await metric_warnings(session=session, spec=metric_spec(row), now=now):
            found.append(f"{where}, charge {charge.metric}: {text}")
    return found


async def _recent_pairs(
    session: AsyncSession, spec: MetricSpec, *, since: datetime
) -> list[tuple[str, str | None]]:
    return [(name, unit) for name, unit, _ in await recent_pair_counts(session, spec, since=since)]


async def recent_pair_counts(
    session: AsyncSession, spec: MetricSpec, *, since: datetime
) -> list[tuple[str, str | None, int]]:
    """The (name, unit) pairs the metric's devices sent since `since` (catalogued devices, of
    its profiles if it names any), with the events of each; at most `MAX_PAIRS` pairs."""
    devices = select(Device.id)
    if spec.profiles:
        devices = devices.where(Device.profile_id.in_(sorted(spec.profiles)))
    query = (
        select(StoredEvent.name, StoredEvent.unit, func.count())
        .where(StoredEvent.received_at >= since, StoredEvent.device_id.in_(devices))
        .group_by(StoredEvent.name, StoredEvent.unit)
        .limit(MAX_PAIRS)
    )
    return [(name, unit, int(count)) for name, unit, count in await session.execute(query)]


def metric_matches_pair(spec: MetricSpec, name: str, unit: str | None) -> bool:
    """Whether an event of this name and unit can count for the metric (a session metric: its
    names are the start events' names; the profile's rule decides the rest)."""
    if spec.names and name not in spec.names:
        return False
    return spec.source is MetricSource.SESSIONS or spec.unit is None or unit == spec.unit


def _event_warning(spec: MetricSpec, pairs: Sequence[tuple[str, str | None]], days: int) -> str:
    asks = []
    if spec.names:
        asks.append(f"names {_quoted(spec.names)}")
    if spec.unit is not None:
        asks.append(f"unit {spec.unit!r}")
    names = _quoted({name for name, _ in pairs})
    units = _quoted({unit for _, unit in pairs if unit is not None}) or "none"
    return (
        f"metric {spec.id} matches none of the events its devices sent in the last {days} days: "
        f"it asks for {' and '.join(asks)}, they carry names {names} and units {units}"
    )


async def _session_warning(
    session: AsyncSession, spec: MetricSpec, pairs: Sequence[tuple[str, str | None]], days: int
) -> str:
    query = select(DeviceProfile.start_on)
    if spec.profiles:
        query = query.where(DeviceProfile.id.in_(sorted(spec.profiles)))
    starts = {name for start_on in await session.scalars(query) for name in start_on}
    sent = {name for name, _ in pairs}
    return (
        f"metric {spec.id} matches no session its devices had in the last {days} days: it asks "
        f"for sessions started by {_quoted(spec.names)}, the profiles start them on "
        f"{_quoted(starts) or 'nothing'} and the devices sent {_quoted(sent)}"
    )


def _quoted(values: set[str] | frozenset[str]) -> str:
    shown = sorted(values)
    text = ", ".join(repr(value) for value in shown[:SHOWN])
    return text + (f" (+{len(shown) - SHOWN} more)" if len(shown) > SHOWN else "")
