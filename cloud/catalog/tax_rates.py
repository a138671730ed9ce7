"""VAT rates: a country's rate per tax class (standard, reduced, zero), in force from a date.

A rate is in force from its `valid_from` (a local calendar date) until the next row of the same
(country, class). Rows are only added, never changed: an invoice froze the rate it used on each
line, and a new rate is a new row from its own date. Rates are percent, exact ("19", "7.7").

The invoice run reads every row once (`load_tax_table`) and asks `TaxTable.rate_on` for the rate
in force on the last day of the service period (see `cloud.invoices.parties`).
"""

import re
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from babel import Locale
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Date, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from cloud.catalog.checks import check_limit
from cloud.catalog.plan_terms import ExactDecimal
from cloud.catalog.store import insert_new
from cloud.db import Base, DecimalText, UtcDateTime
from cloud.domain import TaxClass
from cloud.errors import AlreadyExists, InvalidBillingInput, TaxRateMissing

MAX_RATE = Decimal(100)
MAX_RATE_DIGITS = 6  # "19", "7.7", "5.5", "8.125": a percent with a few decimals at most

EU_COUNTRIES = frozenset(
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split()  # noqa: SIM905
)
"""The EU member states (ISO 3166 alpha-2; Greece is GR here, EL only in VAT ids)."""

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_NOT_COUNTRIES = frozenset({"EU", "EZ", "QO", "UN", "XA", "XB", "ZZ"})  # CLDR groupings, unknown
_TERRITORIES = frozenset(
    str(code)
    for code in Locale("en").territories
    if _COUNTRY.fullmatch(str(code)) and code not in _NOT_COUNTRIES
)


class TaxRate(Base):
    """A country's VAT rate for one tax class, in force from `valid_from` (migration 0013)."""

    __tablename__ = "tax_rates"

    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    category: Mapped[str] = mapped_column(String(16), primary_key=True)
    valid_from: Mapped[date] = mapped_column(Date, primary_key=True)
    rate: Mapped[Decimal] = mapped_column(DecimalText)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


def check_country(value: str, *, field: str = "country") -> str:
    """An ISO 3166 alpha-2 country code Babel knows ("DE"); `InvalidBillingInput` otherwise."""
    if value not in _TERRITORIES:
        raise InvalidBillingInput(
            f"invalid {field} {value!r}: an ISO 3166 alpha-2 country code such as DE or FR",
            detail={"field": field, "value": value},
        )
    return value


def check_tax_class(value: str) -> TaxClass:
    """`standard`, `reduced` or `zero`; `InvalidBillingInput` otherwise."""
    try:
        return TaxClass(value)
    except ValueError:
        raise InvalidBillingInput(
            f"invalid tax category {value!r}: standard, reduced or zero",
            detail={"field": "category", "value": value},
        ) from None


def check_rate(tax_class: TaxClass, rate: Decimal) -> Decimal:
    """A percent that fits its class: zero is 0, standard and reduced above 0 and at most 100,
    with at most 6 significant digits; `InvalidBillingInput` otherwise."""
    finite = rate.is_finite()
    digits = len(rate.normalize().as_tuple().digits) if finite else 0
    if tax_class is TaxClass.ZERO:
        fits = finite and rate.is_zero()
        expected = "0"
    else:
        fits = finite and Decimal(0) < rate <= MAX_RATE and digits <= MAX_RATE_DIGITS
        expected = f"above 0 and at most 100, at most {MAX_RATE_DIGITS} digits"
    if not fits:
        raise InvalidBillingInput(
            f"VAT rate {rate} does not fit tax category {tax_class}: expected {expected}",
            detail={"field": "rate", "value": str(rate), "category": tax_class.value},
        )
    return rate


