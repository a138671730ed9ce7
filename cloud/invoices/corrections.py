"""Correcting the catalog the way billing systems allow, and re-drafting what it changes.

The rule (one, simple): a metric, a profile's session rule or a plan version can be changed
until a FINALIZED invoice used it; then the change is refused (409 `catalog_in_use` naming the
invoice) and the way forward is a new metric, profile or plan version. Drafts do not count as
"used": they are re-drafted right after the change is committed.

  - a metric is used when a finalized invoice has a line naming it;
  - a profile when a finalized invoice's evidence names a session or an event of one of its
    devices;
  - a plan version when a finalized invoice has a line rated under it.

The catalog (layer 5) cannot read invoices, so the guard and the re-draft live here (layer 9):
`used_by` is what `cloud.catalog.loader` calls back for the same rule when a file updates.
"""

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog import devices, metrics, plans
from cloud.catalog.loader import CatalogFile, LoadReport, load_catalog
from cloud.catalog.metric_warnings import charge_warnings, metric_warnings
from cloud.catalog.models import Account, Binding, Device, DeviceProfile, Metric, PlanVersionRow
from cloud.catalog.plan_terms import PlanTerms
from cloud.catalog.plans import version_rows, version_terms
from cloud.catalog.tax_rates import load_tax_table
from cloud.db import Database
from cloud.errors import CatalogInUse
from cloud.ingest.models import StoredEvent
from cloud.invoices.finalization import DRAFT, FINALIZED, invoice_number
from cloud.invoices.lines import RunAccount
from cloud.invoices.models import Invoice, InvoiceEvidence, InvoiceLine
from cloud.invoices.service import (  # the run's own chunk: the same rating, no finalize_due
    AccountResult,
    Taxes,
    _run_chunk,
    load_rates,
)
from cloud.rating.money import round_money
from cloud.seller import Seller
from cloud.sessions.models import SessionRow
from cloud.sessions.service import refresh_sessions


@dataclass(frozen=True, slots=True)
class Redrafted:
    """A draft re-rated after a correction: its total before and after."""

    account_id: str
    period: str
    invoice_id: int | None
    old_total: str
    new_total: str | None
    outcome: str


@dataclass(frozen=True, slots=True)
class Correction:
    """What a correction did: the object as stored now, warnings, and the drafts re-drafted."""

    row: Metric | PlanVersionRow | DeviceProfile
    warnings: list[str]
    redrafted: list[Redrafted]


async def correct_metric(
    *,
    db: Database,
    metric_id: str,
    changes: Mapping[str, object],
    now: datetime,
    grace: timedelta,
    seller: Seller | None = None,
) -> Correction:
    """Change a metric no finalized invoice used (`CatalogInUse` otherwise), then re-draft the
    drafts it affects."""
    async with db.transaction(write=True) as session:
        await metrics.get_metric(session=session, metric_id=metric_id)
        await refuse_metric_in_use(session=session, metric_id=metric_id)
        row = await metrics.update_metric(session=session, metric_id=metric_id, changes=changes)
        spec = metrics.metric_spec(row)
        warnings = await metric_warnings(session=session, spec=spec, now=now)
        affected = await drafts_of_metric(session=session, metric_id=metric_id)
    redrafted = await redraft(db=db, drafts=affected, now=now, grace=grace, seller=seller)
    return Correction(row=row, warnings=warnings, redrafted=redrafted)


async def replace_version(
    *,
    db: Database,
    plan_id: str,
    version: int,
    terms: PlanTerms,
    now: datetime,
    grace: timedelta,
    seller: Seller | None = None,
) -> Correction:
    """Replace a plan version no finalized invoice used (`CatalogInUse` otherwise), then
    re-draft the drafts of the plan."""
    async with db.transaction(write=True) as session:
        await plans.get_plan(session=session, plan_id=plan_id)
        await refuse_version_in_use(session=session, plan_id=plan_id, version=version)
        row = await plans.replace_plan_version(
            session=session, plan_id=plan_id, version=version, terms=terms
        )
        warnings = await charge_warnings(
            session=session, terms=terms, where=f"plan {plan_id} version {version}", now=now
        )
        affected = await drafts_of_plan(session=session, plan_id=plan_id)
    redrafted = await redraft(db=db, drafts=affected, now=now, grace=grace, seller=seller)
    return Correction(row=row, warnings=warnings, redrafted=redrafted)


