"""Metrics: what a plan charges for (see `cloud.domain.MetricSpec`), stored in `metrics`."""

import enum
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog.checks import check_labels, check_name, check_slug
from cloud.catalog.models import DeviceProfile, Metric
from cloud.catalog.store import get_row, insert_new
from cloud.domain import Aggregation, DurationUnit, MetricField, MetricSource, MetricSpec
from cloud.errors import InvalidBillingInput, MetricNotFound, ProfileNotFound
from cloud.rating.metrics import check_metric

EnumT = TypeVar("EnumT", bound=enum.StrEnum)


async def create_metric(
    *,
    session: AsyncSession,
    metric_id: str,
    name: str,
    source: str,
    aggregation: str,
    field: str | None = None,
    profiles: Sequence[str] = (),
    names: Sequence[str] = (),
    unit: str | None = None,
    duration_unit: str = DurationUnit.HOUR,
) -> Metric:
    """Create a metric after checking it makes sense (e.g. no `sum` of durations over events)."""
    spec = build_spec(
        metric_id=metric_id,
        source=source,
        aggregation=aggregation,
        field=field,
        profiles=profiles,
        names=names,
        unit=unit,
        duration_unit=duration_unit,
    )
    await _require_profiles(session, spec.profiles)
    row = Metric(
        id=spec.id,
        name=check_name(name),
        source=spec.source.value,
        aggregation=spec.aggregation.value,
        field=None if spec.field is None else spec.field.value,
        profiles=sorted(spec.profiles),
        names=sorted(spec.names),
        unit=spec.unit,
        duration_unit=spec.duration_unit.value,
        created_at=datetime.now(UTC),
    )
    return await insert_new(session, row, what="metric", key=row.id)


async def update_metric(
    *, session: AsyncSession, metric_id: str, changes: Mapping[str, object]
) -> Metric:
    """Change a metric's name and/or definition in place (the fields of `changes`; the others
    stay), checked like a new one. Whether an invoice used it is the caller's rule
    (`cloud.invoices.corrections`): the catalog cannot see invoices."""
    row = await get_row(
        session, Metric, metric_id, missing=MetricNotFound, what="metric", for_update=True
    )
    values = {**_definition(row), **{k: v for k, v in changes.items() if k != "name"}}
    spec = build_spec(metric_id=row.id, **values)  # type: ignore[arg-type]
    await _require_profiles(session, spec.profiles)
    if "name" in changes:
        row.name = check_name(str(changes["name"]))
    row.source, row.aggregation = spec.source.value, spec.aggregation.value
    row.field = None if spec.field is None else spec.field.value
    row.profiles, row.names = sorted(spec.profiles), sorted(spec.names)
    row.unit, row.duration_unit = spec.unit, spec.duration_unit.value
    await session.flush()
    return row


def _definition(row: Metric) -> dict[str, object]:
    """The stored metric as `build_spec` keywords."""
    return {
        "source": row.source,
        "aggregation": row.aggregation,
        "field": row.field,
        "profiles": list(row.profiles),
        "names": list(row.names),
        "unit": row.unit,
        "duration_unit": row.duration_unit,
    }


def build_spec(
    *,
    metric_id: str,
    source: str,
    aggregation: str,
    field: str | None = None,
    profiles: Sequence[str] = (),
    names: Sequence[str] = (),
    unit: str | None = None,
    duration_unit: str = DurationUnit.HOUR,
) -> MetricSpec:
    """A checked `MetricSpec` from plain values; `InvalidBillingInput` naming what is wrong."""
    spec = MetricSpec(
        id=check_slug("metric", metric_id),
        source=_member(MetricSource, source, "source"),
        aggregation=_member(Aggregation, aggregation, "aggregation"),
        field=None if field is None else _member(MetricField, field, "field"),
        profiles=frozenset(check_labels(profiles, field="profiles")),
        names=frozenset(check_labels(names, field="names")),
        unit=unit,
        duration_unit=_member(DurationUnit, duration_unit, "duration_unit"),
    )
    check_metric(spec)
    return spec


async def get_metric(*, session: AsyncSession, metric_id: str) -> Metric:
    """The metric; `MetricNotFound` otherwise."""
    return await get_row(session, Metric, metric_id, missing=MetricNotFound, what="metric")


async def list_metrics(*, session: AsyncSession) -> list[Metric]:
    """Every metric, in id order."""
    return list(await session.scalars(select(Metric).order_by(Metric.id)))


def metric_spec(row: Metric) -> MetricSpec:
    """The domain value of a stored metric."""
    return MetricSpec(
        id=row.id,
        source=MetricSource(row.source),
        aggregation=Aggregation(row.aggregation),
        field=None if row.field is None else MetricField(row.field),
        profiles=frozenset(row.profiles),
        names=frozenset(row.names),
        unit=row.unit,
        duration_unit=DurationUnit(row.duration_unit),
    )


async def metric_specs(*, session: AsyncSession) -> dict[str, MetricSpec]:
    """Every metric's domain value, by id."""
    return {row.id: metric_spec(row) for row in await list_metrics(session=session)}


async def _require_profiles(session: AsyncSession, profiles: frozenset[str]) -> None:
    """A profile filter naming no profile would silently measure nothing: refuse it."""
    if not profiles:
        return
    known = set(
        await session.scalars(select(DeviceProfile.id).where(DeviceProfile.id.in_(profiles)))
    )
    missing = sorted(profiles - known)
    if missing:
        raise ProfileNotFound(
            f"the metric filters on unknown profile(s) {', '.join(missing)}",
            detail={"profiles": missing},
        )


def _member(kind: type[EnumT], value: str, field: str) -> EnumT:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise InvalidBillingInput(
            f"invalid {field} {value!r}: one of {allowed}",
            detail={"field": field, "value": value},
        ) from None
