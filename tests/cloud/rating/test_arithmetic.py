"""Exact arithmetic: sums and products never round, rounding happens where the rules say, and
what cannot be exact is `RatingOutOfBounds` naming where, never a decimal traceback.

The property tests compare with integers and fractions, which cannot round: every quantity of
the contract (30 digits each side of the point) is an integer number of 10^-30 units.
"""

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import (
    ROUND_DOWN,
    Context,
    Decimal,
    DecimalException,
    getcontext,
    localcontext,
    setcontext,
)
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.domain import (
    Aggregation,
    BillableEvent,
    Charge,
    CloseReason,
    DurationUnit,
    LineKind,
    MetricField,
    MetricSource,
    MetricSpec,
    PlanVersion,
    PriceModel,
    RatedLine,
    SessionPiece,
    Tier,
)
from cloud.errors import InvalidBillingInput, RatingOutOfBounds
from cloud.rating.arithmetic import MAX_AMOUNT, divide_half_up
from cloud.rating.metrics import measure
from cloud.rating.money import MINOR_UNITS, prorate, round_money
from cloud.rating.pricing import price
from cloud.rating.rating import AccountUsage, rate_period
from shared.bounds import MAX_QUANTITY_FRACTION_DIGITS, MAX_QUANTITY_INTEGER_DIGITS

D = Decimal
ZERO = D(0)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
SCALE = 10**MAX_QUANTITY_FRACTION_DIGITS  # the smallest unit of a quantity is 10^-30
LARGEST = 10**MAX_QUANTITY_INTEGER_DIGITS * SCALE - 1  # 30 nines, point, 30 nines, in 10^-30

QUANTITY_SUM = MetricSpec(
    id="energy",
    source=MetricSource.EVENTS,
    aggregation=Aggregation.SUM,
    field=MetricField.QUANTITY,
)
DURATION_SUM = MetricSpec(
    id="stream",
    source=MetricSource.SESSIONS,
    aggregation=Aggregation.SUM,
    field=MetricField.DURATION,
    duration_unit=DurationUnit.HOUR,
)


def event(seq: int, quantity: Decimal) -> BillableEvent:
    """A meter reading of `quantity`."""
    return BillableEvent(
        gateway_id="gw",
        seq=seq,
        device_id="meter1",
        channel=None,
        name="reading",
        kind="measurement",
        quantity=quantity,
        unit="kWh",
        occurred_at=NOV + timedelta(seconds=seq),
    )


def piece(session_id: int, start: datetime, length: timedelta) -> SessionPiece:
    """A session piece of `length` from `start`."""
    return SessionPiece(
        session_id=session_id,
        device_id="cam1",
        channel=None,
        name="stream_start",
        profile="camera",
        started_at=start,
        ended_at=start + length,
        close_reason=CloseReason.DEACTIVATED,
        piece_start=start,
        piece_end=start + length,
        is_start=True,
    )


def from_units(units: int) -> Decimal:
    """A quantity given in 10^-30 units, built without any context (a digit tuple)."""
    digits = tuple(int(c) for c in str(abs(units)))
    return Decimal((1 if units < 0 else 0, digits, -MAX_QUANTITY_FRACTION_DIGITS))


def to_units(value: Decimal) -> int:
    """A value with at most 30 places as an integer number of 10^-30 units (no context)."""
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    assert exponent >= -MAX_QUANTITY_FRACTION_DIGITS
    places = exponent + MAX_QUANTITY_FRACTION_DIGITS
    magnitude: int = int("".join(map(str, digits))) * 10**places
    return -magnitude if sign else magnitude


def half_up(value: Fraction, places: int) -> Fraction:
    """`value` rounded half away from zero to `places` decimals, in fractions."""
    scaled = abs(value) * 10**places
    whole = scaled.numerator // scaled.denominator
    if scaled - whole >= Fraction(1, 2):
        whole += 1
    return Fraction(-whole if value < 0 else whole, 10**places)


# --- metric sums are integer arithmetic ---------------------------------------------------------

contract_units = st.integers(min_value=-LARGEST, max_value=LARGEST)


@given(st.lists(contract_units, max_size=40))
def test_a_quantity_sum_is_the_integer_sum_of_its_units(units: list[int]) -> None:
    events = [event(seq, from_units(n)) for seq, n in enumerate(units, start=1)]

    measured = measure(QUANTITY_SUM, pieces=[], events=events, profile_of={})

    assert to_units(measured.value) == sum(units)


