"""What the accounts pages show, read through the services that own each number.

Search is the one query of its own (the catalog lists accounts by id page, it has no search):
id or name containing the text, case-insensitive, at most `MAX_RESULTS`. An account's page:
the account (`cloud.catalog.accounts`), its bindings (`account_bindings`), the usage of each
metric its plan charges now (`cloud.analytics.service.account_usage`, exactly what
GET /v1/accounts/{id}/usage answers), its unit (`cloud.invoices.exports.metric_units`), and its
invoices (`cloud.invoices.service.list_invoices`); the cost so far is the current period's
draft total.

The events behind one usage number (`read_bucket_events`): the range's month usage loaded as
billing loads it (`cloud.usage.loader.load_period_usage`), the events inside [start, end)
measured by the rating core's own `measure`, whose `Measurement.events` are exactly the events
that made the value; the bucket's number beside it is `account_usage` over the same range.
A range stays inside one local billing month (buckets never cross one): at most 31 days.
"""

import bisect
import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.analytics.service import UsageSeries, account_usage
from cloud.catalog.accounts import get_account
from cloud.catalog.bindings import account_bindings
from cloud.catalog.metrics import get_metric, metric_spec
from cloud.catalog.models import Account, Binding, Plan
from cloud.catalog.plans import get_plan, plan_versions
from cloud.domain import Aggregation, BillableEvent, EventKey, MetricSource, MetricSpec
from cloud.errors import InvalidParameters
from cloud.ingest.models import StoredEvent
from cloud.invoices.exports import metric_units
from cloud.invoices.models import Invoice
from cloud.invoices.service import list_invoices
from cloud.rating.metrics import clip_piece, measure
from cloud.rating.periods import Period, month_period, period_of
from cloud.usage.loader import load_period_usage

MAX_QUERY = 64
MAX_RESULTS = 50
MONTHS_SHOWN = 12
DRAFT = "draft"
MAX_EVENTS = 500  # events listed behind one number; more are counted, not listed


class Bucket(enum.StrEnum):
    """The usage chart's bucket, and the range it covers: hour (the current local day), day
    (the current period), month (the last twelve periods)."""

    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class MetricUsage:
    """One charged metric's series over the page's range, and its unit."""

    series: UsageSeries
    unit: str


@dataclass(frozen=True, slots=True)
class AccountPage:
    """Everything the account page shows, as of `now`."""

    account: Account
    plan: Plan | None
    period: Period  # the current billing period in the account's time zone
    bucket: Bucket
    start: datetime  # the usage range [start, end), UTC
    end: datetime
    bindings: list[Binding]
    usage: list[MetricUsage]
    draft: Invoice | None  # the current period's draft: the cost so far
    invoices: list[Invoice]


async def search_accounts(*, session: AsyncSession, text: str) -> list[Account]:
    """Accounts whose id or name contains `text` (case-insensitive), by id; all when empty."""
    query = select(Account).order_by(Account.id).limit(MAX_RESULTS)
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(Account.id.ilike(pattern, escape="\\"), Account.name.ilike(pattern, escape="\\"))
        )
    return list(await session.scalars(query))


async def read_account_page(
    *, session: AsyncSession, account_id: str, bucket: Bucket, now: datetime
) -> AccountPage:
    """The account's page; `AccountNotFound` for an unknown id."""
    account = await get_account(session=session, account_id=account_id)
    plan = (
        None
        if account.plan_id is None
        else await get_plan(session=session, plan_id=account.plan_id)
    )
    period = period_of(now, account.time_zone)
    start, end = usage_range(bucket, now=now, time_zone=account.time_zone)
    metrics = await charged_metrics(session=session, plan_id=account.plan_id, now=now)
    units = await metric_units(session=session, metric_ids=set(metrics))
    usage = [
        MetricUsage(
            series=await account_usage(
                session=session,
                account_id=account.id,
                metric_id=metric,
                granularity=bucket.value,
                start=start,
                end=end,
                as_of=now,
            ),
            unit=units.get(metric) or "units",
        )
        for metric in metrics
    ]
    invoices = await list_invoices(session=session, account_id=account.id)
    draft = next((i for i in invoices if i.period == period.label and i.status == DRAFT), None)
    return AccountPage(
        account=account,
        plan=plan,
        period=period,
        bucket=bucket,
        start=start,
        end=end,
        bindings=await account_bindings(session=session, account_id=account.id),
        usage=usage,
        draft=draft,
        invoices=invoices,
    )


async def charged_metrics(
    *, session: AsyncSession, plan_id: str | None, now: datetime
) -> list[str]:
    """The metrics the plan's version in force at `now` charges, in its order (none: no plan,
    or no version in force yet)."""
    if plan_id is None:
        return []
    in_force = [
        v for v in await plan_versions(session=session, plan_id=plan_id) if v.effective_from <= now
    ]
    if not in_force:
        return []
    return list(dict.fromkeys(charge.metric for charge in in_force[-1].charges))


def usage_range(bucket: Bucket, *, now: datetime, time_zone: str) -> tuple[datetime, datetime]:
    """The UTC range a bucket size shows: the local day, the period, or the last 12 periods."""
    period = period_of(now, time_zone)
    if bucket is Bucket.DAY:
        return period.start, period.end
    if bucket is Bucket.MONTH:
        year, month = (int(part) for part in period.label.split("-"))
        back = year * 12 + month - 1 - (MONTHS_SHOWN - 1)
        first = month_period(f"{back // 12:04d}-{back % 12 + 1:02d}", time_zone)
        return first.start, period.end
    zone = ZoneInfo(time_zone)
    today = now.astimezone(zone).date()
    tomorrow = today + timedelta(days=1)
    return (
        datetime(today.year, today.month, today.day, tzinfo=zone).astimezone(now.tzinfo),
        datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=zone).astimezone(now.tzinfo),
    )


