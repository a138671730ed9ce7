"""Price models: how a charge turns a metric's value into an exact amount.

    billable = max(0, quantity - included_units)

    standard    billable x unit_price
    graduated   tier k holds the units in (up_to of tier k-1, up_to of tier k], the first tier
                from 0; each unit at its tier's price, plus the flat fee of every tier with units
    volume      the one tier with previous up_to < billable <= up_to prices every unit, plus its
                flat fee
    package     ceil(billable / package_size) x package_price (a started package counts whole)

Block-priced tiers (Kill Bill's usage tiers): a graduated or volume charge with `block_size`
prices blocks of that many units. The billable units become ceil(billable / block_size) blocks
(a started block is billed whole), each tier's price is per block, and tier bounds stay in units
(the catalog refuses a bound that is not a whole number of blocks, so no block straddles two
tiers): graduated bills each block at the price of the tier it falls in, volume every block at
the price of the tier the rounded-up units fall in. With block_size 1 and whole quantities
this is per-unit pricing.

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
    strings. A block-priced charge adds `block_size` and `blocks` (all blocks billed), and its
    steps say `blocks` and `block_price` instead of `unit_price` (`units` is then the tier's
    units counted in whole blocks).
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
    units = _blocked_units(charge, billable, detail)
    steps: list[dict[str, str | None]] = []
    total = ZERO
    lower = ZERO
    for tier in charge.tiers:
        if units <= lower:
            break
        upper = units if tier.up_to is None else min(units, tier.up_to)
        amount = _tier_price(charge, tier, upper - lower) + tier.flat_fee
        steps.append(_step(charge, tier, lower, upper - lower, amount))
        total += amount
        if tier.up_to is not None:
            lower = tier.up_to
    detail["steps"] = steps
    return total


def _volume(charge: Charge, billable: Decimal, detail: dict[str, object]) -> Decimal:
    _check_tiers(charge)
    units = _blocked_units(charge, billable, detail)
    steps: list[dict[str, str | None]] = []
    total = ZERO
    if units > ZERO:
        lower = ZERO
        for tier in charge.tiers:
            if tier.up_to is None or units <= tier.up_to:
                total = _tier_price(charge, tier, units) + tier.flat_fee
                steps.append(_step(charge, tier, lower, units, total))
                break
            lower = tier.up_to
    detail["steps"] = steps
    return total


def _package(charge: Charge, billable: Decimal, detail: dict[str, object]) -> Decimal:
    size, package_price = charge.package_size, charge.package_price
    if size is None or package_price is None or size <= ZERO:
        raise _bad_charge(charge, "a package charge needs a positive package_size and a price")
    packages = _whole_blocks(billable, size)
    detail.update(packages=str(packages), package_size=str(size), package_price=str(package_price))
    return packages * package_price


def _whole_blocks(units: Decimal, size: Decimal) -> Decimal:
    """ceil(units / size) for units >= 0, size > 0, exactly: a started block counts whole."""
    whole, rest = divmod(units, size)  # both non-negative: whole is the floor
    return whole + 1 if rest else whole


def _blocked_units(charge: Charge, billable: Decimal, detail: dict[str, object]) -> Decimal:
    """The units the tiers price: `billable`, or its whole blocks' units with a block size."""
    size = charge.block_size
    if size is None:
        return billable
    blocks = _whole_blocks(billable, size)
    detail.update(block_size=str(size), blocks=str(blocks))
    return blocks * size


def _tier_price(charge: Charge, tier: Tier, units: Decimal) -> Decimal:
    """`units` of the tier at its price: per unit, or per block (units are whole blocks)."""
    if charge.block_size is None:
        return units * tier.unit_price
    return units / charge.block_size * tier.unit_price  # exact: whole blocks (_check_tiers)


def _step(
    charge: Charge, tier: Tier, lower: Decimal, units: Decimal, amount: Decimal
) -> dict[str, str | None]:
    step: dict[str, str | None] = {
        "from": str(lower),
        "up_to": None if tier.up_to is None else str(tier.up_to),
        "units": str(units),
    }
    if charge.block_size is None:
        step["unit_price"] = str(tier.unit_price)
    else:
        step["blocks"] = str(units / charge.block_size)
        step["block_price"] = str(tier.unit_price)
    step.update(flat_fee=str(tier.flat_fee), amount=str(amount))
    return step


def _check_tiers(charge: Charge) -> None:
    # PlanTerms validates documents; this guards values built in code.
    tiers = charge.tiers
    if not tiers or tiers[-1].up_to is not None:
        raise _bad_charge(charge, "tiers must end with one unbounded tier (up_to None)")
    bounds = [tier.up_to for tier in tiers[:-1]]
    finite = [bound for bound in bounds if bound is not None]
    if len(finite) < len(bounds) or any(b <= a for a, b in pairwise([ZERO, *finite])):
        raise _bad_charge(charge, "tier up_to values must be positive and strictly increase")
    size = charge.block_size
    if size is not None and (size <= ZERO or any(bound % size for bound in finite)):
        raise _bad_charge(charge, "block_size must be positive and divide every tier up_to")


def _bad_charge(charge: Charge, message: str) -> InvalidBillingInput:
    return InvalidBillingInput(
        f"charge for metric {charge.metric!r}: {message}", detail={"metric": charge.metric}
    )