@given(st.lists(st.integers(min_value=0, max_value=LARGEST), min_size=1, max_size=40))
def test_a_sum_of_largest_and_smallest_quantities_keeps_every_digit(units: list[int]) -> None:
    # the extremes of the range: a full 30-digit integer part next to a lone 10^-30
    events = [event(1, from_units(LARGEST)), event(2, from_units(1))]
    events += [event(seq, from_units(n)) for seq, n in enumerate(units, start=3)]

    measured = measure(QUANTITY_SUM, pieces=[], events=events, profile_of={})

    assert to_units(measured.value) == LARGEST + 1 + sum(units)


@given(
    st.lists(
        st.integers(min_value=0, max_value=100 * 365 * 86_400 * 10**6),  # up to a century, in µs
        max_size=20,
    ),
    st.sampled_from(list(DurationUnit)),
)
def test_a_duration_sum_is_the_integer_sum_of_microseconds(
    lengths: list[int], unit: DurationUnit
) -> None:
    start = datetime(1970, 1, 1, tzinfo=UTC)
    pieces = [
        piece(n, start, timedelta(microseconds=length)) for n, length in enumerate(lengths, 1)
    ]
    spec = MetricSpec(
        id="stream",
        source=MetricSource.SESSIONS,
        aggregation=Aggregation.SUM,
        field=MetricField.DURATION,
        duration_unit=unit,
    )

    measured = measure(spec, pieces=pieces, events=[], profile_of={})

    per_unit = {DurationUnit.SECOND: 10**6, DurationUnit.MINUTE: 60 * 10**6}
    exact = Fraction(sum(lengths), per_unit.get(unit, 3_600 * 10**6))
    assert Fraction(measured.value) == half_up(exact, 6)


def test_a_tiny_quantity_next_to_a_large_one_is_kept() -> None:
    # 28 digits (the default context) would give 100000000000000000.0000000000
    events = [event(1, D("1e17")), event(2, D("1e-18"))]

    measured = measure(QUANTITY_SUM, pieces=[], events=events, profile_of={})

    assert measured.value == D("100000000000000000.000000000000000001")
    assert str(measured.value) == "100000000000000000.000000000000000001"


def test_a_sum_that_cannot_be_exact_is_refused_naming_the_metric() -> None:
    # beyond the contract (100 digits each side): 201 digits do not fit the 160 of the context
    events = [event(1, D("1e100")), event(2, D("1e-100"))]

    with pytest.raises(RatingOutOfBounds, match="exactly in 160 digits") as caught:
        measure(QUANTITY_SUM, pieces=[], events=events, profile_of={})

    assert caught.value.code == "rating_out_of_bounds"
    assert caught.value.detail["metric"] == "energy"


# --- rounding: only where the rules say ----------------------------------------------------------


@pytest.mark.parametrize("exponent", [26, 27, 28, 40, 100, 150, 155])
@pytest.mark.parametrize("currency", ["EUR", "JPY", "KWD"])
def test_round_money_rounds_large_amounts_exactly(exponent: int, currency: str) -> None:
    # 1.5 x 10^exponent + 0.0045, written out (adding them here would round at 28 digits)
    amount = D("15" + "0" * (exponent - 1) + ".0045")

    rounded = round_money(amount, currency)

    exact = half_up(Fraction(10**exponent * 3, 2) + Fraction(45, 10_000), MINOR_UNITS[currency])
    assert Fraction(rounded) == exact
    assert -rounded.as_tuple().exponent == MINOR_UNITS[currency]  # type: ignore[operator]


@pytest.mark.parametrize("amount", ["1e158", "-1e158", "1e300", "1e999999", "Infinity", "NaN"])
def test_round_money_beyond_precision_is_our_error_not_invalid_operation(amount: str) -> None:
    with pytest.raises(RatingOutOfBounds, match="cannot be rounded to EUR") as caught:
        round_money(D(amount), "EUR")

    assert not isinstance(caught.value, DecimalException)
    assert caught.value.detail["currency"] == "EUR"


