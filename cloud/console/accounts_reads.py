"""What the accounts pages show, read through the services that own each number.

Search is the one query of its own (the catalog lists accounts by id page, it has no search):
id or name containing the text, case-insensitive, at most `MAX_RESULTS`. An account's page:
the account (`cloud.catalog.accounts`), its bindings (`account_bindings`), the usage of each
metric its plan charges now (`cloud.analytics.service.account_usage`, exactly what
GET /v1/accounts/{id}/usage answers), its unit (`cloud.invoices.exports.metric_units`), and its
invoices (`cloud.invoices.service.list_invoices`); the cost so far is the current period's
draft total.
"""

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.analytics.service import UsageSeries, account_usage
from cloud.catalog.accounts import get_account
from cloud.catalog.bindings import account_bindings
from cloud.catalog.models import Account, Binding, Plan
from cloud.catalog.plans import get_plan, plan_versions
from cloud.invoices.exports import metric_units
from cloud.invoices.models import Invoice
from cloud.invoices.service import list_invoices
from cloud.rating.periods import Period, month_period, period_of

MAX_QUERY = 64
MAX_RESULTS = 50
MONTHS_SHOWN = 12
DRAFT = "draft"


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