async def change_profile_rule(
    *,
    db: Database,
    profile_id: str,
    start_on: Sequence[str],
    end_on: Sequence[str],
    timeout_seconds: int | None,
    now: datetime,
    grace: timedelta,
    seller: Seller | None = None,
) -> Correction:
    """Change a profile's session rule while no finalized invoice used it (`CatalogInUse`
    otherwise); its devices' sessions are recomputed and the affected drafts re-drafted."""
    async with db.transaction(write=True) as session:
        await devices.get_profile(session=session, profile_id=profile_id)
        await refuse_profile_in_use(session=session, profile_id=profile_id)
        row = await devices.set_profile_rule(
            session=session,
            profile_id=profile_id,
            start_on=start_on,
            end_on=end_on,
            timeout_seconds=timeout_seconds,
        )
        affected = await drafts_of_profile(session=session, profile_id=profile_id)
    redrafted = await redraft(db=db, drafts=affected, now=now, grace=grace, seller=seller)
    return Correction(row=row, warnings=[], redrafted=redrafted)


class _RolledBack(Exception):
    """Raised inside a dry run's transaction so it rolls back, carrying what it found."""

    def __init__(self, report: LoadReport, redrafted: list[Redrafted]) -> None:
        super().__init__("dry run")
        self.report, self.redrafted = report, redrafted


async def load_catalog_file(
    *,
    db: Database,
    catalog: CatalogFile,
    now: datetime,
    grace: timedelta,
    dry_run: bool,
    seller: Seller | None = None,
) -> tuple[LoadReport, list[Redrafted]]:
    """Apply a catalog file in one transaction under the correction rules, then re-draft the
    drafts it affects; with `dry_run`, the same in one transaction rolled back (the drafts
    re-rated in it, so their new totals are what applying would give, except for sessions that
    a changed profile rule would recompute)."""
    try:
        async with db.transaction(write=True) as session:
            report = await load_catalog(session=session, catalog=catalog, guard=_guard, now=now)
            affected = await drafts_of_report(session=session, report=report)
            if dry_run:
                redrafted = await rerate_in_session(
                    session=session, drafts=affected, now=now, grace=grace, seller=seller
                )
                raise _RolledBack(report, redrafted)
    except _RolledBack as done:
        return done.report, done.redrafted
    return report, await redraft(db=db, drafts=affected, now=now, grace=grace, seller=seller)


async def drafts_of_report(*, session: AsyncSession, report: LoadReport) -> list[tuple[str, str]]:
    """The drafts whose billing a load may have changed (metrics, plans, profiles, accounts)."""
    found: set[tuple[str, str]] = set()
    for metric_id in report.metrics:
        found.update(await drafts_of_metric(session=session, metric_id=metric_id))
    for plan_id in report.plans:
        found.update(await drafts_of_plan(session=session, plan_id=plan_id))
    for profile_id in report.profiles:
        found.update(await drafts_of_profile(session=session, profile_id=profile_id))
    if report.accounts:
        found.update(await _drafts(session, Invoice.account_id.in_(sorted(report.accounts))))
    return sorted(found)


async def _guard(session: AsyncSession, kind: str, key: tuple[str, ...]) -> None:
    await used_by(session=session, kind=kind, key=key)


# --- the guard -----------------------------------------------------------------------------------


async def refuse_metric_in_use(*, session: AsyncSession, metric_id: str) -> None:
    """`CatalogInUse` if a finalized invoice has a line of the metric."""
    query = _finalized(InvoiceLine.metric == metric_id)
    await _refuse(session, query, f"metric {metric_id}", "create a new metric instead")


async def refuse_version_in_use(*, session: AsyncSession, plan_id: str, version: int) -> None:
    """`CatalogInUse` if a finalized invoice has a line rated under the plan version."""
    query = _finalized(and_(InvoiceLine.plan_id == plan_id, InvoiceLine.plan_version == version))
    await _refuse(
        session, query, f"plan {plan_id} version {version}", "append a new version instead"
    )


