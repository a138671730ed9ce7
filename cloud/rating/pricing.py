"""Price models: how a charge turns a metric's value into an exact amount.

    billable = max(0, quantity - included_units)

    standard    billable x unit_price
    graduated   tier k holds the units in (up_to of tier k-1, up_to of tier k], the first tier
                from 0; each unit at its tier's price, plus the flat fee of every tier with units
    volume      the one tier with previous up_to < billable <= up_to prices every unit, plus its
                flat fee
    package     ceil(billable / package_size) x package_price (a started package counts whole)

No billable units cost nothing in every model (no flat fee either). Amounts here are exact: they
are computed in the exact context of `cloud.rating.arithmetic` (what cannot be exact is
`RatingOutOfBounds`), and the package count is an integer division with its remainder, not a
rounded quotient. The caller rounds each line once with `cloud.rating.money.round_money`.
Quantities may be fractional.
"""

from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise

from cloud.domain import Charge, PriceModel, Tier
from cloud.errors import InvalidBillingInput
from cloud.rating.arithmetic import exact

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Priced:
    """A charge applied to a quantity: billable units, exact amount, JSON-ready explanation.

    `detail` holds `model`, `included_units`, `billable` and, by model, `unit_price` (standard),
    `steps` (graduated, volume: one per tier with units, each {from, up_to, units, unit_price,
    flat_fee, amount}) or `packages`, `package_size`, `package_price` (package); decimals are
    strings.
    """

    billable: Decimal
    amount: Decimal
    detail: dict[str, object]


def price(charge: Charge, quantity: Decimal) -> Priced:
    """The exact amount the charge asks for `quantity` units of its metric."""
    with exact({"metric": charge.metric}):
        return _price(charge, quantity)


def _price(charge: Charge, quantity: Decimal) -> Priced:
    billable = max(ZERO, quantity - charge.included_units)
    detail: dict[str, object] = {
        "model": str(charge.model),
        "included_units": str(charge.included_units),
        "billable": str(billable),
    }
    if charge.model is PriceModel.STANDARD:
        amount = _standard(charge, billable, detail)
    elif charge.model is PriceModel.GRADUATED:
        amount = _graduated(charge, billable, detail)
    elif charge.model is PriceModel.VOLUME:
        amount = _volume(charge, billable, detail)
    else:
        amount = _package(charge, billable, detail)
    return Priced(billable=billable, amount=amount, detail=detail)


def _standard(charge: Charge, billable: Decimal, detail: dict[str, object]) -> Decimal:
    if charge.unit_price is None:
        raise _bad_charge(charge, "a standard charge needs unit_price")
    detail["unit_price"] = str(charge.unit_price)
    return billable * charge.unit_price


def _graduated(charge: Charge, billable: Decimal, detail: dict[str, object]) -> Decimal:
    _check_tiers(charge)
    steps: list[dict[str, str | None]] = []
    total = ZERO
    lower = ZERO
    for tier in charge.tiers:
        if billable <= lower:
            break
        upper = billable if tier.up_to is None else min(billable, tier.up_to)
        amount = (upper - lower) * tier.unit_price + tier.flat_fee
        steps.append(_step(tier, lower, upper - lower, amount))
        total += amount
        if tier.up_to is not None:
            lower = tier.up_to
    detail["steps"] = steps
    return total


def _volume(charge: Charge, billable: Decimal, detail: dict[str, object]) -> Decimal:
    _check_tiers(charge)
    steps: list[dict[str, str | None]] = []
    total = ZERO
    if billable > ZERO:
        lower = ZERO
        for tier in charge.tiers:
            if tier.up_to is None or billable <= tier.up_to:
                total = billable * tier.unit_price + tier.flat_fee
                steps.append(_step(tier, lower, billable, total))
                break
            lower = tier.up_to
    detail["steps"] = steps
    return total


def _package(charge: Charge, billable: Decimal, detail: dict[str, object]) -> Decimal:
    size, package_price = charge.package_size, charge.package_price
    if size is None or package_price is None or size <= ZERO:
        raise _bad_charge(charge, "a package charge needs a positive package_size and a price")
    whole, rest = divmod(billable, size)  # billable >= 0, size > 0: whole is the floor
    packages = whole + 1 if rest else whole  # a started package counts whole
    detail.update(packages=str(packages), package_size=str(size), package_price=str(package_price))
    return packages * package_price


def _step(tier: Tier, lower: Decimal, units: Decimal, amount: Decimal) -> dict[str, str | None]:
    return {
        "from": str(lower),
        "up_to": None if tier.up_to is None else str(tier.up_to),
        "units": str(units),
        "unit_price": str(tier.unit_price),
        "flat_fee": str(tier.flat_fee),
        "amount": str(amount),
    }


def _check_tiers(charge: Charge) -> None:
    # PlanTerms validates documents; this guards values built in code.
    tiers = charge.tiers
    if not tiers or tiers[-1].up_to is not None:
        raise _bad_charge(charge, "tiers must end with one unbounded tier (up_to None)")
    bounds = [tier.up_to for tier in tiers[:-1]]
    finite = [bound for bound in bounds if bound is not None]
    if len(finite) < len(bounds) or any(b <= a for a, b in pairwise([ZERO, *finite])):
        raise _bad_charge(charge, "tier up_to values must be positive and strictly increase")


def _bad_charge(charge: Charge, message: str) -> InvalidBillingInput:
    return InvalidBillingInput(
        f"charge for metric {charge.metric!r}: {message}", detail={"metric": charge.metric}
    )
