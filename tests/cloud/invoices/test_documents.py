"""The invoice as a document a customer receives: HTML, PDF/A-3 and Factur-X, rendered from
hand-built documents in the contract's shape (`document_samples`, amounts computed there).

Pure: no database. The end-to-end tests through the API are in `test_document_exports`.
"""

import io
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import facturx
import pytest
from lxml import etree
from pypdf import PdfReader

from cloud.errors import EInvoiceNotReady
from cloud.invoices.facturx import facturx_pdf, invoice_cii, line_price, unit_code
from cloud.invoices.html import Formats, PageLinks, _pricing, charge_name, invoice_html
from cloud.invoices.pdf import invoice_pdf
from tests.cloud.invoices.document_samples import credit_note_sample, invoice_sample

NBSP = "\xa0"
NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
}
HREF = re.compile(r'href="([^"]+)"')


def _cell(html: str, n: int) -> str:
    return html.split(f'<tr id="line-{n}">')[1].split("</tr>")[0]


def test_html_has_seller_buyer_dates_and_units_in_de_de() -> None:
    html = invoice_html(invoice_sample())
    assert "Tollgate Operator GmbH" in html and "VAT ID DE123456789" in html
    assert "Hafenstraße 1" in html and "20457 Hamburg" in html
    buyer = html.split('<address id="buyer">')[1].split("</address>")[0]
    assert "Acme Logistik AG" in buyer and "Lagerweg 5" in buyer and "10115 Berlin" in buyer
    assert "VAT ID DE987654321" in buyer and "Customer number acme" in buyer
    assert "<h1>Invoice INV-000012</h1>" in html
    # Dates for de_DE: issue 5 Dec, due 19 Dec (+14 days), service period November.
    assert "<dt>Issue date</dt><dd>05.12.2026</dd>" in html
    assert "<dt>Due date</dt><dd>19.12.2026</dd>" in html
    assert "<dt>Service period</dt><dd>01.11.2026 to 30.11.2026</dd>" in html
    # Units in the quantity and billable columns, German digit grouping.
    assert '<td class="num">190 openings</td><td class="num">180 openings</td>' in _cell(html, 2)
    assert '<td class="num">861.000 Wh</td>' in _cell(html, 3)
    assert f"0,0003{NBSP}€ / Wh" in _cell(html, 3)  # unit price with its unit, never rounded
    assert 'class="watermark"' not in html


def test_html_amounts_and_vat_breakdown_for_the_locale() -> None:
    de = invoice_html(invoice_sample())
    # de_DE: decimal comma, grouping dot, € after a no-break space.
    assert f'<td class="num" id="net">367,30{NBSP}€</td>' in de
    assert f'<td class="num" id="tax">38,79{NBSP}€</td>' in de
    assert f'<td class="num" id="due">406,09{NBSP}€</td>' in de
    vat = de.split('<section id="vat">')[1].split("</section>")[0]
    assert vat.count("<tr><td>VAT (S)</td>") == 2
    assert f"109,00{NBSP}€" in vat and f"20,71{NBSP}€" in vat
    assert f"258,30{NBSP}€" in vat and f"18,08{NBSP}€" in vat
    big = invoice_sample(
        totals={"net": "1234.56", "tax": "0", "gross": "1234.56", "due": "1234.56"}
    )
    assert f"1.234,56{NBSP}€" in invoice_html(big)
    gb = invoice_html(invoice_sample(locale="en_GB"))
    assert '<td class="num" id="due">€406.09</td>' in gb
    assert "<dt>Issue date</dt><dd>5 Dec 2026</dd>" in gb
    assert '<td class="num">861,000 Wh</td>' in _cell(gb, 3)


