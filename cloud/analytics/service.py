"""An account's usage of one metric, bucketed by local day, hour or month in its time zone.

The usage is exactly what billing reads: `load_period_usage` loads each billing month the range
touches (bound events by `occurred_at`, current session pieces clipped to period and bindings),
and every bucket is measured by `cloud.usage.buckets.measure_buckets` over the events inside it
and the pieces clipped to it. Buckets never cross a local month, so each is measured from one
month's usage. A local day with a DST change is 23 or 25 hours long.
"""

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog.accounts import get_account
from cloud.catalog.metrics import get_metric, metric_spec
from cloud.errors import InvalidParameters
from cloud.rating.periods import day_buckets, next_period, period_of
from cloud.usage.buckets import Bucket, UsagePoint, measure_buckets
from cloud.usage.loader import load_period_usage


class Granularity(enum.StrEnum):
    """How wide a bucket is, in the account's local calendar."""

    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


MAX_BUCKETS = {Granularity.HOUR: 24 * 62, Granularity.DAY: 400, Granularity.MONTH: 120}
"""The most buckets one request may ask for (about two months of hours, 400 days, ten years)."""


@dataclass(frozen=True, slots=True)
class UsageSeries:
    """An account's metric over a range, one point per local bucket."""

    account_id: str
    metric: str
    time_zone: str
    granularity: Granularity
    points: list[UsagePoint]


async def account_usage(
    *,
    session: AsyncSession,
    account_id: str,
    metric_id: str,
    granularity: str,
    start: datetime | None,
    end: datetime | None,
    as_of: datetime,
) -> UsageSeries:
    """The metric per bucket over [start, end) (default: the current local month).

    `AccountNotFound`, `MetricNotFound`; `InvalidParameters` for a bad granularity, a naive or
    empty range, or more than `MAX_BUCKETS` buckets.
    """
    width = check_granularity(granularity)
    account = await get_account(session=session, account_id=account_id)
    spec = metric_spec(await get_metric(session=session, metric_id=metric_id))
    start, end = _range(start, end, account.time_zone, as_of)
    buckets = bucket_bounds(start, end, account.time_zone, width)
    label = period_of(start, account.time_zone).label
    points: list[UsagePoint] = []
    while buckets[len(points) :]:
        usage = await load_period_usage(
            session=session, accounts=[account], period_label=label, as_of=as_of
        )
        period, month = usage[account.id]
        inside = [b for b in buckets[len(points) :] if b[0] < period.end]
        points.extend(measure_buckets(spec, month, inside))
        label = next_period(period).label
    return UsageSeries(account.id, spec.id, account.time_zone, width, points)


def check_granularity(granularity: str) -> Granularity:
    """`hour`, `day` or `month`; `InvalidParameters` otherwise."""
    try:
        return Granularity(granularity)
    except ValueError:
        raise InvalidParameters(
            f"granularity {granularity!r}: one of hour, day, month",
            detail={"granularity": granularity},
        ) from None


def bucket_bounds(
    start: datetime, end: datetime, time_zone: str, granularity: Granularity
) -> list[Bucket]:
    """The local calendar buckets touching [start, end), clipped to it, as UTC intervals."""
    _check_count(start, end, granularity)
    if granularity is Granularity.DAY:
        return day_buckets(start, end, time_zone)
    if granularity is Granularity.MONTH:
        return _month_buckets(start, end, time_zone)
    return _hour_buckets(start, end, time_zone)


def _range(
    start: datetime | None, end: datetime | None, time_zone: str, as_of: datetime
) -> tuple[datetime, datetime]:
    month = period_of(as_of, time_zone)
    start = month.start if start is None else start
    end = month.end if end is None else end
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidParameters(
            "start and end need a UTC offset (RFC 3339, e.g. 2026-10-25T00:00:00+02:00)",
            detail={"start": start.isoformat(), "end": end.isoformat()},
        )
    if end <= start:
        raise InvalidParameters(
            "end must be after start",
            detail={"start": start.isoformat(), "end": end.isoformat()},
        )
    return start.astimezone(UTC), end.astimezone(UTC)


def _check_count(start: datetime, end: datetime, granularity: Granularity) -> None:
    # An upper estimate in whole UTC hours/days/months: refuse before building anything.
    span = end - start
    estimate = {
        Granularity.HOUR: span / timedelta(hours=1),
        Granularity.DAY: span / timedelta(days=1),
        Granularity.MONTH: span / timedelta(days=28),
    }[granularity]
    limit = MAX_BUCKETS[granularity]
    if estimate > limit + 1:
        raise InvalidParameters(
            f"the range holds more than {limit} {granularity} buckets: ask for a shorter range",
            detail={"granularity": granularity.value, "limit": limit},
        )


def _month_buckets(start: datetime, end: datetime, time_zone: str) -> list[Bucket]:
    buckets = []
    period = period_of(start, time_zone)
    while period.start < end:
        buckets.append((max(period.start, start), min(period.end, end)))
        period = next_period(period)
    return buckets


def _hour_buckets(start: datetime, end: datetime, time_zone: str) -> list[Bucket]:
    """Local clock hours: UTC hours shifted by the zone's sub-hour offset (e.g. +05:30)."""
    local = start.astimezone(ZoneInfo(time_zone))
    lower = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    buckets = []
    while lower < end:
        upper = lower + timedelta(hours=1)
        buckets.append((max(lower, start), min(upper, end)))
        lower = upper
    return buckets
