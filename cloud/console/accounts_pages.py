"""Accounts: search, devices and bindings on a timeline, usage per metric, cost so far, drafts and
invoices.

GET /console/accounts?q= searches by id or name (q at most 64 characters); GET
/console/accounts/{id}?bucket=hour|day|month shows one account (cloud.console.accounts_reads).
Each usage chart is drawn by cloud.console.charts from the same points as the table under it;
each bucket's number (table cell and bar) opens GET
/console/accounts/{id}/usage/events?metric=&start=&end=, the signed events behind it.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from markupsafe import Markup

from cloud.api import DatabaseDep
from cloud.catalog.models import Binding
from cloud.console.access import ConsoleReadDep
from cloud.console.accounts_reads import (
    MAX_EVENTS,
    MAX_QUERY,
    MAX_RESULTS,
    AccountPage,
    Bucket,
    MetricUsage,
    read_account_page,
    read_bucket_events,
    search_accounts,
)
from cloud.console.charts import Bar, Span, bar_chart, quantity_text, timeline
from cloud.console.logins import now_utc
from cloud.console.pages import ApiLink, api_link, render
from cloud.rating.money import round_money

router = APIRouter(prefix="/console/accounts", include_in_schema=False)

AccountIdPath = Annotated[str, Path(min_length=1, max_length=64)]
MetricQuery = Annotated[str, Query(min_length=1, max_length=64)]
HASH_SHOWN = 12  # hex digits of an event's hash the events page shows
LABELS = {Bucket.HOUR: "%H:%M", Bucket.DAY: "%m-%d", Bucket.MONTH: "%Y-%m"}
TITLES = {Bucket.HOUR: "%Y-%m-%d %H:%M", Bucket.DAY: "%Y-%m-%d", Bucket.MONTH: "%Y-%m"}
RANGES = {Bucket.HOUR: "today", Bucket.DAY: "this period", Bucket.MONTH: "the last 12 periods"}


@dataclass(frozen=True, slots=True)
class UsageRow:
    """A table line under a chart: the bucket as the chart labels it, its value as shown."""

    label: str
    start: str  # local, as the hover title says
    value: str  # quantity_text, the chart's label too
    exact: str  # the value as the API answers it
    events_href: str  # the events behind the value (with the app's root path)


@dataclass(frozen=True, slots=True)
class UsageChart:
    """One metric's chart and its table, and the API operation both come from."""

    metric: str
    unit: str
    caption: str
    svg: Markup
    rows: list[UsageRow]
    total: str
    source: ApiLink | None
    source_href: str


@router.get("")
async def get_accounts(
    request: Request,
    db: DatabaseDep,
    live: ConsoleReadDep,
    q: Annotated[str, Query(max_length=MAX_QUERY)] = "",
) -> Response:
    """Accounts whose id or name contains `q` (all, up to 50, when empty)."""
    async with db.transaction() as session:
        found = await search_accounts(session=session, text=q.strip())
    return render(
        request,
        "accounts/search.html",
        user=live,
        q=q,
        accounts=found,
        max_query=MAX_QUERY,
        max_results=MAX_RESULTS,
        source=api_link(request.app, "GET", "/v1/accounts"),
    )


@router.get("/{account_id}/usage/events")
async def get_bucket_events(
    request: Request,
    account_id: AccountIdPath,
    db: DatabaseDep,
    live: ConsoleReadDep,
    metric: MetricQuery,
    start: datetime,
    end: datetime,
) -> Response:
    """The signed events behind one usage number: the metric over [start, end), inside one
    local billing month, at most MAX_EVENTS listed; their total beside account_usage's."""
    now = now_utc()
    async with db.transaction() as session:
        found = await read_bucket_events(
            session=session, account_id=account_id, metric_id=metric, start=start, end=end, now=now
        )
    zone = ZoneInfo(found.account.time_zone)
    query = urlencode(
        {
            "metric": metric,
            "granularity": "month",
            "start": found.start.isoformat(),
            "end": found.end.isoformat(),
        }
    )
    path = f"/v1/accounts/{found.account.id}/usage"
    return render(
        request,
        "accounts/usage_events.html",
        user=live,
        found=found,
        local=lambda moment: moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
        quantity=quantity_text,
        hash_shown=HASH_SHOWN,
        max_events=MAX_EVENTS,
        source=api_link(request.app, "GET", "/v1/accounts/{account_id}/usage", query, shown=path),
    )


