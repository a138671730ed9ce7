"""Money: the currencies we bill in and how an amount is rounded to one of them.

Rounding is ROUND_HALF_UP as the `decimal` module defines it: a tie goes away from zero, for
credits as well as debits (0.125 -> 0.13, -0.125 -> -0.13), so a correction line is the exact
mirror of the line it corrects. Each invoice line is rounded once; the total is the sum of the
rounded lines and is never rounded again.
"""

from decimal import ROUND_HALF_UP, Decimal

from cloud.errors import InvalidBillingInput

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
    rounded = amount.quantize(_QUANTUM[currency], rounding=ROUND_HALF_UP)
    return rounded if rounded else abs(rounded)  # -0.00 (a tiny credit) reads as 0.00