@given(
    amount=st.decimals(min_value=0, max_value=10**30 - 1, places=30, allow_nan=False),
    period=st.integers(min_value=1, max_value=31 * 86_400 * 10**6),
    share=st.fractions(min_value=0, max_value=1),
    currency=st.sampled_from(["EUR", "JPY", "KWD"]),
)
def test_proration_rounds_once_from_the_exact_value(
    amount: Decimal, period: int, share: Fraction, currency: str
) -> None:
    part = int(period * share)

    prorated = prorate(amount, part, period, currency)

    assert Fraction(prorated) == half_up(Fraction(amount) * part / period, MINOR_UNITS[currency])


def test_proration_does_not_round_twice() -> None:
    # 0.009999999999999999999999999999 x 1/2 = 0.0049999999999999999999999999995, just below
    # half a cent: 0.00. Rounded first to 28 digits it becomes 0.005000... and then 0.01.
    fee = D("0.009999999999999999999999999999")
    half = NOV + (DEC - NOV) / 2
    versions = [plan(1, NOV, base_fee=fee), plan(2, half, base_fee=fee)]

    lines = rate(versions, [])

    assert [(line.kind, line.amount) for line in lines] == [
        (LineKind.BASE_FEE, D("0.00")),
        (LineKind.BASE_FEE, D("0.00")),
    ]
    assert prorate(fee, 1, 2, "EUR") == D("0.00")


@pytest.mark.parametrize(
    ("part", "period"), [(-1, 10), (11, 10), (0, 0), (1, -1)], ids=["neg", "over", "zero", "bad"]
)
def test_proration_refuses_a_part_outside_its_period(part: int, period: int) -> None:
    with pytest.raises(InvalidBillingInput, match="within its period"):
        prorate(D("10"), part, period, "EUR")


def test_a_started_package_counts_whole_at_the_30th_decimal() -> None:
    # the quotient 3.000000000000000000000000000001 rounded to 28 digits is 3: one package short
    charge = Charge(
        metric="locks", model=PriceModel.PACKAGE, package_size=D(1), package_price=D("2.00")
    )

    priced = price(charge, D("3.000000000000000000000000000001"))

    assert priced.detail["packages"] == "4"
    assert priced.amount == D("8.00")


def test_half_up_in_integers() -> None:
    assert [divide_half_up(n, 10) for n in (14, 15, 16, -14, -15, -16, 0)] == [
        1,
        2,
        2,
        -1,
        -2,
        -2,
        0,
    ]
    with pytest.raises(ValueError, match="positive"):
        divide_half_up(1, 0)


# --- rating: bounds named, context isolated -------------------------------------------------------

ENERGY = Charge(
    metric="energy",
    model=PriceModel.GRADUATED,
    tiers=(Tier(D(100), D("0.20")), Tier(None, D("0.15"))),
)
STREAMING = Charge(metric="stream", model=PriceModel.STANDARD, unit_price=D("0.50"))
METRICS = {"energy": QUANTITY_SUM, "stream": DURATION_SUM}


def plan(
    number: int,
    effective_from: datetime,
    *charges: Charge,
    base_fee: Decimal = ZERO,
    minimum: Decimal = ZERO,
) -> PlanVersion:
    """A version of plan "home" in EUR."""
    return PlanVersion(
        plan_id="home",
        version=number,
        effective_from=effective_from,
        currency="EUR",
        base_fee=base_fee,
        minimum_amount=minimum,
        charges=charges,
    )


def rate(
    versions: list[PlanVersion],
    events: list[BillableEvent],
    pieces: tuple[SessionPiece, ...] = (),
    account_id: str | None = "home-1",
) -> list[RatedLine]:
    """Rate November 2026 (UTC) for account home-1."""
    return rate_period(
        currency="EUR",
        period_start=NOV,
        period_end=DEC,
        versions=versions,
        metrics=METRICS,
        usage=AccountUsage(pieces=pieces, events=events, profile_of={"meter1": "meter"}),
        account_id=account_id,
    )


def test_an_amount_beyond_the_bound_names_account_plan_and_charge() -> None:
    # the largest quantity of the contract: 100 x 0.20 + (10^30 - 101) x 0.15, about 1.5e29
    events = [event(1, D("999999999999999999999999999999"))]

    with pytest.raises(RatingOutOfBounds) as caught:
        rate([plan(1, NOV, ENERGY)], events)

    error = caught.value
    assert error.message.startswith("account 'home-1', plan 'home' v1, charge 'energy': ")
    assert "beyond the bound of 1E+18 per line" in error.message
    assert error.detail["account_id"] == "home-1"
    assert (error.detail["plan"], error.detail["version"], error.detail["charge"]) == (
        "home",
        1,
        "energy",
    )
    assert error.detail["bound"] == str(MAX_AMOUNT)
    assert isinstance(error, InvalidBillingInput)  # the run reports it like any rating failure


