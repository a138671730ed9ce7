"""HTTP routes of VAT rates: add one (billing key), list them (reading key)."""

from datetime import date
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from cloud.api import BillingDep, DatabaseDep, ReadDep, error_responses
from cloud.catalog.plan_terms import ExactDecimal
from cloud.catalog.tax_rates import TaxRate, add_tax_rate, list_tax_rates
from cloud.domain import TaxClass
from cloud.storable_text import RequestBody

router = APIRouter(prefix="/v1", tags=["catalog"])
AUTH = (401, 403)
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$", examples=["DE"])]


class TaxRateCreate(RequestBody):
    """A VAT rate of a country and tax category, in force from `valid_from` (a local date)."""

    model_config = ConfigDict(extra="forbid")

    country: Country = Field(description="ISO 3166 alpha-2")
    category: TaxClass
    valid_from: date = Field(examples=["2026-01-01"])
    rate: ExactDecimal = Field(
        description='percent as a string, e.g. "19" or "7.7"; 0 for the zero category',
        examples=["19"],
    )


class TaxRateOut(BaseModel):
    """A stored VAT rate."""

    country: str
    category: str
    valid_from: date
    rate: str = Field(description="percent, e.g. 19 or 7.7")

    @classmethod
    def of(cls, row: TaxRate) -> "TaxRateOut":
        """From the stored row."""
        return cls(
            country=row.country,
            category=row.category,
            valid_from=row.valid_from,
            rate=format(row.rate.normalize(), "f"),  # "19", "7.7"
        )


@router.post("/tax-rates", status_code=201, responses=error_responses(*AUTH, 409, 422))
async def post_tax_rate(body: TaxRateCreate, db: DatabaseDep, _: BillingDep) -> TaxRateOut:
    """Add a VAT rate from a date on (409 if that country, category and date has one)."""
    async with db.transaction(write=True) as session:
        row = await add_tax_rate(
            session=session,
            country=body.country,
            category=body.category,
            valid_from=body.valid_from,
            rate=Decimal(body.rate),
        )
        return TaxRateOut.of(row)


@router.get("/tax-rates", responses=error_responses(*AUTH, 422))
async def get_tax_rates(
    db: DatabaseDep,
    _: ReadDep,
    country: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
) -> list[TaxRateOut]:
    """Every VAT rate (at most 1000), by country, category and date, optionally of one country."""
    async with db.transaction() as session:
        return [
            TaxRateOut.of(row) for row in await list_tax_rates(session=session, country=country)
        ]
