"""The invoice as an EN 16931 e-invoice: CII XML (drafthorse) embedded in PDF/A-3 (factur-x).

Pure: `invoice_cii` maps the export document (`cloud.invoices.exports.invoice_document`, or a
credit note document of the same shape) onto the Factur-X EN 16931 profile
(`urn:cen.eu:en16931:2017`); drafthorse validates what it writes against the Factur-X 1.0.07
EN 16931 XSD. `facturx_pdf` embeds that XML into the PDF/A-3 of `cloud.invoices.pdf` with the
`factur-x` library, which checks the XML against its own copy of the XSD and writes the XMP
metadata a Factur-X reader looks for.

Mapping (EN 16931 business terms):
    BT-1 number, BT-2 issue date, BT-3 type code 380 invoice / 381 credit note (BT-25/26: the
    invoice it credits), BT-9 due date, BT-20 payment terms, BT-22 notes (reverse charge),
    BG-4/BG-5 seller (BT-27, BT-31 VAT id), BG-7/BG-8 buyer (BT-44, BT-46 customer number,
    BT-48 VAT id), BG-14 service period, BG-16 payment means 58 (SEPA credit transfer, BT-84
    IBAN, BT-86 BIC, BT-83 the invoice number as remittance reference), BG-23 one VAT breakdown
    per category and rate (as the document computed it, EN 16931 rounding), BG-22 totals.
    Lines: BT-126 line id, BT-153 name, BT-129/130 billed quantity with its UN/ECE Rec 20 unit
    code, BT-146/149 net price (the unit price when it gives the amount exactly, else the whole
    amount per the billed quantity, so quantity x price / base quantity = BT-131 always),
    BT-151/152 VAT category and rate.

A draft (no number, no issue date), or a document without seller, tax or totals, is refused with
`EInvoiceNotReady`: an e-invoice is a legal document, a draft is not one.
"""

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from drafthorse.models.accounting import ApplicableTradeTax
from drafthorse.models.document import Document
from drafthorse.models.note import IncludedNote
from drafthorse.models.party import PostalTradeAddress, TaxRegistration, TradeParty
from drafthorse.models.payment import PaymentMeans, PaymentTerms
from drafthorse.models.tradelines import LineItem
from facturx import generate_from_binary

from cloud.errors import EInvoiceNotReady
from cloud.invoices.html import Formats, line_sentence, line_title

PROFILE = "urn:cen.eu:en16931:2017"
SCHEMA = "FACTUR-X_EN16931"
FLAVOR, LEVEL = "factur-x", "en16931"
TYPE_CODES = {"invoice": "380", "credit_note": "381"}  # UNTDID 1001
SEPA_CREDIT_TRANSFER = "58"  # UNTDID 4461
ONE = "C62"  # UN/ECE Rec 20 "one": counted things, a base fee
# UN/ECE Recommendation 20 codes of the units lines carry; anything else counts (C62).
UNIT_CODES = {
    "h": "HUR",
    "min": "MIN",
    "s": "SEC",
    "kWh": "KWH",
    "Wh": "WHR",
    "MWh": "MWH",
    "m3": "MTQ",
    "m³": "MTQ",
    "l": "LTR",
    "km": "KMT",
    "GB": "E34",
    "MB": "4L",
}
NEEDED = "a Factur-X e-invoice needs a finalized invoice and seller details"


def unit_code(unit: str | None) -> str:
    """The UN/ECE Rec 20 code of a line's unit (`h` -> HUR, `Wh` -> WHR, `openings` -> C62)."""
    return ONE if unit is None else UNIT_CODES.get(unit, ONE)


def check_ready(document: Mapping[str, Any]) -> None:
    """`EInvoiceNotReady` unless the document can be an e-invoice (what is missing in detail)."""
    missing = []
    if document.get("status") != "finalized" or not document.get("printed_number"):
        missing.append("finalized")
    if not document.get("issue_date"):
        missing.append("issue_date")
    seller = document.get("seller")
    if not isinstance(seller, Mapping) or not seller.get("name"):
        missing.append("seller")
    elif not _country(seller.get("address")):
        missing.append("seller.address.country")
    buyer = document.get("buyer")
    if not isinstance(buyer, Mapping) or not _country(buyer.get("address")):
        missing.append("buyer.address.country")
    if not document.get("tax") or not isinstance(document.get("totals"), Mapping):
        missing.append("tax")
    if missing:
        raise EInvoiceNotReady(
            f"{NEEDED}: missing {', '.join(missing)}",
            detail={"id": document.get("id"), "missing": missing},
        )