async def refuse_profile_in_use(*, session: AsyncSession, profile_id: str) -> None:
    """`CatalogInUse` if a finalized invoice's evidence names a session or event of a device of
    the profile."""
    devices = select(Device.id).where(Device.profile_id == profile_id)
    by_session = (
        select(Invoice.id, Invoice.series, Invoice.number)
        .join(InvoiceEvidence, InvoiceEvidence.invoice_id == Invoice.id)
        .join(SessionRow, SessionRow.id == InvoiceEvidence.session_id)
        .where(Invoice.status == FINALIZED, SessionRow.device_id.in_(devices))
    )
    by_event = (
        select(Invoice.id, Invoice.series, Invoice.number)
        .join(InvoiceEvidence, InvoiceEvidence.invoice_id == Invoice.id)
        .join(
            StoredEvent,
            and_(
                StoredEvent.gateway_id == InvoiceEvidence.gateway_id,
                StoredEvent.seq == InvoiceEvidence.seq,
            ),
        )
        .where(Invoice.status == FINALIZED, StoredEvent.device_id.in_(devices))
    )
    hint = "create a new profile and move the devices to it instead"
    for query in (by_session, by_event):
        await _refuse(session, query, f"profile {profile_id}", hint)


async def used_by(*, session: AsyncSession, kind: str, key: tuple[str, ...]) -> None:
    """The guard as one callback for `cloud.catalog.loader` (`kind`: metric, profile, version)."""
    if kind == "metric":
        await refuse_metric_in_use(session=session, metric_id=key[0])
    elif kind == "profile":
        await refuse_profile_in_use(session=session, profile_id=key[0])
    elif kind == "version":
        await refuse_version_in_use(session=session, plan_id=key[0], version=int(key[1]))


def _finalized(condition: object) -> Select[int, str, int | None]:
    return (
        select(Invoice.id, Invoice.series, Invoice.number)
        .join(InvoiceLine, InvoiceLine.invoice_id == Invoice.id)
        .where(Invoice.status == FINALIZED, condition)  # type: ignore[arg-type]
    )


async def _refuse(
    session: AsyncSession, query: Select[int, str, int | None], what: str, hint: str
) -> None:
    found = (await session.execute(query.order_by(Invoice.id).limit(1))).first()
    if found is None:
        return
    invoice_id, series, number = found
    printed = invoice_number(series, number)
    raise CatalogInUse(
        f"{what} was used by finalized invoice {invoice_id} ({printed}) and cannot change: {hint}",
        detail={"object": what, "invoice_id": invoice_id, "number": printed},
    )


# --- what a correction affects -------------------------------------------------------------------


async def drafts_of_metric(*, session: AsyncSession, metric_id: str) -> list[tuple[str, str]]:
    """(account, period) of the drafts a metric change affects: accounts on a plan charging it,
    and drafts with a line of it."""
    plans = set()
    for plan_id in await session.scalars(select(Account.plan_id).distinct()):
        if plan_id is not None and await _plan_charges(session, plan_id, metric_id):
            plans.add(plan_id)
    on_plan = select(Account.id).where(Account.plan_id.in_(sorted(plans)))
    with_line = select(InvoiceLine.invoice_id).where(InvoiceLine.metric == metric_id)
    return await _drafts(session, (Invoice.account_id.in_(on_plan)) | Invoice.id.in_(with_line))


async def drafts_of_plan(*, session: AsyncSession, plan_id: str) -> list[tuple[str, str]]:
    """(account, period) of the drafts of accounts on the plan, or with a line of it."""
    on_plan = select(Account.id).where(Account.plan_id == plan_id)
    with_line = select(InvoiceLine.invoice_id).where(InvoiceLine.plan_id == plan_id)
    return await _drafts(session, Invoice.account_id.in_(on_plan) | Invoice.id.in_(with_line))


async def drafts_of_profile(*, session: AsyncSession, profile_id: str) -> list[tuple[str, str]]:
    """(account, period) of the drafts of accounts a device of the profile was ever bound to."""
    devices = select(Device.id).where(Device.profile_id == profile_id)
    bound = select(Binding.account_id).where(Binding.device_id.in_(devices))
    return await _drafts(session, Invoice.account_id.in_(bound))


