"""A credit note as PDF, Factur-X and CII XML through the real API, CLI and database (both
backends).

Account "home-a" (plan home) with 3 kWh in October, its draft's lines set to two VAT rates
before it is finalized with the seller's details and a German billing address: line 1 base fee
10.00 at S 19 %, line 2 stream_hours 0.00, line 3 kwh 3 x 0.20 = 0.60 at S 7 %. A whole credit
credits lines 1 and 3: S 19 taxable 10.00, tax 1.90; S 7 taxable 0.60, tax 0.042 -> 0.04;
net 10.60, tax 1.94, gross 12.54.
"""

import asyncio
import io
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import facturx
import httpx
import pytest
from lxml import etree
from pypdf import PdfReader
from sqlalchemy import update

from cloud.catalog.models import Account
from cloud.cli import main
from cloud.db import Database
from cloud.invoices.finalization import finalize_invoice
from cloud.invoices.models import InvoiceLine
from cloud.schema import migrate
from cloud.seller import Seller
from tests.cloud.conftest import error_code
from tests.cloud.invoices.test_document_exports import NS, SELLER
from tests.cloud.invoices.test_invoice_api import admin_headers, metered_account
from tests.cloud.invoices.test_runs import Billing, billing

__all__ = ["billing"]
D = Decimal
RSM = {
    **NS,
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
}
SUMMATION = ".//ram:SpecifiedTradeSettlementHeaderMonetarySummation"
SETTLEMENT = ".//ram:ApplicableHeaderTradeSettlement"
REFERENCED = f"{SETTLEMENT}/ram:InvoiceReferencedDocument"


async def german_invoice(billing: Billing, *, seller: Seller | None = SELLER) -> int:
    """home-a's October invoice at two VAT rates, finalized (forced) with a German address."""
    await metered_account(billing)
    await billing.run("2026-10")
    invoice = await billing.invoice("home-a", "2026-10")
    assert invoice is not None
    async with billing.db.transaction(write=True) as session:
        for n, rate in ((1, D("19")), (2, D("19")), (3, D("7"))):
            await session.execute(
                update(InvoiceLine)
                .where(InvoiceLine.invoice_id == invoice.id, InvoiceLine.n == n)
                .values(tax_category="S", tax_rate=rate)
            )
        account = await session.get_one(Account, "home-a")
        account.address = {
            "lines": ["Lagerweg 5"],
            "postcode": "20457",
            "city": "Hamburg",
            "country": "DE",
        }
    await finalize_invoice(
        db=billing.db, invoice_id=invoice.id, now=datetime.now(UTC), force=True, seller=seller
    )
    return invoice.id


async def german_credit_note(
    billing: Billing, client: httpx.AsyncClient, *, seller: Seller | None = SELLER
) -> dict[str, Any]:
    """The whole credit note (API answer) of `german_invoice`."""
    headers = await admin_headers(billing)
    invoice_id = await german_invoice(billing, seller=seller)
    created = await client.post(
        f"/v1/invoices/{invoice_id}/credit-notes", json={"reason": "goodwill"}, headers=headers
    )
    assert created.status_code == 201, created.text
    note: dict[str, Any] = created.json()
    assert (note["net"], note["tax"], note["gross"]) == ("10.60", "1.94", "12.54")
    return note


