"""Plans and their versions: what an account pays, in one currency, version by version.

Versions are append-only once used: invoices were rated under them, so a version a finalized
invoice used never changes (`replace_plan_version` is for the others, guarded by
`cloud.invoices.corrections`). A new version takes the next number and applies from its
`effective_from` until the next version's; its terms are stored as the `PlanTerms` document
(`cloud.catalog.plan_terms`).
"""

from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog.checks import check_name, check_slug
from cloud.catalog.models import Metric, Plan, PlanVersionRow
from cloud.catalog.plan_terms import PlanTerms, load_stored_terms, plan_version, stored_terms
from cloud.catalog.store import get_row, insert_new
from cloud.domain import PlanVersion
from cloud.errors import AlreadyExists, MetricNotFound, PlanNotFound
from cloud.rating.money import check_currency


async def create_plan(*, session: AsyncSession, plan_id: str, name: str, currency: str) -> Plan:
    """Create a plan (no versions yet: add them with `create_plan_version`)."""
    plan = Plan(
        id=check_slug("plan", plan_id),
        name=check_name(name),
        currency=check_currency(currency),
        created_at=datetime.now(UTC),
    )
    return await insert_new(session, plan, what="plan", key=plan.id)


async def get_plan(*, session: AsyncSession, plan_id: str) -> Plan:
    """The plan; `PlanNotFound` otherwise."""
    return await get_row(session, Plan, plan_id, missing=PlanNotFound, what="plan")


async def list_plans(*, session: AsyncSession) -> list[Plan]:
    """Every plan, in id order."""
    return list(await session.scalars(select(Plan).order_by(Plan.id)))


async def create_plan_version(
    *, session: AsyncSession, plan_id: str, terms: PlanTerms
) -> PlanVersionRow:
    """Append a version (previous number + 1); its `effective_from` must be new for the plan and
    every charged metric must exist."""
    await get_row(session, Plan, plan_id, missing=PlanNotFound, what="plan", for_update=True)
    await _require_metrics(session, [charge.metric for charge in terms.charges])
    effective_from = terms.effective_from.astimezone(UTC)
    rows = await version_rows(session=session, plan_id=plan_id)
    clash = next((row for row in rows if row.effective_from == effective_from), None)
    if clash is not None:
        raise AlreadyExists(
            f"plan {plan_id!r} already has version {clash.version} effective from "
            f"{effective_from.isoformat()}",
            detail={"plan_id": plan_id, "version": clash.version},
        )
    row = PlanVersionRow(
        plan_id=plan_id,
        version=max((row.version for row in rows), default=0) + 1,
        effective_from=effective_from,
        terms=stored_terms(terms),
        created_at=datetime.now(UTC),
    )
    return await insert_new(
        session, row, what=f"plan {plan_id!r} version", key=(plan_id, row.version)
    )


async def replace_plan_version(
    *, session: AsyncSession, plan_id: str, version: int, terms: PlanTerms
) -> PlanVersionRow:
    """Replace the terms (and `effective_from`) of a stored version, keeping its number.

    Only for a version no finalized invoice used: the caller checks that
    (`cloud.invoices.corrections`). `created_at` becomes now, so the runs' late-input check
    sees the version as new.
    """
    await get_row(session, Plan, plan_id, missing=PlanNotFound, what="plan", for_update=True)
    row = await get_row(
        session,
        PlanVersionRow,
        (plan_id, version),
        missing=PlanNotFound,
        what=f"plan {plan_id!r} version",
        for_update=True,
    )
    await _require_metrics(session, [charge.metric for charge in terms.charges])
    effective_from = terms.effective_from.astimezone(UTC)
    rows = await version_rows(session=session, plan_id=plan_id)
    clash = next(
        (r for r in rows if r.effective_from == effective_from and r.version != version), None
    )
    if clash is not None:
        raise AlreadyExists(
            f"plan {plan_id!r} already has version {clash.version} effective from "
            f"{effective_from.isoformat()}",
            detail={"plan_id": plan_id, "version": clash.version},
        )
    row.effective_from, row.terms = effective_from, stored_terms(terms)
    row.created_at = datetime.now(UTC)
    await session.flush()
    return row


async def version_rows(*, session: AsyncSession, plan_id: str) -> list[PlanVersionRow]:
    """A plan's stored versions by `effective_from`."""
    query = select(PlanVersionRow).where(PlanVersionRow.plan_id == plan_id)
    return list(await session.scalars(query.order_by(PlanVersionRow.effective_from)))


def version_terms(row: PlanVersionRow) -> PlanTerms:
    """A stored version's terms document."""
    return load_stored_terms(row.terms, effective_from=row.effective_from)


async def plan_versions(*, session: AsyncSession, plan_id: str) -> list[PlanVersion]:
    """A plan's versions as domain values, by `effective_from` (`PlanNotFound` if no plan)."""
    plan = await get_plan(session=session, plan_id=plan_id)
    rows = await version_rows(session=session, plan_id=plan_id)
    return [_domain(row, currency=plan.currency) for row in rows]


async def all_plan_versions(*, session: AsyncSession) -> dict[str, list[PlanVersion]]:
    """Every plan's versions by plan id (each list by `effective_from`), in two queries."""
    currencies = dict((await session.execute(select(Plan.id, Plan.currency))).all())
    query = select(PlanVersionRow).order_by(PlanVersionRow.plan_id, PlanVersionRow.effective_from)
    versions: dict[str, list[PlanVersion]] = defaultdict(list)
    for row in await session.scalars(query):
        versions[row.plan_id].append(_domain(row, currency=currencies[row.plan_id]))
    return {plan_id: versions.get(plan_id, []) for plan_id in currencies}


def _domain(row: PlanVersionRow, *, currency: str) -> PlanVersion:
    return plan_version(
        version_terms(row), plan_id=row.plan_id, version=row.version, currency=currency
    )


async def _require_metrics(session: AsyncSession, metrics: list[str]) -> None:
    if not metrics:
        return
    found = await session.scalars(select(Metric.id).where(Metric.id.in_(metrics)))
    missing = sorted(set(metrics) - set(found))
    if missing:
        raise MetricNotFound(
            f"plan terms charge unknown metric(s) {', '.join(missing)}",
            detail={"metrics": missing},
        )
