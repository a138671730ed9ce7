"""The threshold job: fire `usage.threshold_reached` for every threshold reached this period.

    check_thresholds(db, now)
      1. the enabled thresholds that have not fired in their account's current period (the
         calendar month holding `now` in the account's time zone); none: done, nothing loaded;
      2. bring sessions up to date (`refresh_sessions(as_of=now)`, as an invoice run does), so
         that session metrics count the sessions of the events stored so far;
      3. per chunk of those accounts: the period's usage so far, loaded and rated by the code that
         drafts invoices (`cloud.usage.loader.load_period_usage`, `cloud.invoices.lines.
         rate_account`; no draft is written), and the thresholds those lines reach
         (`cloud.thresholds.measure`);
      4. in ONE write transaction per chunk, for each threshold reached: its firing row and the
         webhook message (`emit_async`). The firing is `INSERT ... SELECT ... ON CONFLICT DO
         NOTHING` on the key (threshold_id, period_start): a second run at the same time, in this
         process or another, inserts nothing and emits nothing (PostgreSQL makes it wait for the
         first one's commit; SQLite's write lock serializes them), and a threshold removed or
         disabled since step 1 inserts nothing.

An account whose plan cannot be rated is reported (failed) and checked again at the next run.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import String, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog.models import Account
from cloud.db import Database, DecimalText, UtcDateTime
from cloud.errors import InvalidBillingInput
from cloud.invoices.lines import Rates, RunAccount, rate_account
from cloud.invoices.service import load_rates
from cloud.invoices.webhook_events import money
from cloud.rating.periods import Period, period_of
from cloud.sessions.service import refresh_sessions
from cloud.thresholds.measure import Crossing, ThresholdSpec, crossings
from cloud.thresholds.models import Measure, ThresholdFiring, UsageThreshold
from cloud.usage.loader import load_period_usage
from cloud.webhooks.outbox import emit_async
from cloud.webhooks.types import EventType
from shared.canonical import format_decimal

CHUNK_ACCOUNTS = 500
IN_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class Pending:
    """An account with thresholds not fired in its current period."""

    account: RunAccount
    period: Period
    thresholds: list[ThresholdSpec]


@dataclass(frozen=True, slots=True)
class Firing:
    """A threshold reached in an account's period: what the firing row and message say."""

    crossing: Crossing
    account: RunAccount
    period: Period


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What a check did: accounts rated, thresholds looked at, fired, and accounts not rated."""

    accounts: int = 0
    thresholds: int = 0
    fired: list[int] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # account id -> why

    def __str__(self) -> str:
        failed = f" ({', '.join(sorted(self.failed))})" if self.failed else ""
        return (
            f"{self.accounts} accounts, {self.thresholds} thresholds pending, "
            f"{len(self.fired)} fired, {len(self.failed)} accounts not rated{failed}"
        )


async def check_thresholds(db: Database, now: datetime) -> CheckReport:
    """Fire every threshold reached in its account's current period; see the module doc."""
    async with db.transaction() as session:
        pending = await pending_thresholds(session=session, now=now)
    if not pending:
        return CheckReport()
    await refresh_sessions(db=db, as_of=now)
    async with db.transaction() as session:
        rates = await load_rates(session=session)
    fired: list[int] = []
    failed: dict[str, str] = {}
    for index in range(0, len(pending), CHUNK_ACCOUNTS):
        chunk = pending[index : index + CHUNK_ACCOUNTS]
        found = await reached_thresholds(db=db, chunk=chunk, rates=rates, now=now, failed=failed)
        fired.extend(await fire(db=db, firings=found, now=now))
    return CheckReport(
        accounts=len(pending),
        thresholds=sum(len(p.thresholds) for p in pending),
        fired=fired,
        failed=failed,
    )


async def pending_thresholds(*, session: AsyncSession, now: datetime) -> list[Pending]:
    """Accounts (with a plan) and their enabled thresholds not fired in the current period."""
    query = (
        select(
            UsageThreshold.id,
            UsageThreshold.metric_id,
            UsageThreshold.measure,
            UsageThreshold.value,
            Account.id,
            Account.time_zone,
            Account.currency,
            Account.plan_id,
            Account.invoice_series,
        )
        .join(Account, Account.id == UsageThreshold.account_id)
        .where(UsageThreshold.enabled.is_(True), Account.plan_id.is_not(None))
        .order_by(Account.id, UsageThreshold.id)
    )
    accounts: dict[str, RunAccount] = {}
    periods: dict[str, Period] = {}
    specs: dict[str, list[ThresholdSpec]] = defaultdict(list)
    for (
        tid,
        metric_id,
        measure,
        value,
        account_id,
        zone,
        currency,
        plan,
        series,
    ) in await session.execute(query):
        account = accounts.setdefault(
            account_id, RunAccount(account_id, zone, currency, plan, series)
        )
        if account.id not in periods:
            periods[account.id] = period_of(now, account.time_zone)
        specs[account.id].append(ThresholdSpec(tid, account.id, metric_id, Measure(measure), value))
    if not specs:
        return []
    done = await _fired(
        session=session,
        threshold_ids=[spec.id for account_specs in specs.values() for spec in account_specs],
        since=min(period.start for period in periods.values()),
    )
    pending = []
    for account_id, account_specs in specs.items():
        period = periods[account_id]
        left = [spec for spec in account_specs if (spec.id, period.start) not in done]
        if left:
            pending.append(Pending(accounts[account_id], period, left))
    return pending


