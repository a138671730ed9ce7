"""Accounts: who is billed (a household or a company), in one currency and one time zone."""

import enum
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog.checks import check_limit, check_name, check_series, check_slug
from cloud.catalog.models import Account, Plan
from cloud.catalog.store import get_row, insert_new
from cloud.errors import AccountNotFound, InvalidBillingInput, PlanNotFound
from cloud.rating.money import check_currency
from cloud.rating.periods import check_time_zone

DEFAULT_SERIES = "INV"


class AccountKind(enum.StrEnum):
    """Who an account bills."""

    HOUSEHOLD = "household"
    COMPANY = "company"


def check_kind(kind: str) -> AccountKind:
    """`household` or `company`; `InvalidBillingInput` otherwise."""
    try:
        return AccountKind(kind)
    except ValueError:
        raise InvalidBillingInput(
            f"invalid account kind {kind!r}: household or company",
            detail={"field": "kind", "value": kind},
        ) from None


async def create_account(
    *,
    session: AsyncSession,
    account_id: str,
    name: str,
    kind: str,
    currency: str,
    time_zone: str,
    plan_id: str | None = None,
    invoice_series: str = DEFAULT_SERIES,
) -> Account:
    """Create an account; its plan (if any) must exist and bill in the account's currency."""
    account = Account(
        id=check_slug("account", account_id),
        name=check_name(name),
        kind=check_kind(kind).value,
        currency=check_currency(currency),
        time_zone=check_time_zone(time_zone),
        plan_id=None,
        invoice_series=check_series(invoice_series),
        created_at=datetime.now(UTC),
    )
    if plan_id is not None:
        account.plan_id = await _plan_for(session, plan_id=plan_id, currency=account.currency)
    return await insert_new(session, account, what="account", key=account.id)


async def get_account(*, session: AsyncSession, account_id: str) -> Account:
    """The account; `AccountNotFound` otherwise."""
    return await get_row(session, Account, account_id, missing=AccountNotFound, what="account")


async def list_accounts(
    *, session: AsyncSession, limit: int = 100, after: str | None = None
) -> list[Account]:
    """Up to `limit` accounts in id order, after the id `after` (keyset paging)."""
    query = select(Account).order_by(Account.id).limit(check_limit(limit))
    if after is not None:
        query = query.where(Account.id > after)
    return list(await session.scalars(query))


async def rename_account(*, session: AsyncSession, account_id: str, name: str) -> Account:
    """Change an account's display name."""
    account = await get_account(session=session, account_id=account_id)
    account.name = check_name(name)
    await session.flush()
    return account


async def set_account_plan(
    *, session: AsyncSession, account_id: str, plan_id: str | None
) -> Account:
    """Put the account on `plan_id` (same currency) or, with None, on no plan."""
    account = await get_account(session=session, account_id=account_id)
    if plan_id is not None:
        plan_id = await _plan_for(session, plan_id=plan_id, currency=account.currency)
    account.plan_id = plan_id
    await session.flush()
    return account


async def _plan_for(session: AsyncSession, *, plan_id: str, currency: str) -> str:
    plan = await get_row(session, Plan, plan_id, missing=PlanNotFound, what="plan")
    if plan.currency != currency:
        raise InvalidBillingInput(
            f"plan {plan_id!r} bills in {plan.currency}, the account in {currency}",
            detail={"field": "plan_id", "plan_currency": plan.currency, "currency": currency},
        )
    return plan.id