def test_an_amount_just_inside_the_bound_is_rated() -> None:
    # (MAX_AMOUNT - 0.01) / 0.50 hours of streaming, as a quantity metric stand-in: 0.15 per kWh
    charge = Charge(metric="energy", model=PriceModel.STANDARD, unit_price=D("0.01"))
    events = [event(1, D("99999999999999999999"))]  # x 0.01 = 999999999999999999.99

    lines = rate([plan(1, NOV, charge)], events)

    assert lines[0].amount == D("999999999999999999.99")
    with pytest.raises(RatingOutOfBounds, match="beyond the bound"):
        rate([plan(1, NOV, charge)], [*events, event(2, D(1))])  # exactly 10^18


@pytest.mark.parametrize(
    ("charge", "what"),
    [
        (Charge(metric="energy", model=PriceModel.STANDARD, unit_price=D("1e30")), "unit_price"),
        (Charge(metric="energy", model=PriceModel.STANDARD, unit_price=D("1e-31")), "unit_price"),
        (
            Charge(
                metric="energy",
                model=PriceModel.STANDARD,
                unit_price=D(1),
                included_units=D("1e40"),
            ),
            "included_units",
        ),
        (
            Charge(
                metric="energy",
                model=PriceModel.VOLUME,
                tiers=(Tier(D(10), D(1), flat_fee=D("1e45")), Tier(None, D(1))),
            ),
            "tier 1 flat_fee",
        ),
    ],
)
def test_a_plan_number_beyond_the_bounds_names_plan_and_charge(charge: Charge, what: str) -> None:
    with pytest.raises(RatingOutOfBounds, match="30 digits before and 30 after") as caught:
        rate([plan(1, NOV, charge)], [])

    assert caught.value.detail["what"] == what
    assert caught.value.detail["charge"] == "energy"
    assert caught.value.message.startswith("account 'home-1', plan 'home' v1, charge 'energy'")


def test_a_base_fee_beyond_the_bound_names_the_base_fee() -> None:
    with pytest.raises(RatingOutOfBounds, match="base fee") as caught:
        rate([plan(1, NOV, base_fee=D("1e20"))], [], account_id=None)

    assert caught.value.detail["charge"] == "base fee"
    assert "account_id" not in caught.value.detail


def test_a_sum_beyond_precision_in_a_plan_names_account_plan_and_charge() -> None:
    events = [event(1, D("1e100")), event(2, D("1e-100"))]

    with pytest.raises(RatingOutOfBounds, match="exactly in 160 digits") as caught:
        rate([plan(1, NOV, ENERGY)], events)

    assert caught.value.message.startswith("account 'home-1', plan 'home' v1, charge 'energy'")
    assert caught.value.detail["metric"] == "energy"


def test_rating_ignores_the_ambient_context_and_leaves_it_alone() -> None:
    events = [event(1, D("1e17")), event(2, D("1e-18")), event(3, D("0.125"))]
    versions = [plan(1, NOV, ENERGY, base_fee=D("9.99"), minimum=D("1e16"))]
    expected = rate(versions, events)

    hostile = Context(prec=3, rounding=ROUND_DOWN, traps=[])
    with localcontext(hostile) as ambient:
        rated = rate(versions, events)
        assert (ambient.prec, ambient.rounding) == (3, ROUND_DOWN)
        assert not any(ambient.flags.values())  # nothing was computed in it

    assert rated == expected
    assert expected[1].quantity == D("100000000000000000.125000000000000001")
    assert getcontext().prec == 28


async def test_tasks_with_their_own_contexts_rate_alike() -> None:
    events = [event(1, D("1e17")), event(2, D("1e-18"))]
    versions = [plan(1, NOV, ENERGY)]
    expected = rate(versions, events)

    async def rate_in(context: Context) -> list[RatedLine]:
        setcontext(context)  # this task's own ambient context
        await asyncio.sleep(0)  # let the other task run in between
        return rate(versions, events)

    hostile = Context(prec=2, rounding=ROUND_DOWN, traps=[])
    results = await asyncio.gather(rate_in(hostile), rate_in(Context()))

    assert list(results) == [expected, expected]
    assert getcontext().prec == 28