async def _fired(
    *, session: AsyncSession, threshold_ids: Sequence[int], since: datetime
) -> set[tuple[int, datetime]]:
    """(threshold id, period start) of the firings of these thresholds from `since` on."""
    found: set[tuple[int, datetime]] = set()
    for index in range(0, len(threshold_ids), IN_CHUNK):
        query = select(ThresholdFiring.threshold_id, ThresholdFiring.period_start).where(
            ThresholdFiring.threshold_id.in_(threshold_ids[index : index + IN_CHUNK]),
            ThresholdFiring.period_start >= since,
        )
        found.update((tid, start) for tid, start in await session.execute(query))
    return found


async def reached_thresholds(
    *,
    db: Database,
    chunk: Sequence[Pending],
    rates: Rates,
    now: datetime,
    failed: dict[str, str],
) -> list[Firing]:
    """The chunk's thresholds reached by the usage so far (accounts grouped by period label)."""
    by_label: dict[str, list[Pending]] = defaultdict(list)
    for item in chunk:
        by_label[item.period.label].append(item)
    found: list[Firing] = []
    for label, items in sorted(by_label.items()):
        async with db.transaction() as session:
            usage = await load_period_usage(
                session=session,
                accounts=[item.account for item in items],
                period_label=label,
                as_of=now,
            )
        for item in items:
            period, account_usage = usage[item.account.id]
            try:
                lines = rate_account(
                    account=item.account, period=period, usage=account_usage, rates=rates
                )
            except InvalidBillingInput as exc:  # RatingOutOfBounds too: this account only
                failed[item.account.id] = exc.code
                continue
            found.extend(
                Firing(crossing, item.account, period)
                for crossing in crossings(item.thresholds, lines)
            )
    return found


async def fire(*, db: Database, firings: Sequence[Firing], now: datetime) -> list[int]:
    """Insert each firing and emit its message, all in one write transaction; the ids fired.

    A firing already stored for that threshold and period (another run's), or a threshold removed
    or disabled meanwhile, inserts nothing and emits nothing.
    """
    if not firings:
        return []
    fired = []
    async with db.transaction(write=True) as session:
        for firing in firings:
            if await _insert_firing(session=session, firing=firing, now=now):
                data = message_data(firing, now)
                await emit_async(session, EventType.USAGE_THRESHOLD_REACHED, data)
                fired.append(firing.crossing.threshold.id)
    return fired


async def _insert_firing(*, session: AsyncSession, firing: Firing, now: datetime) -> bool:
    threshold, period = firing.crossing.threshold, firing.period
    values = select(
        UsageThreshold.id,
        literal(period.start, UtcDateTime()),
        literal(period.label, String()),
        literal(now, UtcDateTime()),
        literal(firing.crossing.observed, DecimalText()),
    ).where(UsageThreshold.id == threshold.id, UsageThreshold.enabled.is_(True))
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(ThresholdFiring)
        .from_select(["threshold_id", "period_start", "period", "fired_at", "observed"], values)
        .on_conflict_do_nothing(index_elements=["threshold_id", "period_start"])
        .returning(ThresholdFiring.threshold_id)
    )
    return (await session.execute(statement)).first() is not None


def message_data(firing: Firing, now: datetime) -> dict[str, Any]:
    """The `usage.threshold_reached` data: JSON values only, decimals and times as text.

    `threshold` is the value as set (plain notation), `observed` units in plain notation or an
    amount in the currency's minor unit (a sum of rounded lines: "2.10")."""
    threshold, observed = firing.crossing.threshold, firing.crossing.observed
    return {
        "threshold_id": threshold.id,
        "account_id": firing.account.id,
        "metric_id": threshold.metric_id,
        "measure": threshold.measure.value,
        "threshold": format_decimal(threshold.value),
        "observed": (
            money(observed, firing.account.currency)
            if threshold.measure == Measure.AMOUNT
            else format_decimal(observed)
        ),
        "currency": firing.account.currency if threshold.measure == Measure.AMOUNT else None,
        "period": firing.period.label,
        "period_start": firing.period.start.isoformat(),
        "period_end": firing.period.end.isoformat(),
        "reached_at": now.isoformat(),
    }
