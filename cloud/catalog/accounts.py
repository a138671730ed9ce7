"""Accounts: who is billed (a household or a company), in one currency and one time zone."""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from babel import Locale, UnknownLocaleError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog.checks import check_limit, check_name, check_series, check_slug
from cloud.catalog.models import Account, Plan
from cloud.catalog.store import get_row, insert_new
from cloud.catalog.tax_rates import check_country
from cloud.choices import BILLING_FIELDS as BILLING_FIELDS  # there for the CLI's help
from cloud.choices import DEFAULT_SERIES as DEFAULT_SERIES
from cloud.choices import AccountKind as AccountKind
from cloud.errors import AccountNotFound, InvalidBillingInput, PlanNotFound
from cloud.rating.money import check_currency
from cloud.rating.periods import check_time_zone
from cloud.seller import valid_vat_id


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


MAX_PAYMENT_TERMS_DAYS = 365
MAX_ADDRESS_LINES = 4


async def set_billing(
    *, session: AsyncSession, account_id: str, fields: Mapping[str, Any]
) -> Account:
    """Set the given billing fields (a None value clears one); each checked first, so a bad one
    changes nothing. A finalized invoice keeps the buyer it froze."""
    account = await get_account(session=session, account_id=account_id)
    checked = {name: _check_billing(name, value) for name, value in fields.items()}
    for name, value in checked.items():
        setattr(account, name, value)
    await session.flush()
    return account


def _check_billing(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == "billing_name":
        return check_name(str(value), field="billing_name")
    if name == "address":
        return check_address(value)
    if name == "country":
        return check_country(str(value))
    if name == "vat_id":
        return check_vat_id(str(value))
    if name == "customer_number":
        return _bounded_text(name, str(value), 64)
    if name == "payment_terms_days":
        return check_payment_terms(value)
    if name == "locale":
        return check_locale(str(value))
    raise InvalidBillingInput(f"unknown billing field {name!r}", detail={"field": name})


def check_address(value: Mapping[str, Any]) -> dict[str, Any]:
    """{"lines": [1..4 texts], "postcode", "city", "country" (ISO alpha-2)}, each bounded."""
    lines = value.get("lines") or []
    if not isinstance(lines, list) or not 1 <= len(lines) <= MAX_ADDRESS_LINES:
        raise InvalidBillingInput(
            f"address.lines: 1 to {MAX_ADDRESS_LINES} lines",
            detail={"field": "address.lines"},
        )
    unknown = sorted(set(value) - {"lines", "postcode", "city", "country"})
    if unknown:
        raise InvalidBillingInput(
            f"address: unknown fields {unknown}", detail={"field": "address", "unknown": unknown}
        )
    return {
        "lines": [_bounded_text("address.lines", str(line), 200) for line in lines],
        "postcode": _bounded_text("address.postcode", str(value.get("postcode") or ""), 16),
        "city": _bounded_text("address.city", str(value.get("city") or ""), 200),
        "country": check_country(str(value.get("country") or ""), field="address.country"),
    }


def check_vat_id(value: str) -> str:
    """A VAT id whose country checksum holds (python-stdnum), compacted; else refused."""
    try:
        return valid_vat_id(value)
    except ValueError as exc:
        raise InvalidBillingInput(str(exc), detail={"field": "vat_id", "value": value}) from None


def check_payment_terms(value: Any) -> int:
    """Whole days from issue to due date, 0 to 365."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidBillingInput(
            "payment_terms_days: a whole number of days", detail={"field": "payment_terms_days"}
        )
    if not 0 <= value <= MAX_PAYMENT_TERMS_DAYS:
        raise InvalidBillingInput(
            f"payment_terms_days {value}: 0 to {MAX_PAYMENT_TERMS_DAYS}",
            detail={"field": "payment_terms_days", "value": value},
        )
    return value


def check_locale(value: str) -> str:
    """A locale identifier Babel knows ("de_DE", "en_GB"); else refused."""
    try:
        Locale.parse(value)
    except (ValueError, TypeError, UnknownLocaleError):
        raise InvalidBillingInput(
            f"invalid locale {value!r}: a locale identifier such as de_DE or en_GB",
            detail={"field": "locale", "value": value},
        ) from None
    return value


def _bounded_text(field: str, value: str, limit: int) -> str:
    stripped = value.strip()
    if not 0 < len(stripped) <= limit:
        raise InvalidBillingInput(
            f"{field}: 1 to {limit} characters", detail={"field": field, "length": len(stripped)}
        )
    return stripped
