"""Price models: known answers by hand at 0, at each tier boundary and one past it."""

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.domain import Charge, PriceModel, Tier
from cloud.errors import InvalidBillingInput
from cloud.rating.pricing import price

D = Decimal

STANDARD = Charge(
    metric="stream_hours", model=PriceModel.STANDARD, included_units=D(10), unit_price=D("0.50")
)
TIERS = (
    Tier(up_to=D(100), unit_price=D("0.50")),
    Tier(up_to=D(500), unit_price=D("0.40"), flat_fee=D("5.00")),
    Tier(up_to=None, unit_price=D("0.30"), flat_fee=D("10.00")),
)
GRADUATED = Charge(metric="m", model=PriceModel.GRADUATED, tiers=TIERS)
VOLUME = Charge(metric="m", model=PriceModel.VOLUME, tiers=TIERS)
PACKAGE = Charge(
    metric="sms",
    model=PriceModel.PACKAGE,
    included_units=D(5),
    package_size=D(10),
    package_price=D("2.00"),
)


@pytest.mark.parametrize(
    ("quantity", "billable", "amount"),
    [
        ("0", "0", "0"),
        ("5", "0", "0"),  # below the included 10
        ("10", "0", "0"),  # exactly the included 10
        ("11", "1", "0.50"),  # one past: 1 x 0.50
        ("12.5", "2.5", "1.25"),  # fractional: 2.5 x 0.50
    ],
)
def test_standard(quantity: str, billable: str, amount: str) -> None:
    priced = price(STANDARD, D(quantity))
    assert priced.billable == D(billable)
    assert priced.amount == D(amount)
    assert priced.detail["unit_price"] == "0.50"
    assert priced.detail["included_units"] == "10"


@pytest.mark.parametrize(
    ("quantity", "amount", "tiers_used"),
    [
        ("0", "0", 0),  # nothing, no flat fee
        ("1", "0.50", 1),  # 1 x 0.50
        ("100", "50.00", 1),  # exactly at the first boundary: 100 x 0.50
        ("100.5", "55.20", 2),  # 50 + 0.5 x 0.40 + 5 flat
        ("101", "55.40", 2),  # one past: 50 + 1 x 0.40 + 5 flat
        ("500", "215.00", 2),  # at the second boundary: 50 + 400 x 0.40 + 5
        ("501", "225.30", 3),  # one past: 215 + 1 x 0.30 + 10 flat
    ],
)
def test_graduated(quantity: str, amount: str, tiers_used: int) -> None:
    priced = price(GRADUATED, D(quantity))
    assert priced.amount == D(amount)
    steps = priced.detail["steps"]
    assert isinstance(steps, list)
    assert len(steps) == tiers_used
    assert sum((D(step["amount"]) for step in steps), D(0)) == D(amount)


def test_graduated_steps_detail() -> None:
    # 501 units: (0, 100] 100 x 0.50 = 50; (100, 500] 400 x 0.40 + 5 = 165; (500, -) 1 x 0.30 + 10
    priced = price(GRADUATED, D(501))
    assert priced.detail["steps"] == [
        {"from": "0", "up_to": "100", "units": "100", "unit_price": "0.50", "flat_fee": "0",
         "amount": "50.00"},
        {"from": "100", "up_to": "500", "units": "400", "unit_price": "0.40", "flat_fee": "5.00",
         "amount": "165.00"},
        {"from": "500", "up_to": None, "units": "1", "unit_price": "0.30", "flat_fee": "10.00",
         "amount": "10.30"},
    ]  # fmt: skip
    json.dumps(priced.detail)  # JSON-ready


def test_graduated_after_included_units() -> None:
    # 120 measured, 20 included: 100 billable, all in the first tier: 100 x 0.50 = 50
    charge = Charge(metric="m", model=PriceModel.GRADUATED, tiers=TIERS, included_units=D(20))
    priced = price(charge, D(120))
    assert (priced.billable, priced.amount) == (D(100), D(50))


@pytest.mark.parametrize(
    ("quantity", "amount"),
    [
        ("0", "0"),  # no tier, no flat fee
        ("0.5", "0.25"),  # 0.5 x 0.50
        ("100", "50.00"),  # at the boundary, first tier: 100 x 0.50
        ("100.5", "45.20"),  # past it every unit at 0.40: 100.5 x 0.40 + 5 = 40.20 + 5
        ("101", "45.40"),  # 101 x 0.40 + 5: cheaper than 100 units (the volume jump)
        ("500", "205.00"),  # 500 x 0.40 + 5
        ("501", "160.30"),  # 501 x 0.30 + 10
    ],
)
def test_volume(quantity: str, amount: str) -> None:
    priced = price(VOLUME, D(quantity))
    assert priced.amount == D(amount)
    steps = priced.detail["steps"]
    assert isinstance(steps, list)
    assert len(steps) == (0 if quantity == "0" else 1)
    if steps:
        assert steps[0]["units"] == quantity