def test_lines_read_as_sentences() -> None:
    html = invoice_html(invoice_sample(locale="en_GB"))
    assert charge_name("Door openings, 190 openings: 10 included, 180 x 0.50") == "Door openings"
    assert (
        "190 openings measured, the first 10 openings included; "
        "180 openings billable at €0.50 each."
    ) in _cell(html, 2)
    assert "861,000 Wh measured; 861,000 Wh billable at €0.0003 per Wh." in _cell(html, 3)
    assert "The plan&#x27;s base fee of €19.00 for the whole period." in _cell(html, 1)
    # A graduated line: 0-100 at 0.50, above 100 at 0.40 with a 2.00 flat fee.
    tiered = invoice_sample(locale="en_GB")
    tiered["lines"][1]["detail"] = {
        "model": "graduated",
        "included_units": "0",
        "billable": "190",
        "quantity": "190",
        "steps": [
            {"from": "0", "up_to": "100", "units": "100", "unit_price": "0.50",
             "flat_fee": "0", "amount": "50.00"},
            {"from": "100", "up_to": None, "units": "90", "unit_price": "0.40",
             "flat_fee": "2.00", "amount": "38.00"},
        ],
    }  # fmt: skip
    row = _cell(invoice_html(tiered), 2)
    assert (
        "190 openings billable, priced by tier: 100 openings (0 to 100) at €0.50 each; "
        "90 openings (above 100) at €0.40 each plus a flat €2.00."
    ) in row
    assert '<td class="num">tiered</td>' in row
    # Half a month of base fee: 15 of 30 days.
    prorated = invoice_sample(locale="en_GB")
    prorated["lines"][0]["detail"].update(part_seconds="1296000", factor="0.5")
    assert "prorated for 15 of 30 days" in _cell(invoice_html(prorated), 1)


def test_only_usage_lines_link_evidence_and_links_are_absolute_with_a_public_url() -> None:
    links = PageLinks(base="https://bill.example.com", standalone=True)
    html = invoice_html(invoice_sample(), links=links)
    assert "evidence" not in _cell(html, 1)  # the base fee is not rated from events
    assert 'href="https://bill.example.com/v1/invoices/7/lines/2/evidence"' in _cell(html, 2)
    assert all(href.startswith("https://bill.example.com/") for href in HREF.findall(html))
    shared = invoice_html(
        invoice_sample(), links=PageLinks(base="https://bill.example.com", share_token="tgs_x")
    )
    assert set(HREF.findall(shared)) == {
        "https://bill.example.com/v1/shared/tgs_x/lines/2/evidence",
        "https://bill.example.com/v1/shared/tgs_x/lines/3/evidence",
        "https://bill.example.com/v1/shared/tgs_x/invoice.pdf",
    }


def test_a_file_without_public_url_has_no_dead_links_but_says_where_evidence_is() -> None:
    html = invoice_html(invoice_sample(), links=PageLinks(standalone=True))
    assert HREF.findall(html) == []
    assert 'id="evidence-note"' in html and "TOLLGATE_PUBLIC_URL" in html


def test_no_seller_and_draft_are_visible_and_payment_instructions_name_the_reference() -> None:
    html = invoice_html(invoice_sample(locale="en_GB"))
    payment = html.split('<section id="payment">')[1].split("</section>")[0]
    assert "€406.09 by 19 Dec 2026" in payment
    assert "IBAN DE02120300000000202051" in payment and "BIC BYLADEM1001" in payment
    assert "<strong>INV-000012</strong> as the reference" in payment
    draft = invoice_html(
        invoice_sample(seller=None, status="draft", printed_number=None, issue_date=None)
    )
    assert 'id="seller-missing"' in draft and "Seller details not configured" in draft
    assert "<h1>Invoice DRAFT</h1>" in draft and 'class="watermark"' in draft
    assert 'id="payment"' not in draft
    noted = invoice_html(invoice_sample(notes=["Reverse charge: the recipient owes the VAT."]))
    assert "<p>Reverse charge: the recipient owes the VAT.</p>" in noted


def test_credit_note_html_names_the_invoice_and_line_it_credits() -> None:
    html = invoice_html(credit_note_sample())
    assert "<h1>Credit note CN-000001</h1>" in html
    assert "<li>invoice INV-000012 of 05.12.2026, line 2</li>" in html
    assert "credits line 2" in html and "Amount credited" in html
    assert 'id="payment"' not in html
    assert HREF.findall(html) == ["/v1/invoices/7/lines/2/evidence"]  # the credited line's


