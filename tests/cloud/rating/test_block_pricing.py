"""Block-priced tiers: known answers by hand at 0, inside the first block, at a tier boundary,
one past it, a fractional quantity; block_size 1 is per-unit pricing.

The tiers of these tests price blocks of 10 minutes (Kill Bill's usage tiers):

    (0, 60]   0.50 a block
    (60, -)   0.40 a block, flat fee 1.00
"""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.domain import Charge, PriceModel, Tier
from cloud.errors import InvalidBillingInput
from cloud.rating.pricing import price
from tests.cloud.rating.test_pricing import tier_lists

D = Decimal

BLOCK_TIERS = (
    Tier(up_to=D(60), unit_price=D("0.50")),
    Tier(up_to=None, unit_price=D("0.40"), flat_fee=D("1.00")),
)


def block_charge(model: PriceModel, **extra: Decimal) -> Charge:
    """A charge of the module's block tiers, blocks of 10 units."""
    return Charge(metric="minutes", model=model, tiers=BLOCK_TIERS, block_size=D(10), **extra)


@pytest.mark.parametrize(
    ("quantity", "blocks", "amount"),
    [
        ("0", "0", "0"),  # nothing: no block, no flat fee
        ("3", "1", "0.50"),  # inside the first block: a started block is billed whole
        ("10", "1", "0.50"),  # exactly one block
        ("25.5", "3", "1.50"),  # fractional: ceil(25.5 / 10) = 3 blocks x 0.50
        ("60", "6", "3.00"),  # exactly at the boundary: 6 x 0.50
        ("61", "7", "4.40"),  # one past: 6 x 0.50 + 1 x 0.40 + 1.00 flat = 3.00 + 0.40 + 1.00
        ("125", "13", "6.80"),  # 6 x 0.50 + 7 x 0.40 + 1.00 = 3.00 + 2.80 + 1.00
    ],
)
def test_graduated_blocks(quantity: str, blocks: str, amount: str) -> None:
    priced = price(block_charge(PriceModel.GRADUATED), D(quantity))
    assert priced.billable == D(quantity)  # the measured units, not rounded
    assert priced.amount == D(amount)
    assert priced.detail["blocks"] == blocks
    assert priced.detail["block_size"] == "10"


@pytest.mark.parametrize(
    ("quantity", "amount"),
    [
        ("0", "0"),
        ("3", "0.50"),  # 1 block x 0.50
        ("25.5", "1.50"),  # 3 blocks x 0.50
        ("60", "3.00"),  # at the boundary, first tier: 6 x 0.50
        ("61", "3.80"),  # 70 units in blocks, every block at 0.40: 7 x 0.40 + 1.00 flat
    ],
)
def test_volume_blocks(quantity: str, amount: str) -> None:
    assert price(block_charge(PriceModel.VOLUME), D(quantity)).amount == D(amount)


def test_graduated_block_steps_detail() -> None:
    # 61 minutes: 7 blocks; (0, 60] 6 blocks x 0.50 = 3.00; (60, -) 1 block x 0.40 + 1.00 = 1.40
    priced = price(block_charge(PriceModel.GRADUATED), D(61))
    assert priced.detail == {
        "model": "graduated", "included_units": "0", "billable": "61", "block_size": "10",
        "blocks": "7",
        "steps": [
            {"from": "0", "up_to": "60", "units": "60", "blocks": "6", "block_price": "0.50",
             "flat_fee": "0", "amount": "3.00"},
            {"from": "60", "up_to": None, "units": "10", "blocks": "1", "block_price": "0.40",
             "flat_fee": "1.00", "amount": "1.40"},
        ],
    }  # fmt: skip


def test_blocks_count_after_included_units() -> None:
    # 16 measured, 5 included: 11 billable -> 2 blocks x 0.50 = 1.00
    priced = price(block_charge(PriceModel.GRADUATED, included_units=D(5)), D(16))
    assert (priced.billable, priced.amount, priced.detail["blocks"]) == (D(11), D("1.00"), "2")


@pytest.mark.parametrize(
    ("block_size", "bound"),
    [(D(0), D(60)), (D(-10), D(60)), (D(10), D(65))],  # not positive; 65 is 6.5 blocks
)
def test_unusable_block_charge_is_refused(block_size: Decimal, bound: Decimal) -> None:
    tiers = (Tier(up_to=bound, unit_price=D(1)), Tier(up_to=None, unit_price=D(1)))
    charge = Charge(metric="m", model=PriceModel.GRADUATED, tiers=tiers, block_size=block_size)
    with pytest.raises(InvalidBillingInput, match="block_size must be positive and divide"):
        price(charge, D(20))


@given(
    tiers=tier_lists(),
    units=st.integers(min_value=0, max_value=120),
    model=st.sampled_from([PriceModel.GRADUATED, PriceModel.VOLUME]),
)
def test_block_size_one_is_per_unit_pricing(
    tiers: tuple[Tier, ...], units: int, model: PriceModel
) -> None:
    per_unit = Charge(metric="m", model=model, tiers=tiers)
    blocks = Charge(metric="m", model=model, tiers=tiers, block_size=D(1))
    assert price(blocks, D(units)).amount == price(per_unit, D(units)).amount