def invoice_cii(document: Mapping[str, Any]) -> bytes:
    """The document as Factur-X EN 16931 CII XML (validated by drafthorse against the XSD)."""
    check_ready(document)
    doc = Document()
    doc.context.guideline_parameter.id = PROFILE
    _header(doc, document)
    _parties(doc, document)
    for line in document["lines"]:
        doc.trade.items.add(_line(line, document))
    _settlement(doc, document)
    xml: bytes = doc.serialize(schema=SCHEMA)
    return xml


def facturx_pdf(document: Mapping[str, Any], pdf: bytes) -> bytes:
    """The PDF/A-3 `pdf` with the document's CII XML embedded as `factur-x.xml`."""
    xml = invoice_cii(document)
    result: bytes = generate_from_binary(
        pdf, xml, flavor=FLAVOR, level=LEVEL, check_xsd=True, lang=_lang(document)
    )
    return result


def _header(doc: Document, document: Mapping[str, Any]) -> None:
    kind = str(document.get("document_type") or "invoice")
    doc.header.id = str(document["printed_number"])
    doc.header.type_code = TYPE_CODES.get(kind, TYPE_CODES["invoice"])
    doc.header.issue_date_time = date.fromisoformat(str(document["issue_date"]))
    for note in document.get("notes") or []:
        doc.header.notes.add(IncludedNote(content=str(note)))


def _parties(doc: Document, document: Mapping[str, Any]) -> None:
    seller, buyer = document["seller"], document["buyer"]
    _party(doc.trade.agreement.seller, seller)
    if seller.get("email"):
        doc.trade.agreement.seller.electronic_address.uri_ID = ("EM", str(seller["email"]))
    _party(doc.trade.agreement.buyer, buyer)
    if buyer.get("customer_number"):
        doc.trade.agreement.buyer.id = str(buyer["customer_number"])


def _party(party: TradeParty, data: Mapping[str, Any]) -> None:
    party.name = str(data["name"])
    _address(party.address, data["address"])
    if data.get("vat_id"):
        party.tax_registrations.add(TaxRegistration(id=("VA", str(data["vat_id"]))))


def _address(target: PostalTradeAddress, address: Mapping[str, Any]) -> None:
    lines = [str(line) for line in address.get("lines") or []]
    for field, text in zip(("line_one", "line_two", "line_three"), lines, strict=False):
        setattr(target, field, text)
    if address.get("postcode"):
        target.postcode = str(address["postcode"])
    if address.get("city"):
        target.city_name = str(address["city"])
    target.country_id = str(address["country"])


def _line(line: Mapping[str, Any], document: Mapping[str, Any]) -> LineItem:
    item = LineItem()
    item.document.line_id = str(line["n"])
    item.product.name = line_title(line)
    item.product.description = line_sentence(line, Formats.of(document))
    quantity, code, price, basis = line_price(line)
    item.agreement.net.amount = price
    if basis is not None:
        item.agreement.net.basis_quantity = (basis, code)
    item.delivery.billed_quantity = (quantity, code)
    item.settlement.trade_tax.type_code = "VAT"
    item.settlement.trade_tax.category_code = str(line.get("tax_category") or "S")
    item.settlement.trade_tax.rate_applicable_percent = Decimal(str(line.get("tax_rate") or 0))
    item.settlement.monetary_summation.total_amount = Decimal(str(line["amount"]))
    return item