async def _plan_charges(session: AsyncSession, plan_id: str, metric_id: str) -> bool:
    rows = await version_rows(session=session, plan_id=plan_id)
    return any(c.metric == metric_id for row in rows for c in version_terms(row).charges)


async def _drafts(session: AsyncSession, condition: object) -> list[tuple[str, str]]:
    query = (
        select(Invoice.account_id, Invoice.period)
        .where(Invoice.status == DRAFT, condition)  # type: ignore[arg-type]
        .order_by(Invoice.period, Invoice.account_id)
    )
    return [(account_id, period) for account_id, period in await session.execute(query)]


# --- re-drafting ---------------------------------------------------------------------------------


async def draft_totals(
    *, session: AsyncSession, drafts: Collection[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, str]]:
    """(account, period) -> (invoice id, total) of these drafts as stored."""
    found: dict[tuple[str, str], tuple[int, str]] = {}
    for account_id, period in drafts:
        query = select(Invoice.id, Invoice.total, Invoice.currency).where(
            Invoice.account_id == account_id, Invoice.period == period, Invoice.status == DRAFT
        )
        row = (await session.execute(query)).first()
        if row is not None:
            found[(account_id, period)] = (row[0], str(round_money(row[1], row[2])))
    return found


async def rerate_in_session(
    *,
    session: AsyncSession,
    drafts: Collection[tuple[str, str]],
    now: datetime,
    grace: timedelta,
    seller: Seller | None = None,
) -> list[Redrafted]:
    """Re-rate these drafts in the caller's transaction (the catalog as this transaction sees
    it); their totals before and after. Used by the re-draft and by `catalog load --dry-run`,
    which rolls the transaction back. Sessions are not recomputed here."""
    before = await draft_totals(session=session, drafts=drafts)
    by_period: dict[str, list[str]] = defaultdict(list)
    for account_id, period in sorted(drafts):
        by_period[period].append(account_id)
    rates = await load_rates(session=session)
    taxes = Taxes(seller=seller, table=await load_tax_table(session=session))
    results: list[Redrafted] = []
    for period, account_ids in by_period.items():
        accounts = await _run_accounts(session, account_ids)
        rated = await _run_chunk(
            session=session,
            accounts=accounts,
            label=period,
            now=now,
            grace=grace,
            rates=rates,
            taxes=taxes,
        )
        currency = {account.id: account.currency for account in accounts}
        results.extend(
            _redrafted(period, result, before, currency[result.account_id]) for result in rated
        )
    return results


async def redraft(
    *,
    db: Database,
    drafts: Collection[tuple[str, str]],
    now: datetime,
    grace: timedelta,
    seller: Seller | None = None,
) -> list[Redrafted]:
    """Re-draft these drafts after a committed correction: sessions refreshed first (a changed
    profile rule queued its devices), then one write transaction. Unlike a run, no draft is
    finalized here, so a draft past its grace period is re-drafted, not finalized as it was."""
    if not drafts:
        return []
    await refresh_sessions(db=db, as_of=now)
    async with db.transaction(write=True) as session:
        return await rerate_in_session(
            session=session, drafts=drafts, now=now, grace=grace, seller=seller
        )


async def _run_accounts(session: AsyncSession, account_ids: list[str]) -> list[RunAccount]:
    query = (
        select(
            Account.id, Account.time_zone, Account.currency, Account.plan_id, Account.invoice_series
        )
        .where(Account.id.in_(account_ids), Account.plan_id.is_not(None))
        .order_by(Account.id)
    )
    return [RunAccount(*row) for row in await session.execute(query)]


def _redrafted(
    period: str,
    result: AccountResult,
    before: dict[tuple[str, str], tuple[int, str]],
    currency: str,
) -> Redrafted:
    old = before.get((result.account_id, period))
    return Redrafted(
        account_id=result.account_id,
        period=period,
        invoice_id=result.invoice_id,
        old_total="" if old is None else old[1],
        new_total=None if result.total is None else str(round_money(result.total, currency)),
        outcome=result.outcome,
    )