def test_unit_codes_and_line_prices_multiply_to_the_line_amount() -> None:
    assert [unit_code(u) for u in ("h", "min", "s", "kWh", "Wh", "openings", None)] == [
        "HUR", "MIN", "SEC", "KWH", "WHR", "C62", "C62",
    ]  # fmt: skip
    lines = invoice_sample()["lines"]
    assert line_price(lines[0]) == (1, "C62", Decimal("19.00"), None)
    assert line_price(lines[1]) == (180, "C62", Decimal("0.50"), None)  # 180 x 0.50 = 90.00
    assert line_price(lines[2]) == (861000, "WHR", Decimal("0.0003"), None)  # = 258.30
    # 2.5 h x 0.333 = 0.8325, billed 0.83: the price is the amount for the billed quantity.
    rounded = {**lines[2], "unit": "h", "billable": "2.5", "amount": "0.83",
               "detail": {"model": "standard", "unit_price": "0.333"}}  # fmt: skip
    assert line_price(rounded) == (Decimal("2.5"), "HUR", Decimal("0.83"), Decimal("2.5"))
    refund = {**lines[0], "kind": "adjustment", "amount": "-4.00"}
    assert line_price(refund) == (-1, "C62", Decimal("4.00"), None)  # BR-27: price >= 0


def _xml(document: dict[str, Any]) -> etree._Element:
    return etree.fromstring(invoice_cii(document))


def test_cii_validates_and_its_totals_equal_the_invoice() -> None:
    xml = invoice_cii(invoice_sample())
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    root = etree.fromstring(xml)

    def text(path: str) -> list[str]:
        return [str(node.text) for node in root.iterfind(path, NS)]

    assert text(".//rsm:ExchangedDocument/ram:TypeCode") == ["380"]
    assert text(".//rsm:ExchangedDocument/ram:ID") == ["INV-000012"]
    summation = ".//ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:"
    assert text(summation + "LineTotalAmount") == ["367.30"]
    assert text(summation + "TaxTotalAmount") == ["38.79"]
    assert text(summation + "GrandTotalAmount") == ["406.09"]
    assert text(summation + "DuePayableAmount") == ["406.09"]
    header_tax = ".//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/ram:"
    assert text(header_tax + "RateApplicablePercent") == ["19", "7"]
    assert text(header_tax + "CalculatedAmount") == ["20.71", "18.08"]
    assert text(".//ram:PayeePartyCreditorFinancialAccount/ram:IBANID") == [
        "DE02120300000000202051"
    ]
    assert text(".//ram:SpecifiedTradePaymentTerms/ram:DueDateDateTime/*") == ["20261219"]
    assert text(".//ram:SellerTradeParty/ram:SpecifiedTaxRegistration/ram:ID") == ["DE123456789"]
    quantities = root.findall(".//ram:BilledQuantity", NS)
    assert [(q.text, q.get("unitCode")) for q in quantities] == [
        ("1", "C62"), ("180", "C62"), ("861000", "WHR"),
    ]  # fmt: skip
    line_totals = text(".//ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount")
    assert sum(Decimal(t) for t in line_totals) == Decimal("367.30")


def test_credit_note_cii_has_type_381_and_the_invoice_it_credits() -> None:
    root = _xml(credit_note_sample())
    assert root.findtext(".//rsm:ExchangedDocument/ram:TypeCode", namespaces=NS) == "381"
    reference = root.find(".//ram:InvoiceReferencedDocument", NS)
    assert reference is not None
    assert reference.findtext("ram:IssuerAssignedID", namespaces=NS) == "INV-000012"
    grand = ".//ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:GrandTotalAmount"
    assert root.findtext(grand, namespaces=NS) == "107.10"  # 90.00 + 19 % (17.10), positive