@router.get("/{account_id}")
async def get_account_page(
    request: Request,
    account_id: AccountIdPath,
    db: DatabaseDep,
    live: ConsoleReadDep,
    bucket: Bucket = Bucket.DAY,
) -> Response:
    """One account: its plan, bindings over time, usage per metric, cost so far, invoices."""
    now = now_utc()
    async with db.transaction() as session:
        page = await read_account_page(
            session=session, account_id=account_id, bucket=bucket, now=now
        )
    app = request.app
    shown = f"/v1/accounts/{page.account.id}"
    return render(
        request,
        "accounts/account.html",
        user=live,
        page=page,
        now=now,
        zone=ZoneInfo(page.account.time_zone),
        money=money_text,
        buckets=list(Bucket),
        range_text=RANGES[bucket],
        bindings_svg=bindings_timeline(page.bindings, now=now, time_zone=page.account.time_zone),
        charts=[usage_chart(request, page, metric) for metric in page.usage],
        links={
            "account": api_link(app, "GET", "/v1/accounts/{account_id}", shown=shown),
            "bindings": api_link(
                app, "GET", "/v1/accounts/{account_id}/bindings", shown=f"{shown}/bindings"
            ),
            "invoices": api_link(app, "GET", "/v1/invoices", f"account_id={page.account.id}"),
        },
    )


def usage_chart(request: Request, page: AccountPage, usage: MetricUsage) -> UsageChart:
    """The bar chart of one metric and the table lines it shows, from the same points."""
    zone = ZoneInfo(page.account.time_zone)
    series = usage.series
    root = str(request.scope.get("root_path", "")).rstrip("/")  # as pages.render gives templates
    rows = [
        UsageRow(
            label=point.start.astimezone(zone).strftime(LABELS[page.bucket]),
            start=point.start.astimezone(zone).strftime(TITLES[page.bucket]),
            value=quantity_text(point.value),
            exact=str(point.value),
            events_href=root + events_href(page.account.id, series.metric, point.start, point.end),
        )
        for point in series.points
    ]
    caption = (
        f"{series.metric} in {usage.unit} per {page.bucket.value}, {RANGES[page.bucket]}"
        f" ({_local(page.start, zone)} to {_local(page.end, zone)}), {page.account.time_zone}"
    )
    bars = [
        Bar(
            label=row.label,
            value=point.value,
            title=f"{row.start}: {row.value} {usage.unit}",
            href=row.events_href,
        )
        for row, point in zip(rows, series.points, strict=True)
    ]
    query = urlencode(
        {
            "metric": series.metric,
            "granularity": page.bucket.value,
            "start": page.start.isoformat(),
            "end": page.end.isoformat(),
        }
    )
    path = f"/v1/accounts/{page.account.id}/usage"
    return UsageChart(
        metric=series.metric,
        unit=usage.unit,
        caption=caption,
        svg=bar_chart(
            bars=bars, unit=usage.unit, caption=caption, chart_id=f"chart-{series.metric}"
        ),
        rows=rows,
        total=quantity_text(sum((point.value for point in series.points), Decimal(0))),
        source=api_link(request.app, "GET", "/v1/accounts/{account_id}/usage", query, shown=path),
        source_href=f"{path}?{query}",
    )


def events_href(account_id: str, metric: str, start: datetime, end: datetime) -> str:
    """The console page of the events behind one bucket's number."""
    query = urlencode({"metric": metric, "start": start.isoformat(), "end": end.isoformat()})
    return f"/console/accounts/{quote(account_id, safe='')}/usage/events?{query}"


def bindings_timeline(bindings: list[Binding], *, now: datetime, time_zone: str) -> Markup | None:
    """A bar per binding, one row per device, from its valid_from to its valid_to (or now)."""
    if not bindings:
        return None
    zone = ZoneInfo(time_zone)
    start = min(binding.valid_from for binding in bindings)
    end = max([now, *(b.valid_to for b in bindings if b.valid_to is not None)])
    spans = [
        Span(
            row=binding.device_id,
            start=binding.valid_from,
            end=binding.valid_to or now,
            label=f"{_local(binding.valid_from, zone)} to "
            + (_local(binding.valid_to, zone) if binding.valid_to else "now"),
            title=f"binding {binding.id}: {binding.device_id} from "
            f"{_local(binding.valid_from, zone)} to "
            + (_local(binding.valid_to, zone) if binding.valid_to else "now (still bound)"),
            tone="ended" if binding.valid_to else "open",
        )
        for binding in bindings
    ]
    caption = f"bindings from {_local(start, zone)} to {_local(end, zone)}, {time_zone}"
    return timeline(
        spans=spans, start=start, end=end, time_zone=time_zone, chart_id="bindings", caption=caption
    )


def money_text(amount: Decimal, currency: str) -> str:
    """An amount at the currency's minor unit (7.1 as stored reads 7.10)."""
    return str(round_money(amount, currency))


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")