@pytest.mark.parametrize(
    ("model", "quantity", "amount"),
    [
        # tiers: (0, 10] free with a 3.00 flat fee, then 1.00 a unit
        (PriceModel.GRADUATED, "0", "0"),  # zero units: no flat fee
        (PriceModel.GRADUATED, "1", "3.00"),
        (PriceModel.GRADUATED, "10", "3.00"),
        (PriceModel.GRADUATED, "11", "4.00"),  # 3 flat + 1 x 1.00
        (PriceModel.VOLUME, "0", "0"),
        (PriceModel.VOLUME, "10", "3.00"),  # 10 x 0 + 3
        (PriceModel.VOLUME, "11", "11.00"),  # 11 x 1.00, no flat fee in that tier
    ],
)
def test_flat_fees(model: PriceModel, quantity: str, amount: str) -> None:
    tiers = (Tier(up_to=D(10), unit_price=D(0), flat_fee=D("3.00")), Tier(None, D("1.00")))
    assert price(Charge(metric="m", model=model, tiers=tiers), D(quantity)).amount == D(amount)


@pytest.mark.parametrize(
    ("quantity", "billable", "packages", "amount"),
    [
        ("0", "0", "0", "0"),
        ("5", "0", "0", "0"),  # all included
        ("6", "1", "1", "2.00"),  # one started package counts whole
        ("15", "10", "1", "2.00"),  # exactly one package
        ("15.5", "10.5", "2", "4.00"),  # a fraction past: a second package
        ("16", "11", "2", "4.00"),
    ],
)
def test_package(quantity: str, billable: str, packages: str, amount: str) -> None:
    priced = price(PACKAGE, D(quantity))
    assert (priced.billable, priced.amount) == (D(billable), D(amount))
    assert priced.detail["packages"] == packages


@pytest.mark.parametrize(
    "charge",
    [
        Charge(metric="m", model=PriceModel.STANDARD),  # no unit price
        Charge(metric="m", model=PriceModel.PACKAGE, package_size=D(10)),  # no package price
        Charge(
            metric="m", model=PriceModel.PACKAGE, package_size=D(0), package_price=D(1)
        ),  # zero size
        Charge(metric="m", model=PriceModel.GRADUATED),  # no tiers
        Charge(metric="m", model=PriceModel.VOLUME, tiers=(Tier(D(10), D(1)),)),  # bounded last
        Charge(
            metric="m",
            model=PriceModel.GRADUATED,
            tiers=(Tier(D(10), D(1)), Tier(D(10), D(1)), Tier(None, D(1))),
        ),  # not increasing
    ],
)
def test_unusable_charge_is_refused(charge: Charge) -> None:
    with pytest.raises(InvalidBillingInput, match="charge for metric 'm'"):
        price(charge, D(20))


def _naive_graduated(tiers: tuple[Tier, ...], units: int) -> Decimal:
    """Unit by unit: each unit at the price of the tier it falls in, plus used tiers' flat fees."""
    total, used = D(0), set()
    for unit in range(1, units + 1):
        index = next(i for i, t in enumerate(tiers) if t.up_to is None or unit <= t.up_to)
        total += tiers[index].unit_price
        used.add(index)
    return total + sum((tiers[i].flat_fee for i in used), D(0))


cents = st.integers(min_value=0, max_value=10_000).map(lambda c: D(c) / 100)


@st.composite
def tier_lists(draw: st.DrawFn) -> tuple[Tier, ...]:
    bounds = sorted(draw(st.sets(st.integers(min_value=1, max_value=60), max_size=4)))
    ups: list[Decimal | None] = [D(b) for b in bounds]
    return tuple(
        Tier(up_to=up, unit_price=draw(cents), flat_fee=draw(cents)) for up in [*ups, None]
    )


@given(tiers=tier_lists(), units=st.integers(min_value=0, max_value=120))
def test_graduated_equals_unit_by_unit(tiers: tuple[Tier, ...], units: int) -> None:
    charge = Charge(metric="m", model=PriceModel.GRADUATED, tiers=tiers)
    assert price(charge, D(units)).amount == _naive_graduated(tiers, units)