@pytest.mark.parametrize(
    ("changes", "missing"),
    [
        ({"seller": None}, ["seller"]),
        ({"status": "draft", "printed_number": None, "issue_date": None},
         ["finalized", "issue_date"]),
        ({"tax": [], "totals": None}, ["tax"]),
    ],
)  # fmt: skip
def test_e_invoice_refuses_a_draft_or_missing_seller(
    changes: dict[str, Any], missing: list[str]
) -> None:
    with pytest.raises(EInvoiceNotReady) as refused:
        invoice_cii(invoice_sample(**changes))
    assert refused.value.status == 409 and refused.value.code == "einvoice_not_ready"
    assert "needs a finalized invoice and seller details" in refused.value.message
    assert refused.value.detail["missing"] == missing


def test_pdf_is_pdf_a_3_with_the_number_and_gross_and_renders(tmp_path: Path) -> None:
    pdf = invoice_pdf(invoice_sample())
    assert pdf.startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(pdf))
    xmp = reader.xmp_metadata
    assert xmp is not None
    metadata = reader.trailer["/Root"]["/Metadata"].get_object()
    raw = metadata.get_data().decode("utf-8")
    assert re.search(r"pdfaid:part(>|=\")3", raw), raw[:500]
    text = "".join(page.extract_text() for page in reader.pages)
    assert "INV-000012" in text and f"406,09{NBSP}€".replace(NBSP, "") in text.replace(NBSP, "")
    target = tmp_path / "invoice.pdf"
    target.write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(target), str(tmp_path / "p")],
        check=True,
        timeout=60,
    )
    (png,) = tmp_path.glob("p*.png")
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 5000


def test_facturx_pdf_carries_the_xml_back() -> None:
    document = invoice_sample()
    result = facturx_pdf(document, invoice_pdf(document))
    filename, xml = facturx.get_xml_from_pdf(result, check_xsd=True)
    assert filename == "factur-x.xml"
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    root = etree.fromstring(xml)
    grand = ".//ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:GrandTotalAmount"
    assert root.findtext(grand, namespaces=NS) == "406.09"


def test_a_draft_asks_for_no_payment_and_addresses_name_their_country() -> None:
    final = invoice_html(invoice_sample())
    assert "quoting <strong>INV-000012</strong> as the reference" in final
    draft = invoice_html(invoice_sample(printed_number=None, number=None, status="draft"))
    payment = draft.split('<section id="payment">')[1].split("</section>")[0]
    assert "This is a draft, not a request for payment" in payment
    assert "IBAN" not in payment and "quoting" not in payment
    buyer = final.split('<address id="buyer">')[1].split("</address>")[0]
    assert buyer.split("<br>")[3] == "Germany"  # the ISO code "DE" as a name, on its own line


def test_one_package_is_singular() -> None:
    fmt = Formats.of({"locale": "en_GB", "currency": "EUR"})
    detail = {"model": "package", "package_size": "10", "package_price": "0.50"}
    one = _pricing({**detail, "packages": "1"}, Decimal(3), "sessions", fmt)
    assert one.endswith(": 1 package")
    two = _pricing({**detail, "packages": "2"}, Decimal(13), "sessions", fmt)
    assert two.endswith(": 2 packages")


def test_a_credit_note_line_links_the_evidence_of_the_line_it_credits() -> None:
    html = invoice_html(credit_note_sample(), links=PageLinks(base="https://collector.example"))
    assert HREF.findall(_cell(html, 1)) == [
        "https://collector.example/v1/invoices/7/lines/2/evidence"
    ]
    shared = invoice_html(credit_note_sample(), links=PageLinks(share_token="tgs_" + "a" * 43))
    assert HREF.findall(_cell(shared, 1)) == []


def test_the_collector_and_its_cli_start_without_the_pdf_renderers() -> None:
    # WeasyPrint and drafthorse cost about a second to import: only an export pays it.
    probe = (
        "import sys, cloud.app, cloud.cli; "
        "print(sorted({'weasyprint', 'drafthorse', 'facturx'} & set(sys.modules)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"
