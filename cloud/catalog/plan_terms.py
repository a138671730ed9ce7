"""The plan version document: what the API accepts, what `plan_versions.terms` stores.

    {"effective_from": "2026-11-01T00:00:00+01:00", "base_fee": "9.90", "minimum_amount": "0",
     "charges": [{"metric": "stream_hours", "model": "graduated", "included_units": "10",
                  "tiers": [{"up_to": "100", "unit_price": "0.50"},
                            {"up_to": null, "unit_price": "0.40", "flat_fee": "0"}]}]}

Amounts and quantities are decimal strings (or integers); floats are refused, because a float in
a price is already wrong. `effective_from` must carry its UTC offset.
"""

from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise
from typing import Annotated, Any, Self

from pydantic import AwareDatetime, ConfigDict, Field, model_validator
from pydantic.functional_validators import AfterValidator, BeforeValidator

from cloud.domain import Charge, PlanVersion, PriceModel, TaxClass, Tier
from cloud.storable_text import RequestBody
from shared.bounds import check_quantity


def _exact_decimal(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError('a float is not exact: write the amount as a string, e.g. "0.10"')
    if isinstance(value, bool):
        raise ValueError("expected a decimal number")
    return value


def _bounded(value: Decimal) -> Decimal:
    # The contract's bounds (30 digits each side of the point) hold for prices as for
    # quantities, so rating never meets a number its exact context cannot hold. The number is
    # kept as written ("10.00" stays "10.00").
    try:
        check_quantity(value)
    except ValueError as exc:
        raise ValueError(str(exc).replace("quantity", "number", 1)) from None
    return value


ExactDecimal = Annotated[Decimal, BeforeValidator(_exact_decimal), AfterValidator(_bounded)]
NonNegative = Annotated[ExactDecimal, Field(ge=0, allow_inf_nan=False)]
Positive = Annotated[ExactDecimal, Field(gt=0, allow_inf_nan=False)]


class TierTerms(RequestBody):
    """A tier: units up to `up_to` (inclusive; null or omitted for the last, unbounded tier,
    since TOML has no null), priced per unit (`unit_price`) or, in a charge with `block_size`,
    per block (`block_price`)."""

    model_config = ConfigDict(extra="forbid")

    up_to: Positive | None = Field(
        default=None,
        description="the tier's last unit, inclusive, in the metric's units (also with "
        "block_size); omit it on the last tier, which is unbounded",
    )
    unit_price: NonNegative | None = Field(
        default=None, description="price of one unit in the tier (a charge without block_size)"
    )
    block_price: NonNegative | None = Field(
        default=None,
        description="price of one block of block_size units in the tier (a charge with "
        "block_size); a started block is billed whole",
    )
    flat_fee: NonNegative = Field(
        default=Decimal(0), description="added once when the tier holds any units"
    )


class ChargeTerms(RequestBody):
    """One priced metric; which price fields are required depends on `model`."""

    model_config = ConfigDict(extra="forbid")

    metric: str = Field(min_length=1, max_length=64, description="the metric charged")
    model: PriceModel = Field(description="how billable units are priced (see Pricing models)")
    description: str = Field(default="", description="the line's text on invoices")
    included_units: NonNegative = Field(
        default=Decimal(0), description="units free each period before billing starts"
    )
    unit_price: NonNegative | None = Field(
        default=None, description="standard only: the price of one billable unit"
    )
    tiers: list[TierTerms] = Field(
        default_factory=list, description="graduated and volume only: the tiers, in order"
    )
    package_size: Positive | None = Field(
        default=None, description="package only: units per package (a started one is billed)"
    )
    package_price: NonNegative | None = Field(
        default=None, description="package only: the price of one package"
    )
    block_size: Positive | None = Field(
        default=None,
        description="graduated and volume only: the tiers price blocks of this many units "
        "(their block_price), a started block billed whole; every tier up_to must be a whole "
        "number of blocks",
    )
    tax_category: TaxClass = Field(
        default=TaxClass.STANDARD,
        description="VAT class of this charge's usage lines: standard, reduced or zero (the "
        "buyer's tax country's rate of that class)",
    )

    @model_validator(mode="after")
    def _fields_match_model(self) -> Self:
        if self.model is PriceModel.STANDARD and self.unit_price is None:
            raise ValueError("a standard charge needs unit_price")
        if self.model is PriceModel.PACKAGE and (
            self.package_size is None or self.package_price is None
        ):
            raise ValueError("a package charge needs package_size and package_price")
        if self.model in (PriceModel.GRADUATED, PriceModel.VOLUME):
            _check_tiers(self.tiers)
            _check_tier_prices(self.tiers, self.block_size)
        elif self.tiers:
            raise ValueError(f"a {self.model} charge takes no tiers")
        elif self.block_size is not None:
            raise ValueError(
                f"a {self.model} charge takes no block_size (block_size is for graduated and "
                "volume tiers; a package charge prices blocks with package_size)"
            )
        return self


def _check_tier_prices(tiers: list[TierTerms], block_size: Decimal | None) -> None:
    """Per-unit tiers name unit_price, block tiers block_price; bounds are whole blocks."""
    for n, tier in enumerate(tiers, start=1):
        if block_size is None and (tier.unit_price is None or tier.block_price is not None):
            raise ValueError(
                f"tier {n}: a charge without block_size prices tiers with unit_price "
                "(block_price needs block_size on the charge)"
            )
        if block_size is not None and (tier.block_price is None or tier.unit_price is not None):
            raise ValueError(
                f"tier {n}: a charge with block_size prices tiers with block_price, not unit_price"
            )
        if block_size is not None and tier.up_to is not None and tier.up_to % block_size:
            raise ValueError(
                f"tier {n}: up_to {tier.up_to} is not a whole number of blocks of {block_size} "
                "(a block may not straddle two tiers)"
            )


def _check_tiers(tiers: list[TierTerms]) -> None:
    if not tiers:
        raise ValueError("graduated and volume charges need at least one tier")
    bounds = [tier.up_to for tier in tiers]
    if bounds[-1] is not None:
        raise ValueError("the last tier must be unbounded (up_to: null)")
    if any(bound is None for bound in bounds[:-1]):
        raise ValueError("only the last tier may be unbounded")
    finite = [bound for bound in bounds[:-1] if bound is not None]
    if any(a >= b for a, b in pairwise(finite)):
        raise ValueError("tier up_to values must strictly increase")


class PlanTerms(RequestBody):
    """A plan version's terms, effective from `effective_from` until the next version's."""

    model_config = ConfigDict(extra="forbid")

    effective_from: AwareDatetime = Field(
        description="in force from this instant (with its UTC offset) until the next version's"
    )
    base_fee: NonNegative = Field(
        default=Decimal(0),
        description="charged each period, prorated by the part of the period in force",
    )
    minimum_amount: NonNegative = Field(
        default=Decimal(0),
        description="a minimum line tops the version's lines up to this amount per period, "
        "prorated like the base fee",
    )
    charges: list[ChargeTerms] = Field(default_factory=list, description="one per metric charged")
    tax_category: TaxClass = Field(
        default=TaxClass.STANDARD,
        description="VAT class of the base fee and the minimum top-up: standard, reduced or zero",
    )

    @model_validator(mode="after")
    def _one_charge_per_metric(self) -> Self:
        metrics = [charge.metric for charge in self.charges]
        duplicates = sorted({m for m in metrics if metrics.count(m) > 1})
        if duplicates:
            raise ValueError(f"each metric may be charged once per version: {duplicates}")
        return self


def plan_version(terms: PlanTerms, *, plan_id: str, version: int, currency: str) -> PlanVersion:
    """The domain value of a validated document."""
    return PlanVersion(
        plan_id=plan_id,
        version=version,
        effective_from=terms.effective_from.astimezone(UTC),
        currency=currency,
        base_fee=terms.base_fee,
        minimum_amount=terms.minimum_amount,
        charges=tuple(_charge(charge) for charge in terms.charges),
        tax_category=terms.tax_category,
    )


def _charge(terms: ChargeTerms) -> Charge:
    return Charge(
        metric=terms.metric,
        model=terms.model,
        description=terms.description,
        included_units=terms.included_units,
        unit_price=terms.unit_price,
        tiers=tuple(_tier(tier) for tier in terms.tiers),
        package_size=terms.package_size,
        package_price=terms.package_price,
        block_size=terms.block_size,
        tax_category=terms.tax_category,
    )


def _tier(terms: TierTerms) -> Tier:
    # Validated: exactly one of the two prices is set (block_price with block_size).
    tier_price = terms.unit_price if terms.unit_price is not None else terms.block_price
    assert tier_price is not None
    return Tier(up_to=terms.up_to, unit_price=tier_price, flat_fee=terms.flat_fee)


def stored_terms(terms: PlanTerms) -> dict[str, Any]:
    """The JSON document kept in `plan_versions.terms` (decimals as strings, exact)."""
    return terms.model_dump(mode="json")


def load_stored_terms(document: dict[str, Any], *, effective_from: datetime) -> PlanTerms:
    """A stored document back as terms (the row's `effective_from` is authoritative)."""
    return PlanTerms.model_validate({**document, "effective_from": effective_from})
