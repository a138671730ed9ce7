"""The invoice's parties (seller, buyer, payment terms) and the VAT each of its lines carries.

Which VAT a line carries (decided per account, then per line's tax class):

    the account has no tax country        -> "O", rate 0; note "VAT not charged: the account has
                                              no tax country"
    company with a VAT id, buyer and seller
    both in the EU, different countries   -> "AE" (reverse charge), rate 0; note Art. 196
    buyer outside the EU, not the seller's
    country                               -> "O" (services outside the scope of EU VAT), rate 0
    otherwise                             -> the buyer country's rate of the line's class
                                              (standard, reduced: "S"; zero: "Z") in force on the
                                              last day of the service period (the period's end
                                              in the account's time zone); none in force:
                                              `TaxRateMissing`, the account's run fails

A line's class is its charge's `tax_category` (usage), else its plan version's (base fee,
minimum); an adjustment has its corrected line's class and the rate of the period it corrects.
Without a configured seller there is no seller country: no reverse charge is decided and an EU
buyer is charged its country's rate.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale

from cloud.catalog.models import Account
from cloud.catalog.tax_rates import EU_COUNTRIES, TaxTable
from cloud.domain import LineKind, PlanVersion, RatedLine, TaxClass
from cloud.invoices.lines import DraftLine
from cloud.invoices.models import Invoice, InvoiceLine
from cloud.invoices.vat import TaxedAmount, VatTotals, format_rate, vat_totals
from cloud.seller import Seller

DEFAULT_PAYMENT_TERMS_DAYS = 14
DEFAULT_LOCALE = "en_GB"
REVERSE_CHARGE_NOTE = (
    "Reverse charge: VAT to be accounted for by the recipient (Art. 196 Directive 2006/112/EC)"
)
NO_COUNTRY_NOTE = "VAT not charged: the account has no tax country"
OUTSIDE_EU_NOTE = "VAT not charged: the recipient is established outside the EU"
_ONE_TICK = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Regime:
    """How one account's lines are taxed: a fixed category (AE, O) or its country's rates."""

    country: str | None
    fixed_category: str | None  # "AE" | "O" | None (the country's rates apply)
    note: str | None


def tax_regime(
    *, kind: str, country: str | None, vat_id: str | None, seller: Seller | None
) -> Regime:
    """The regime of a buyer (see the module doc)."""
    seller_country = seller.country if seller is not None else None
    if country is None:
        return Regime(None, "O", NO_COUNTRY_NOTE)
    reverse_charge = (
        kind == "company"
        and bool(vat_id)
        and seller_country in EU_COUNTRIES
        and country in EU_COUNTRIES
        and country != seller_country
    )
    if reverse_charge:
        return Regime(country, "AE", REVERSE_CHARGE_NOTE)
    if country not in EU_COUNTRIES and country != seller_country:
        return Regime(country, "O", OUTSIDE_EU_NOTE)
    return Regime(country, None, None)


def line_tax_class(line: RatedLine, versions: Mapping[str, Sequence[PlanVersion]]) -> TaxClass:
    """The tax class of a rated line: its charge's (usage), else its plan version's (a line of
    no known version: standard)."""
    candidates = versions.get(line.plan_id, []) if line.plan_id is not None else []
    version = next((v for v in candidates if v.version == line.plan_version), None)
    if version is None:
        return TaxClass.STANDARD
    kind = line.detail.get("corrected_kind", line.kind.value)
    if kind == LineKind.USAGE.value:
        charge = next((c for c in version.charges if c.metric == line.metric), None)
        if charge is not None:
            return charge.tax_category
    return version.tax_category


def service_day(period_end: datetime, time_zone: str) -> date:
    """The last local day of a service period ending (exclusively) at `period_end`."""
    return (period_end - _ONE_TICK).astimezone(ZoneInfo(time_zone)).date()


def line_tax(
    *, regime: Regime, tax_class: TaxClass, day: date, table: TaxTable
) -> tuple[str, Decimal]:
    """(UNCL5305 category, rate percent) of a line of `tax_class` whose service ends on `day`."""
    if regime.fixed_category is not None or regime.country is None:
        return regime.fixed_category or "O", Decimal(0)
    rate = table.rate_on(regime.country, tax_class, day)
    if tax_class is TaxClass.ZERO or rate.is_zero():
        return "Z", Decimal(0)
    return "S", rate


def taxed(amount: Decimal, category: str | None, rate: Decimal | None) -> TaxedAmount:
    """A stored line as `vat_totals` input (a line drafted before VAT: "O" at 0)."""
    return TaxedAmount(net=amount, category=category or "O", rate=rate or Decimal(0))


def account_locale(account: Account) -> str:
    """The account's locale; unset: the most likely one of its country, else en_GB."""
    if account.locale:
        return account.locale
    if account.country:
        likely = Locale.parse(f"und_{account.country}")
        return str(likely)
    return DEFAULT_LOCALE


