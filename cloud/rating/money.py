"""Money: the currencies we bill in and how an amount is rounded to one of them.

Rounding is ROUND_HALF_UP as the `decimal` module defines it: a tie goes away from zero, for
credits as well as debits (0.125 -> 0.13, -0.125 -> -0.13), so a correction line is the exact
mirror of the line it corrects. Each invoice line is rounded once; the total is the sum of the
rounded lines and is never rounded again.

Rounding is the rule here, so it runs in its own contexts (`cloud.rating.arithmetic`), never in
the ambient one: `round_money` quantizes in `ROUNDING` (160 digits, so 1e26 rounds exactly; an
amount whose rounded form would need more digits is `RatingOutOfBounds`), and `prorate` takes
amount x part / period in `PRORATION`, whose ROUND_05UP keeps the one half-up rounding exact.
"""

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal, DecimalException

from cloud.errors import InvalidBillingInput, RatingOutOfBounds
from cloud.rating.arithmetic import EXACT, PRECISION, PRORATION, ROUNDING, exact

# Written as words for reading; split once at import.
_ZERO_DECIMALS = frozenset(
    "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF".split()  # noqa: SIM905
)
_THREE_DECIMALS = frozenset("BHD IQD JOD KWD LYD OMR TND".split())  # noqa: SIM905
_TWO_DECIMALS = frozenset(
    """
    AED ARS AUD BAM BDT BGN BRL CAD CHF CNY COP CZK DKK DZD EGP EUR GBP GEL GHS HKD HUF IDR
    ILS INR KES KZT LKR MAD MXN MYR NGN NOK NZD PEN PHP PKR PLN QAR RON RSD RUB SAR SEK SGD
    THB TRY TWD UAH USD UYU ZAR
    """.split()  # noqa: SIM905
)

MINOR_UNITS: dict[str, int] = {
    **{code: 2 for code in _TWO_DECIMALS},
    **{code: 0 for code in _ZERO_DECIMALS},
    **{code: 3 for code in _THREE_DECIMALS},
}
"""ISO 4217 codes we bill in, with the number of decimals of their minor unit."""

_QUANTUM = {code: Decimal(1).scaleb(-digits) for code, digits in MINOR_UNITS.items()}


def check_currency(code: str) -> str:
    """The code itself when it is an ISO 4217 currency we know; else `InvalidBillingInput`."""
    if code not in MINOR_UNITS:
        raise InvalidBillingInput(
            f"unknown currency {code!r}: expected an ISO 4217 code such as EUR, USD or JPY",
            detail={"currency": code},
        )
    return code


def minor_units(currency: str) -> int:
    """How many decimals the currency's minor unit has (EUR 2, JPY 0, KWD 3)."""
    return MINOR_UNITS[check_currency(currency)]


def round_money(amount: Decimal, currency: str) -> Decimal:
    """The amount quantized to the currency's minor unit, ties away from zero (ROUND_HALF_UP)."""
    check_currency(currency)
    if not amount.is_finite():
        raise _unroundable(amount, currency, "it is not a finite number")
    try:
        rounded = amount.quantize(_QUANTUM[currency], rounding=ROUND_HALF_UP, context=ROUNDING)
    except DecimalException as exc:
        reason = f"the rounded amount needs more than {PRECISION} digits"
        raise _unroundable(amount, currency, reason) from exc
    return rounded.copy_abs() if rounded.is_zero() else rounded  # -0.00 reads as 0.00


def prorate(amount: Decimal, part: int, period: int, currency: str) -> Decimal:
    """amount x part / period (microseconds), rounded once half-up to the minor unit.

    The product is exact (`EXACT`); the quotient is taken in `PRORATION` (ROUND_05UP to 160
    digits), so the half-up rounding that follows is that of the exact rational value.
    """
    if not 0 <= part <= period or period <= 0:
        raise InvalidBillingInput(
            f"a prorated part must lie within its period ({part} of {period} microseconds)",
            detail={"part": part, "period": period},
        )
    if part == period:
        return round_money(amount, currency)
    with exact({"currency": currency}):
        product = EXACT.multiply(amount, part)
    return round_money(PRORATION.divide(product, period), currency)


def add_amounts(amounts: Iterable[Decimal]) -> Decimal:
    """The exact sum of amounts (an invoice total), never rounded; `RatingOutOfBounds` if the sum
    needs more than 160 digits."""
    with exact():
        return sum(amounts, Decimal(0))


def _unroundable(amount: Decimal, currency: str, reason: str) -> RatingOutOfBounds:
    shown = f"{amount:.6E}"
    return RatingOutOfBounds(
        f"amount {shown} cannot be rounded to {currency}: {reason}",
        detail={"amount": shown, "currency": currency, "precision": PRECISION},
    )
