"""Currencies and half-up rounding to the minor unit."""

from decimal import Decimal

import pytest

from cloud.errors import InvalidBillingInput
from cloud.rating.money import check_currency, minor_units, round_money


@pytest.mark.parametrize(
    ("currency", "digits"),
    [("EUR", 2), ("USD", 2), ("CHF", 2), ("JPY", 0), ("KRW", 0), ("ISK", 0), ("KWD", 3)],
)
def test_minor_units(currency: str, digits: int) -> None:
    assert check_currency(currency) == currency
    assert minor_units(currency) == digits


@pytest.mark.parametrize("code", ["", "eur", "EURO", "XXX", "BTC", " EUR"])
def test_unknown_currency_is_refused(code: str) -> None:
    with pytest.raises(InvalidBillingInput, match="unknown currency"):
        check_currency(code)
    with pytest.raises(InvalidBillingInput):
        round_money(Decimal("1.00"), code)


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("0.125", "EUR", "0.13"),  # a tie goes up
        ("-0.125", "EUR", "-0.13"),  # and away from zero for credits
        ("0.124999", "EUR", "0.12"),
        ("0.135", "EUR", "0.14"),  # half-even would give 0.14 too; 0.125 tells them apart
        ("0.115", "EUR", "0.12"),  # half-even would give 0.12; half-down 0.11
        ("2.5", "JPY", "3"),  # 0 decimals: half-even would give 2
        ("-2.5", "JPY", "-3"),
        ("1.0005", "KWD", "1.001"),  # 3 decimals
        ("1.0004", "KWD", "1.000"),
        ("7", "EUR", "7.00"),  # always carries the minor unit
        ("-0.004", "EUR", "0.00"),  # a tiny credit rounds to plain zero, not -0.00
    ],
)
def test_round_money_half_up(amount: str, currency: str, expected: str) -> None:
    rounded = round_money(Decimal(amount), currency)
    assert str(rounded) == expected