async def add_tax_rate(
    *, session: AsyncSession, country: str, category: str, valid_from: date, rate: Decimal
) -> TaxRate:
    """Add a rate in force from `valid_from`; `AlreadyExists` for the same (country, category,
    valid_from), `InvalidBillingInput` for a bad country, category or rate."""
    tax_class = check_tax_class(category)
    row = TaxRate(
        country=check_country(country),
        category=tax_class.value,
        valid_from=valid_from,
        rate=check_rate(tax_class, rate),
        created_at=datetime.now(UTC),
    )
    key = (row.country, row.category, row.valid_from)
    try:
        return await insert_new(session, row, what="tax rate", key=key)
    except AlreadyExists:
        shown = f"{row.country} {row.category} from {row.valid_from.isoformat()}"
        raise AlreadyExists(
            f"tax rate {shown} already exists: a rate never changes, add one from a later date",
            detail={
                "country": row.country,
                "category": row.category,
                "valid_from": row.valid_from.isoformat(),
            },
        ) from None


async def list_tax_rates(
    *, session: AsyncSession, country: str | None = None, limit: int = 1000
) -> list[TaxRate]:
    """Rates by country, category and date (oldest first), optionally of one country."""
    query = select(TaxRate).order_by(TaxRate.country, TaxRate.category, TaxRate.valid_from)
    if country is not None:
        query = query.where(TaxRate.country == check_country(country))
    return list(await session.scalars(query.limit(check_limit(limit))))


@dataclass(frozen=True)
class TaxTable:
    """Every rate, per (country, class): the dates (ascending) and the rate from each."""

    dates: Mapping[tuple[str, str], list[date]]
    rates: Mapping[tuple[str, str], list[Decimal]]

    @classmethod
    def of(cls, rows: Iterable[TaxRate]) -> "TaxTable":
        """The table of `rows` (any order)."""
        grouped: dict[tuple[str, str], list[tuple[date, Decimal]]] = defaultdict(list)
        for row in rows:
            grouped[(row.country, row.category)].append((row.valid_from, row.rate))
        ordered = {key: sorted(values) for key, values in grouped.items()}
        return cls(
            dates={key: [day for day, _ in values] for key, values in ordered.items()},
            rates={key: [rate for _, rate in values] for key, values in ordered.items()},
        )

    def rate_on(self, country: str, tax_class: TaxClass, day: date) -> Decimal:
        """The rate in force on `day`; `TaxRateMissing` naming country, category and date."""
        key = (country, tax_class.value)
        index = bisect_right(self.dates.get(key, []), day)
        if index == 0:
            raise TaxRateMissing(
                f"no VAT rate for country {country}, category {tax_class.value} in force on "
                f"{day.isoformat()}: add one with `tollgate-cloud tax-rate add` or "
                "POST /v1/tax-rates",
                detail={"country": country, "category": tax_class.value, "date": day.isoformat()},
            )
        return self.rates[key][index - 1]


async def load_tax_table(*, session: AsyncSession) -> TaxTable:
    """Every stored rate as a `TaxTable` (the run reads it once)."""
    return TaxTable.of(await session.scalars(select(TaxRate)))


class TaxRateDecl(BaseModel):
    """A `[[tax_rates]]` entry of a catalog file (`cloud.catalog.loader`)."""

    model_config = ConfigDict(extra="forbid")

    country: str = Field(description="ISO 3166 alpha-2, e.g. DE: the buyer's tax country")
    category: TaxClass = Field(description="the tax class charges and plan versions name")
    valid_from: date = Field(description="in force from this local date until the next row's")
    rate: ExactDecimal = Field(description='percent, exact, e.g. "19" or "7.7" (a string)')


async def apply_tax_rate(*, session: AsyncSession, decl: TaxRateDecl) -> bool:
    """Add the declared rate (True), or leave an identical one (False); a stored rate of that
    country, category and date with another value is `AlreadyExists` (rates are never changed:
    add a new one from a later date)."""
    key = (decl.country, decl.category, decl.valid_from)
    stored = await session.get(TaxRate, key)
    if stored is None:
        await add_tax_rate(
            session=session,
            country=decl.country,
            category=decl.category,
            valid_from=decl.valid_from,
            rate=decl.rate,
        )
        return True
    if stored.rate != decl.rate:
        raise AlreadyExists(
            f"tax rate {decl.country} {decl.category} from {decl.valid_from.isoformat()} is "
            f"{format(stored.rate.normalize(), 'f')}, not {decl.rate}: a rate never changes, "
            "add one from a later date",
            detail={"fields": ["rate"]},
        )
    return False