def assert_credit_note_xml(xml: bytes, note: dict[str, Any]) -> None:
    """The CII XML validates (Factur-X EN 16931) and is the credit note: type 381, its number,
    the credited invoice as BT-25, its totals (`note`: number, net, tax, gross)."""
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    root = etree.fromstring(xml)
    assert root.findtext("rsm:ExchangedDocument/ram:ID", namespaces=RSM) == note["number"]
    assert root.findtext("rsm:ExchangedDocument/ram:TypeCode", namespaces=RSM) == "381"
    assert root.findtext(f"{REFERENCED}/ram:IssuerAssignedID", namespaces=RSM) == "INV-000001"
    summation = root.find(SUMMATION, namespaces=RSM)
    assert summation is not None
    totals = {
        name: summation.findtext(f"ram:{name}", namespaces=RSM)
        for name in ("LineTotalAmount", "TaxBasisTotalAmount", "TaxTotalAmount", "GrandTotalAmount")
    }
    assert totals == {
        "LineTotalAmount": note["net"],
        "TaxBasisTotalAmount": note["net"],
        "TaxTotalAmount": note["tax"],
        "GrandTotalAmount": note["gross"],
    }
    # one VAT breakdown per rate: 10.00 x 19 % = 1.90, 0.60 x 7 % = 0.042 -> 0.04
    breakdown = [
        (
            tax.findtext("ram:RateApplicablePercent", namespaces=RSM),
            tax.findtext("ram:BasisAmount", namespaces=RSM),
            tax.findtext("ram:CalculatedAmount", namespaces=RSM),
        )
        for tax in root.iterfind(
            ".//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax", RSM
        )
    ]
    assert sorted(breakdown) == [("19", "10.00", "1.90"), ("7", "0.60", "0.04")]


async def test_a_credit_note_as_facturx_cii_and_pdf(
    client: httpx.AsyncClient, billing: Billing
) -> None:
    headers = await admin_headers(billing)
    note = await german_credit_note(billing, client)
    url = f"/v1/credit-notes/{note['id']}/export"

    einvoice = await client.get(f"{url}?format=facturx", headers=headers)
    cii = await client.get(f"{url}?format=cii", headers=headers)
    pdf = await client.get(f"{url}?format=pdf", headers=headers)

    assert einvoice.status_code == 200, einvoice.text
    assert einvoice.headers["content-type"] == "application/pdf"
    filename, xml = facturx.get_xml_from_pdf(einvoice.content, check_xsd=True)
    assert filename == "factur-x.xml"
    assert_credit_note_xml(xml, note)
    assert cii.status_code == 200 and cii.headers["content-type"] == "application/xml"
    assert_credit_note_xml(cii.content, note)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "INV-CN-000001" in text and "INV-000001" in text and "12.54" in text


async def test_an_e_credit_note_without_seller_details_is_refused(
    client: httpx.AsyncClient, billing: Billing
) -> None:
    headers = await admin_headers(billing)
    note = await german_credit_note(billing, client, seller=None)
    url = f"/v1/credit-notes/{note['id']}/export"

    for export_format in ("facturx", "cii"):
        refused = await client.get(f"{url}?format={export_format}", headers=headers)
        assert (refused.status_code, error_code(refused)) == (409, "einvoice_not_ready")
        assert "seller" in refused.json()["error"]["detail"]["missing"]
    pdf = await client.get(f"{url}?format=pdf", headers=headers)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    bad = await client.get(f"{url}?format=xlsx", headers=headers)
    assert (bad.status_code, error_code(bad)) == (422, "invalid_parameters")
    assert "pdf, facturx, cii" in bad.json()["error"]["message"]


async def _seed_invoice(url: str) -> int:
    async with Database(url) as db:
        await migrate(db.engine)
        return await german_invoice(await Billing(db).setup())


def test_the_cli_credits_and_exports_a_credit_note_as_facturx(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    invoice_id = asyncio.run(_seed_invoice(db_url))
    assert main(["invoice", "credit", str(invoice_id), "--reason", "goodwill", "--db", db_url]) == 0
    capsys.readouterr()
    out = tmp_path / "cn.pdf"
    argv = ["credit-note", "export", "1", "--db", db_url, "--output"]

    assert main([*argv, str(out), "--format", "facturx"]) == 0
    note = {"number": "INV-CN-000001", "net": "10.60", "tax": "1.94", "gross": "12.54"}
    assert_credit_note_xml(facturx.get_xml_from_pdf(out.read_bytes())[1], note)
    bad = tmp_path / "cn.xlsx"
    assert main([*argv, str(bad), "--format", "xlsx"]) == 2
    assert "format 'xlsx'" in capsys.readouterr().err
    assert not bad.exists()