@dataclass(frozen=True, slots=True)
class ListedEvent:
    """One stored event behind a number, with its chain hash."""

    event: BillableEvent
    hash: str


@dataclass(frozen=True, slots=True)
class BucketEvents:
    """The events behind one usage number over [start, end) (UTC)."""

    account: Account
    spec: MetricSpec
    unit: str
    start: datetime
    end: datetime
    value: Decimal  # the number, as account_usage answers it
    events: list[ListedEvent]  # the first MAX_EVENTS behind it, in the total order
    behind: int  # how many events are behind it
    recomputed: Decimal | None  # the metric's aggregation over them (None: a session metric)

    @property
    def more(self) -> int:
        """How many events behind the number are not listed."""
        return self.behind - len(self.events)

    @property
    def matches(self) -> bool:
        """Whether the events add up to the number."""
        return self.recomputed == self.value


async def read_bucket_events(
    *,
    session: AsyncSession,
    account_id: str,
    metric_id: str,
    start: datetime,
    end: datetime,
    now: datetime,
) -> BucketEvents:
    """The events behind the account's `metric_id` over [start, end); `AccountNotFound`;
    `InvalidParameters` unless the metric is one the plan charges now and the range is aware,
    not empty and inside one local billing month."""
    account = await get_account(session=session, account_id=account_id)
    metrics = await charged_metrics(session=session, plan_id=account.plan_id, now=now)
    if metric_id not in metrics:
        raise InvalidParameters(
            f"metric {metric_id!r}: not one the account's plan charges ({', '.join(metrics)})",
            detail={"metric": metric_id, "metrics": metrics},
        )
    period = bucket_period(start, end, account.time_zone)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    spec = metric_spec(await get_metric(session=session, metric_id=metric_id))
    series = await account_usage(
        session=session,
        account_id=account.id,
        metric_id=metric_id,
        granularity="month",  # one month bucket clipped to [start, end): the range itself
        start=start,
        end=end,
        as_of=now,
    )
    usage = await load_period_usage(
        session=session, accounts=[account], period_label=period.label, as_of=now
    )
    month = usage[account.id][1]
    times = [event.occurred_at for event in month.events]  # the total order: sorted by time
    inside = month.events[bisect.bisect_left(times, start) : bisect.bisect_left(times, end)]
    clipped = (clip_piece(piece, start, end) for piece in month.pieces)
    measurement = measure(
        spec,
        pieces=[piece for piece in clipped if piece is not None],
        events=inside,
        profile_of=month.profile_of,
        combined=month.combined,
        site_of=month.site_of,
    )
    keys = set(measurement.events)
    behind = [event for event in inside if event.key in keys]
    listed = behind[:MAX_EVENTS]
    hashes = await _hashes(session=session, keys=[event.key for event in listed])
    units = await metric_units(session=session, metric_ids={metric_id})
    return BucketEvents(
        account=account,
        spec=spec,
        unit=units.get(metric_id) or "units",
        start=start,
        end=end,
        value=sum((point.value for point in series.points), Decimal(0)),
        events=[ListedEvent(event, hashes.get(event.key, "")) for event in listed],
        behind=len(behind),
        recomputed=None if spec.source is MetricSource.SESSIONS else aggregate(spec, behind),
    )


def bucket_period(start: datetime, end: datetime, time_zone: str) -> Period:
    """The one local billing month holding [start, end); `InvalidParameters` otherwise."""
    shown = {"start": start.isoformat(), "end": end.isoformat()}
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidParameters("start and end need a UTC offset (RFC 3339)", detail=shown)
    if end <= start:
        raise InvalidParameters("end must be after start", detail=shown)
    period = period_of(start, time_zone)
    if end > period.end:
        raise InvalidParameters(
            f"start and end must lie in one billing month in {time_zone} (at most 31 days)",
            detail=shown,
        )
    return period


def aggregate(spec: MetricSpec, events: list[BillableEvent]) -> Decimal:
    """The metric's aggregation over the events behind it (in the total order), as a check."""
    quantities = [event.quantity or Decimal(0) for event in events]
    if spec.aggregation is Aggregation.COUNT:
        return Decimal(len(events))
    if spec.aggregation is Aggregation.UNIQUE_COUNT:
        return Decimal(len({event.device_id for event in events}))
    if spec.aggregation is Aggregation.SUM or not quantities:
        return sum(quantities, Decimal(0))
    return max(quantities) if spec.aggregation is Aggregation.MAX else quantities[-1]


async def _hashes(*, session: AsyncSession, keys: list[EventKey]) -> dict[EventKey, str]:
    """Each stored event's chain hash by (gateway_id, seq); at most MAX_EVENTS keys."""
    if not keys:
        return {}
    position = tuple_(StoredEvent.gateway_id, StoredEvent.seq)
    query = select(StoredEvent.gateway_id, StoredEvent.seq, StoredEvent.hash).where(
        position.in_(keys)
    )
    return {(gateway, seq): hash_ for gateway, seq, hash_ in await session.execute(query)}
