"""EN 16931 VAT totals of a document (invoice or credit note): pure arithmetic, no database.

Each line arrives with its net amount already rounded to the currency's minor unit, its VAT
category (UNCL5305 code) and its rate in percent. The lines are grouped by (category, rate):

    taxable   = sum of the group's line nets, exact                       (BR-S-08, BR-AE-08 ...)
    tax       = taxable x rate / 100, rounded ONCE half-up to the minor unit   (BR-CO-17)
    net       = sum of every line net                                     (BR-CO-13)
    tax total = sum of the subtotals' taxes                               (BR-CO-14)
    gross     = net + tax total                                           (BR-CO-15)

Rounding per subtotal, not per line, is the norm's rule: three lines of 0.03 at 19% are taxable
0.09, tax 0.0171 -> 0.02, where rounding each line (0.0057 -> 0.01) would give 0.03.
Half-up is ROUND_HALF_UP (ties away from zero), so a negative group mirrors a positive one.

Credit notes use the same function on their (positive) amounts.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from cloud.errors import InvalidBillingInput
from cloud.rating.arithmetic import exact
from cloud.rating.money import check_currency, round_money

CATEGORIES: dict[str, str] = {
    "S": "Standard rate",
    "Z": "Zero rated goods",
    "E": "Exempt from VAT",
    "AE": "VAT Reverse Charge",
    "K": "VAT exempt for EEA intra-community supply",
    "G": "Free export item, VAT not charged",
    "O": "Services outside scope of tax",
}
"""The UNCL5305 VAT category codes EN 16931 admits (except the Canary Islands and Ceuta ones)."""

EXEMPTION_REASONS: dict[str, str | None] = {
    "S": None,
    "Z": None,
    "E": "Exempt from VAT",
    "AE": "Reverse charge",
    "K": "Intra-community supply",
    "G": "Export outside the EU",
    "O": "Not subject to VAT",
}
"""The exemption reason text (BT-120) a subtotal of each category carries; None: not exempt."""

_HUNDRED = Decimal(100)


@dataclass(frozen=True)
class TaxedAmount:
    """One line's net amount (rounded to the minor unit), its category and rate (percent)."""

    net: Decimal
    category: str
    rate: Decimal


@dataclass(frozen=True)
class VatSubtotal:
    """The VAT breakdown of one (category, rate) group (EN 16931 BG-23)."""

    category: str
    rate: Decimal
    taxable: Decimal
    tax: Decimal
    exemption_reason: str | None


@dataclass(frozen=True)
class VatTotals:
    """A document's VAT breakdown and its totals (net, tax, gross), in the currency's minor unit."""

    subtotals: tuple[VatSubtotal, ...]
    net: Decimal
    tax: Decimal
    gross: Decimal


def vat_totals(lines: Sequence[TaxedAmount], currency: str) -> VatTotals:
    """The VAT subtotals per (category, rate) and the document totals of `lines` in `currency`.

    Subtotals are ordered by category code, then by rate, highest first (S 19 before S 7), so the
    same lines always give the same breakdown. No lines: no subtotals, every total zero.
    `InvalidBillingInput` for an unknown category or a rate that does not fit its category.
    """
    check_currency(currency)
    groups: dict[tuple[str, Decimal], list[Decimal]] = {}
    for line in lines:
        check_taxed_amount(line)
        groups.setdefault((line.category, line.rate.normalize()), []).append(line.net)
    subtotals = tuple(
        _subtotal(category, rate, nets, currency)
        for (category, rate), nets in sorted(groups.items(), key=lambda item: _order(item[0]))
    )
    with exact({"currency": currency}):
        net = sum((line.net for line in lines), Decimal(0))
        tax = sum((subtotal.tax for subtotal in subtotals), Decimal(0))
        gross = net + tax
    return VatTotals(
        subtotals=subtotals,
        net=round_money(net, currency),  # a no-op but for the exponent: "0.00", "125"
        tax=round_money(tax, currency),
        gross=round_money(gross, currency),
    )


def check_taxed_amount(line: TaxedAmount) -> None:
    """`InvalidBillingInput` unless the category is a UNCL5305 code and the rate fits it:
    standard rate above 0 and at most 100 (BR-S-05), every other category at rate 0."""
    if line.category not in CATEGORIES:
        raise InvalidBillingInput(
            f"unknown VAT category {line.category!r}: expected one of {', '.join(CATEGORIES)}",
            detail={"category": line.category},
        )
    if not line.net.is_finite() or not line.rate.is_finite():
        raise InvalidBillingInput(
            "a taxed amount and its rate must be finite numbers",
            detail={"net": str(line.net), "rate": str(line.rate)},
        )
    standard = line.category == "S"
    fits = Decimal(0) < line.rate <= _HUNDRED if standard else line.rate.is_zero()
    if not fits:
        expected = "above 0 and at most 100" if standard else "0"
        raise InvalidBillingInput(
            f"VAT rate {line.rate} does not fit category {line.category}: expected {expected}",
            detail={"category": line.category, "rate": str(line.rate)},
        )


def format_rate(rate: Decimal) -> str:
    """A rate in percent as text without trailing zeros: "19", "7.7", "0"."""
    text = format(rate.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _subtotal(category: str, rate: Decimal, nets: list[Decimal], currency: str) -> VatSubtotal:
    with exact({"currency": currency, "category": category, "rate": str(rate)}):
        taxable = sum(nets, Decimal(0))
        exact_tax = taxable * rate / _HUNDRED  # exact: a product and a shift by two digits
    return VatSubtotal(
        category=category,
        rate=rate,
        taxable=round_money(taxable, currency),  # exact already; the exponent of the minor unit
        tax=round_money(exact_tax, currency),
        exemption_reason=EXEMPTION_REASONS[category],
    )


def _order(key: tuple[str, Decimal]) -> tuple[str, Decimal]:
    category, rate = key
    return category, -rate
