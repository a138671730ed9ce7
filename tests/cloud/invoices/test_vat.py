"""Known answers of `cloud.invoices.vat.vat_totals` (EN 16931), each computed by hand below."""

from decimal import Decimal

import pytest

from cloud.errors import InvalidBillingInput
from cloud.invoices.vat import TaxedAmount, VatSubtotal, format_rate, vat_totals


def _line(net: str, category: str = "S", rate: str = "19") -> TaxedAmount:
    return TaxedAmount(net=Decimal(net), category=category, rate=Decimal(rate))


def test_two_rates_give_two_subtotals_highest_rate_first() -> None:
    # S 19: 100.00 + 20.50 = 120.50; 120.50 x 0.19 = 22.895 -> 22.90 (half-up)
    # S 7:  10.00 +  0.99 =  10.99;  10.99 x 0.07 =  0.7693 -> 0.77
    # net 131.49, tax 22.90 + 0.77 = 23.67, gross 155.16
    totals = vat_totals(
        [_line("100.00"), _line("10.00", rate="7"), _line("20.50"), _line("0.99", rate="7")],
        "EUR",
    )
    assert totals.subtotals == (
        VatSubtotal("S", Decimal("19"), Decimal("120.50"), Decimal("22.90"), None),
        VatSubtotal("S", Decimal("7"), Decimal("10.99"), Decimal("0.77"), None),
    )
    assert (str(totals.net), str(totals.tax), str(totals.gross)) == ("131.49", "23.67", "155.16")


def test_tax_is_rounded_per_subtotal_not_per_line() -> None:
    # three lines of 0.03 at 19%: taxable 0.09, tax 0.0171 -> 0.02
    # (per line: 0.0057 -> 0.01 each, 0.03 in all: not what EN 16931 wants)
    totals = vat_totals([_line("0.03")] * 3, "EUR")
    assert totals.subtotals[0].taxable == Decimal("0.09")
    assert str(totals.tax) == "0.02"
    assert str(totals.gross) == "0.11"


def test_half_cent_subtotal_rounds_half_up_once() -> None:
    # three lines of 0.05 at 19%: taxable 0.15, tax 0.0285 -> 0.03 (per line 0.0095 -> 0.01 x 3
    # agrees here); three lines of 0.05 at 7%: taxable 0.15, tax 0.0105 -> 0.01 where per line
    # 0.0035 -> 0.00 would give 0.00
    assert str(vat_totals([_line("0.05")] * 3, "EUR").tax) == "0.03"
    assert str(vat_totals([_line("0.05", rate="7")] * 3, "EUR").tax) == "0.01"
    # an exact tie: 0.50 x 5% = 0.025 -> 0.03 (half-up; half-even would give 0.02)
    assert str(vat_totals([_line("0.50", rate="5")], "EUR").tax) == "0.03"


def test_negative_adjustment_lines_reduce_the_taxable_amount() -> None:
    # 50.00 - 12.35 = 37.65 at 19%: 7.1535 -> 7.15; gross 44.80
    totals = vat_totals([_line("50.00"), _line("-12.35")], "EUR")
    assert (str(totals.subtotals[0].taxable), str(totals.tax)) == ("37.65", "7.15")
    assert str(totals.gross) == "44.80"


def test_a_negative_subtotal_mirrors_a_positive_one() -> None:
    # 1.00 - 1.50 = -0.50 at 19%: tax -0.095 -> -0.10 (ties away from zero); gross -0.60
    totals = vat_totals([_line("1.00"), _line("-1.50")], "EUR")
    assert (str(totals.tax), str(totals.gross)) == ("-0.10", "-0.60")
    # -0.50 at 5% = -0.025 -> -0.03, the mirror of 0.50 -> 0.03
    assert str(vat_totals([_line("-0.50", rate="5")], "EUR").tax) == "-0.03"


def test_jpy_has_no_decimals() -> None:
    # 1234 + 567 = 1801 JPY at 10%: 180.1 -> 180; 999 JPY at 8%: 79.92 -> 80
    # net 2800, tax 260, gross 3060
    totals = vat_totals(
        [_line("1234", rate="10"), _line("567", rate="10"), _line("999", rate="8")], "JPY"
    )
    assert [str(sub.tax) for sub in totals.subtotals] == ["180", "80"]
    assert (str(totals.net), str(totals.tax), str(totals.gross)) == ("2800", "260", "3060")


def test_exempt_categories_carry_their_reason_and_no_tax() -> None:
    # reverse charge 200.00 at 0 and a zero-rated 5.00: tax 0.00, gross = net = 205.00
    totals = vat_totals([_line("200.00", "AE", "0"), _line("5.00", "Z", "0")], "EUR")
    assert [(sub.category, sub.exemption_reason) for sub in totals.subtotals] == [
        ("AE", "Reverse charge"),
        ("Z", None),
    ]
    assert (str(totals.tax), str(totals.gross)) == ("0.00", "205.00")


def test_same_rate_written_differently_is_one_subtotal() -> None:
    # "19" and "19.00" are one rate: taxable 2.00, tax 0.38
    totals = vat_totals([_line("1.00", rate="19"), _line("1.00", rate="19.00")], "EUR")
    assert len(totals.subtotals) == 1
    assert str(totals.tax) == "0.38"


def test_no_lines_is_all_zero() -> None:
    totals = vat_totals([], "EUR")
    assert totals.subtotals == ()
    assert (str(totals.net), str(totals.tax), str(totals.gross)) == ("0.00", "0.00", "0.00")


@pytest.mark.parametrize(
    ("category", "rate", "message"),
    [
        ("X", "19", "unknown VAT category 'X'"),
        ("S", "0", "does not fit category S"),
        ("S", "101", "does not fit category S"),
        ("AE", "19", "does not fit category AE"),
    ],
)
def test_bad_category_or_rate_is_refused(category: str, rate: str, message: str) -> None:
    with pytest.raises(InvalidBillingInput, match=message):
        vat_totals([_line("1.00", category, rate)], "EUR")


def test_unknown_currency_is_refused() -> None:
    with pytest.raises(InvalidBillingInput, match="unknown currency"):
        vat_totals([_line("1.00")], "XYZ")


def test_format_rate_drops_trailing_zeros() -> None:
    assert [format_rate(Decimal(r)) for r in ("19.00", "7.70", "0.0", "20")] == [
        "19",
        "7.7",
        "0",
        "20",
    ]