def payment_terms(account: Account) -> int:
    """Days from issue to due date (14 when unset)."""
    return (
        account.payment_terms_days
        if account.payment_terms_days is not None
        else DEFAULT_PAYMENT_TERMS_DAYS
    )


def buyer_document(account: Account) -> dict[str, Any]:
    """The invoice document's `buyer`, from the account as it is now."""
    return {
        "name": account.billing_name or account.name,
        "address": dict(account.address) if account.address else None,
        "vat_id": account.vat_id,
        "customer_number": account.customer_number or account.id,
        "kind": account.kind,
        "country": account.country,
    }


def parties_document(account: Account, seller: Seller | None) -> dict[str, Any]:
    """What finalization freezes: seller, buyer, payment terms and locale."""
    return {
        "seller": seller.document() if seller is not None else None,
        "buyer": buyer_document(account),
        "payment_terms_days": payment_terms(account),
        "locale": account_locale(account),
    }


def issue_and_due(account: Account, finalized_at: datetime) -> tuple[date, date]:
    """The issue date (local date of finalization) and the due date (+ payment terms)."""
    issued = finalized_at.astimezone(ZoneInfo(account.time_zone)).date()
    return issued, issued + timedelta(days=payment_terms(account))


def tax_draft_lines(
    *,
    lines: Sequence[DraftLine],
    regime: Regime,
    versions: Mapping[str, Sequence[PlanVersion]],
    period_end: datetime,
    time_zone: str,
    table: TaxTable,
) -> list[DraftLine]:
    """The lines with their VAT category and rate set; `TaxRateMissing` when a rate is needed
    and none is in force. An adjustment takes the rate of the period it corrects (its part's
    last day); every other line the rate on the last day of this period."""
    period_day = service_day(period_end, time_zone)
    taxed_lines = []
    for draft in lines:
        day = (
            service_day(draft.line.part_end, time_zone)
            if draft.corrects_invoice_id is not None
            else period_day
        )
        tax_class = line_tax_class(draft.line, versions)
        category, rate = line_tax(regime=regime, tax_class=tax_class, day=day, table=table)
        taxed_lines.append(replace(draft, tax_category=category, tax_rate=rate))
    return taxed_lines


def draft_totals(lines: Sequence[DraftLine], currency: str) -> VatTotals:
    """The EN 16931 totals of taxed draft lines."""
    return vat_totals(
        [taxed(draft.line.amount, draft.tax_category, draft.tax_rate) for draft in lines],
        currency,
    )


def header_parties(invoice: Invoice, account: Account, seller: Seller | None) -> dict[str, Any]:
    """The document keys of the parties, dates and locale: a draft shows the account and the
    seller as they are now, a finalized invoice what it froze (`parties`, issue and due date);
    one finalized before migration 0013 froze nothing and shows the live data too."""
    frozen = invoice.parties or parties_document(account, seller)
    time_zone = ZoneInfo(account.time_zone)
    return {
        "document_type": "invoice",
        "locale": frozen["locale"],
        "issue_date": _iso(invoice.issue_date),
        "due_date": _iso(invoice.due_date),
        "payment_terms_days": frozen["payment_terms_days"],
        "service_period": {
            "start": invoice.period_start.astimezone(time_zone).date().isoformat(),
            "end": service_day(invoice.period_end, account.time_zone).isoformat(),
        },
        "seller": frozen["seller"],
        "buyer": frozen["buyer"],
    }


def document_tax(
    invoice: Invoice, lines: Sequence[InvoiceLine], buyer: Mapping[str, Any]
) -> dict[str, Any]:
    """The document keys `tax` (EN 16931 BG-23 per category and rate), `totals` and `notes`,
    recomputed from the stored lines (they equal the stored totals: verify-invoice checks)."""
    currency = invoice.currency
    totals = vat_totals(
        [taxed(line.amount, line.tax_category, line.tax_rate) for line in lines], currency
    )
    categories = {subtotal.category for subtotal in totals.subtotals}
    notes = []
    if "AE" in categories:
        notes.append(REVERSE_CHARGE_NOTE)
    if "O" in categories:
        notes.append(NO_COUNTRY_NOTE if buyer.get("country") is None else OUTSIDE_EU_NOTE)
    return {
        "tax": [
            {
                "category": subtotal.category,
                "rate": format_rate(subtotal.rate),
                "taxable": str(subtotal.taxable),
                "tax": str(subtotal.tax),
                "exemption_reason": subtotal.exemption_reason,
            }
            for subtotal in totals.subtotals
        ],
        "totals": {
            "net": str(totals.net),
            "tax": str(totals.tax),
            "gross": str(totals.gross),
            "due": str(totals.gross),
        },
        "notes": notes,
    }


def line_tax_document(line: InvoiceLine) -> dict[str, Any]:
    """A line's `tax_category` and `tax_rate` keys (null for a line drafted before VAT, which
    the totals count as "O" at 0)."""
    return {
        "tax_category": line.tax_category,
        "tax_rate": None if line.tax_rate is None else format_rate(line.tax_rate),
    }


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()