def line_price(line: Mapping[str, Any]) -> tuple[Decimal, str, Decimal, Decimal | None]:
    """Billed quantity, unit code, net price and price base quantity (None: 1) of a line.

    A usage line bills its billable units; a standard price that gives the amount exactly is the
    unit price, else the price is the whole amount for the billed quantity. A base fee, a
    minimum or a correction bills one (C62). A negative amount (a correction in the customer's
    favour) has a negative quantity and a positive price (BR-27: prices are never negative).
    """
    amount = Decimal(str(line["amount"]))
    detail = line.get("detail") or {}
    billable = line.get("billable")
    if line.get("kind") != "usage" or billable is None:
        return (Decimal(-1) if amount < 0 else Decimal(1)), ONE, abs(amount), None
    quantity = Decimal(str(billable))
    code = unit_code(None if line.get("unit") is None else str(line["unit"]))
    if quantity == 0:
        return quantity, code, Decimal(0), None
    if detail.get("model") == "standard":
        unit_price = Decimal(str(detail.get("unit_price", "0")))
        if quantity * unit_price == amount:
            return quantity, code, unit_price, None
    return quantity, code, abs(amount), quantity


def _settlement(doc: Document, document: Mapping[str, Any]) -> None:
    settlement = doc.trade.settlement
    currency = str(document["currency"])
    settlement.currency_code = currency
    settlement.payment_reference = str(document["printed_number"])
    _payment(doc, document)
    for tax in document["tax"]:
        settlement.trade_tax.add(_tax(tax))
    period = document.get("service_period")
    if isinstance(period, Mapping) and period.get("start") and period.get("end"):
        settlement.period.start = date.fromisoformat(str(period["start"]))
        settlement.period.end = date.fromisoformat(str(period["end"]))
    _references(doc, document.get("references") or [])
    totals = document["totals"]
    summation = settlement.monetary_summation
    summation.line_total = Decimal(str(totals["net"]))
    summation.charge_total = Decimal("0.00")
    summation.allowance_total = Decimal("0.00")
    summation.tax_basis_total = (Decimal(str(totals["net"])), None)
    summation.tax_total = (Decimal(str(totals["tax"])), currency)
    summation.grand_total = (Decimal(str(totals["gross"])), None)
    summation.due_amount = Decimal(str(totals.get("due", totals["gross"])))


def _payment(doc: Document, document: Mapping[str, Any]) -> None:
    settlement = doc.trade.settlement
    if document.get("document_type") == "credit_note":
        return  # the seller pays a credit note back: no means or terms of the buyer's payment
    bank = document["seller"].get("bank")
    if isinstance(bank, Mapping) and bank.get("iban"):
        means = PaymentMeans()
        means.type_code = SEPA_CREDIT_TRANSFER
        means.payee_account.iban = str(bank["iban"]).replace(" ", "")
        if bank.get("account_name"):
            means.payee_account.account_name = str(bank["account_name"])
        if bank.get("bic"):
            means.payee_institution.bic = str(bank["bic"])
        settlement.payment_means.add(means)
    due = document.get("due_date")
    if due:
        terms = PaymentTerms()
        days = document.get("payment_terms_days")
        terms.description = f"Payable within {days} days" if days else "Payable by the due date"
        terms.due = date.fromisoformat(str(due))
        settlement.terms.add(terms)


def _tax(tax: Mapping[str, Any]) -> ApplicableTradeTax:
    trade_tax = ApplicableTradeTax()
    trade_tax.calculated_amount = Decimal(str(tax["tax"]))
    trade_tax.type_code = "VAT"
    if tax.get("exemption_reason"):
        trade_tax.exemption_reason = str(tax["exemption_reason"])
    trade_tax.basis_amount = Decimal(str(tax["taxable"]))
    trade_tax.category_code = str(tax["category"])
    trade_tax.rate_applicable_percent = Decimal(str(tax["rate"]))
    return trade_tax


def _references(doc: Document, references: Sequence[Mapping[str, Any]]) -> None:
    """BT-25/BT-26: the (first) invoice a credit note credits (CII holds one at header level)."""
    if not references:
        return
    first = references[0]
    referenced = doc.trade.settlement.invoice_referenced_document
    referenced.issuer_assigned_id = str(first.get("printed_number") or first.get("invoice_id"))
    if first.get("issue_date"):
        referenced.issue_date_time = date.fromisoformat(str(first["issue_date"]))


def _country(address: object) -> str | None:
    return (
        str(address["country"]) if isinstance(address, Mapping) and address.get("country") else None
    )


def _lang(document: Mapping[str, Any]) -> str:
    return str(document.get("locale") or "en_GB").replace("_", "-")
