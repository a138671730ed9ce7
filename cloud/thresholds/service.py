"""Usage thresholds: add, list and remove them (the API and the CLI call these).

Checked here rather than only in the request schema, because the CLI reaches these without HTTP:
the account exists; a units threshold names a metric; a named metric is charged by a version of
the account's plan (else a 422 naming it: a threshold on a metric nobody bills would never fire);
the value is positive and within the contract's digits; an account has at most
`MAX_PER_ACCOUNT` thresholds.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog.models import Account, PlanVersionRow
from cloud.errors import AccountNotFound, InvalidBillingInput, ThresholdNotFound
from cloud.thresholds.models import Measure, ThresholdFiring, UsageThreshold
from shared.bounds import check_quantity

MAX_PER_ACCOUNT = 100


@dataclass(frozen=True, slots=True)
class LastFiring:
    """The latest period a threshold fired in."""

    period: str
    fired_at: datetime
    observed: Decimal


async def create_threshold(
    *,
    session: AsyncSession,
    account_id: str,
    metric_id: str | None,
    measure: Measure,
    value: Decimal,
    now: datetime,
) -> UsageThreshold:
    """A new enabled threshold; see the module doc for what is refused."""
    account = await _account(session=session, account_id=account_id)
    check_value(value)
    if measure == Measure.UNITS and metric_id is None:
        raise InvalidBillingInput(
            "a units threshold needs a metric (or measure an amount)",
            detail={"measure": measure.value},
        )
    if metric_id is not None:
        await _check_metric_billed(session=session, account=account, metric_id=metric_id)
    count = await session.scalar(
        select(func.count())
        .select_from(UsageThreshold)
        .where(UsageThreshold.account_id == account_id)
    )
    if (count or 0) >= MAX_PER_ACCOUNT:
        raise InvalidBillingInput(
            f"account {account_id!r} has {MAX_PER_ACCOUNT} thresholds already: remove one first",
            detail={"account_id": account_id, "limit": MAX_PER_ACCOUNT},
        )
    row = UsageThreshold(
        account_id=account_id,
        metric_id=metric_id,
        measure=measure.value,
        value=value,
        created_at=now,
        enabled=True,
    )
    session.add(row)
    await session.flush()
    return row


def check_value(value: Decimal) -> None:
    """`InvalidBillingInput` unless the value is finite, positive and within the contract bounds."""
    if not value.is_finite() or value <= 0:
        raise InvalidBillingInput(
            f"threshold value {value}: must be a positive number", detail={"value": str(value)}
        )
    try:
        check_quantity(value)
    except ValueError as exc:
        raise InvalidBillingInput(
            f"threshold value: {exc}".replace("quantity", "number"), detail={"value": str(value)}
        ) from None


async def _account(*, session: AsyncSession, account_id: str) -> Account:
    account = await session.get(Account, account_id)
    if account is None:
        raise AccountNotFound(f"no account {account_id!r}", detail={"account_id": account_id})
    return account


async def _check_metric_billed(*, session: AsyncSession, account: Account, metric_id: str) -> None:
    """422 naming the metric unless some version of the account's plan charges it."""
    if account.plan_id is None:
        raise InvalidBillingInput(
            f"account {account.id!r} has no plan: metric {metric_id!r} is billed by nothing",
            detail={"account_id": account.id, "metric_id": metric_id},
        )
    terms = await session.scalars(
        select(PlanVersionRow.terms).where(PlanVersionRow.plan_id == account.plan_id)
    )
    charged = {str(charge["metric"]) for document in terms for charge in document["charges"]}
    if metric_id not in charged:
        raise InvalidBillingInput(
            f"metric {metric_id!r} is not charged by plan {account.plan_id!r} of account "
            f"{account.id!r} (it charges: {', '.join(sorted(charged)) or 'nothing'})",
            detail={"account_id": account.id, "plan_id": account.plan_id, "metric_id": metric_id},
        )


async def list_thresholds(
    *, session: AsyncSession, account_id: str
) -> list[tuple[UsageThreshold, LastFiring | None]]:
    """The account's thresholds in id order, each with its latest firing."""
    await _account(session=session, account_id=account_id)
    rows = list(
        await session.scalars(
            select(UsageThreshold)
            .where(UsageThreshold.account_id == account_id)
            .order_by(UsageThreshold.id)
        )
    )
    latest = await _latest_firings(session=session, threshold_ids=[row.id for row in rows])
    return [(row, latest.get(row.id)) for row in rows]


async def _latest_firings(
    *, session: AsyncSession, threshold_ids: list[int]
) -> dict[int, LastFiring]:
    if not threshold_ids:
        return {}
    newest = (
        select(ThresholdFiring.threshold_id, func.max(ThresholdFiring.period_start).label("start"))
        .where(ThresholdFiring.threshold_id.in_(threshold_ids))
        .group_by(ThresholdFiring.threshold_id)
        .subquery()
    )
    query = select(
        ThresholdFiring.threshold_id,
        ThresholdFiring.period,
        ThresholdFiring.fired_at,
        ThresholdFiring.observed,
    ).join(
        newest,
        (newest.c.threshold_id == ThresholdFiring.threshold_id)
        & (newest.c.start == ThresholdFiring.period_start),
    )
    return {
        threshold_id: LastFiring(period, fired_at, observed)
        for threshold_id, period, fired_at, observed in await session.execute(query)
    }


async def delete_threshold(*, session: AsyncSession, threshold_id: int) -> None:
    """Remove a threshold and its firings; `ThresholdNotFound` if there is none."""
    found = await session.scalar(
        select(UsageThreshold.id).where(UsageThreshold.id == threshold_id).with_for_update()
    )
    if found is None:
        raise ThresholdNotFound(
            f"no threshold {threshold_id}", detail={"threshold_id": threshold_id}
        )
    await session.execute(
        delete(ThresholdFiring).where(ThresholdFiring.threshold_id == threshold_id)
    )
    await session.execute(delete(UsageThreshold).where(UsageThreshold.id == threshold_id))


async def set_threshold_enabled(
    *, session: AsyncSession, threshold_id: int, enabled: bool
) -> UsageThreshold:
    """Pause (`enabled=False`) or resume a threshold; `ThresholdNotFound` if there is none.

    A paused threshold is not checked and does not fire; resumed, it fires in the current
    period if it is reached and has not fired in it yet (its firings are kept)."""
    row = await session.scalar(
        select(UsageThreshold).where(UsageThreshold.id == threshold_id).with_for_update()
    )
    if row is None:
        raise ThresholdNotFound(
            f"no threshold {threshold_id}", detail={"threshold_id": threshold_id}
        )
    row.enabled = enabled
    return row
