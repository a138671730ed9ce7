"""The invoice as PDF, Factur-X and CII XML through the real API and database (both backends).

Over the scenario of `test_evidence` (base fee 10.00, stream_hours 1.25, water 1.60; net 12.85
EUR), the account given a German billing address, tax country and locale and the draft re-run
with DE's standard rate, so the invoice charges 19 % VAT:
12.85 x 19 % = 2.4415 -> 2.44; gross 15.29.
"""

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import facturx
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from lxml import etree
from pypdf import PdfReader

from cloud.catalog.models import Account
from cloud.catalog.tax_rates import add_tax_rate
from cloud.cli import main
from cloud.db import Database
from cloud.invoices.finalization import finalize_invoice
from cloud.invoices.service import run_invoices
from cloud.settings import Settings
from tests.cloud.conftest import error_code, http_client, running_app
from tests.cloud.invoices.test_evidence import GRACE, NOW, billed_invoice
from tests.support.seller import SELLER

PUBLIC_URL = "https://bill.example.com"
NS = {"ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"}
GRAND = ".//ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:GrandTotalAmount"
TAX_TOTAL = ".//ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:TaxTotalAmount"


@pytest.fixture
async def seller_app(db_url: str, gateway_key: Ed25519PrivateKey) -> AsyncIterator[FastAPI]:
    """A collector with seller details and a public URL configured."""
    settings = Settings(db_url=db_url, seller=SELLER, public_url=PUBLIC_URL)
    async with running_app(settings, gateway_key) as application:
        yield application


async def _german_account(db: Database) -> None:
    """acme gets a German billing address, tax country and locale, and DE's standard rate
    (19 %) exists; the draft is re-run so that its lines are taxed (VAT is set by the run)."""
    async with db.transaction(write=True) as session:
        await add_tax_rate(
            session=session,
            country="DE",
            category="standard",
            valid_from=date(2020, 1, 1),
            rate=Decimal("19"),
        )
        account = await session.get_one(Account, "acme")
        account.address = {
            "lines": ["Lagerweg 5"],
            "postcode": "20457",
            "city": "Hamburg",
            "country": "DE",
        }
        account.country = "DE"
        account.locale = "de_DE"
    report = await run_invoices(db=db, period="2026-11", now=NOW, grace=GRACE, account_id="acme")
    assert [result.outcome for result in report.accounts] == ["updated"], report


async def test_facturx_export_validates_and_matches_the_invoice_totals(
    seller_app: FastAPI, tmp_path: Path, db_url: str
) -> None:
    db: Database = seller_app.state.db
    billed = await billed_invoice(db)
    await _german_account(db)
    await finalize_invoice(db=db, invoice_id=billed.invoice_id, now=NOW, force=True, seller=SELLER)
    url = f"/v1/invoices/{billed.invoice_id}/export"
    async with http_client(seller_app) as client:
        document = (await client.get(f"{url}?format=json", headers=billed.headers)).json()
        pdf = await client.get(f"{url}?format=pdf", headers=billed.headers)
        einvoice = await client.get(f"{url}?format=facturx", headers=billed.headers)
        cii = await client.get(f"{url}?format=cii", headers=billed.headers)
    assert document["totals"]["gross"] == "15.29"  # 12.85 + 2.44
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert document["printed_number"] in text and "15,29" in text  # de_DE
    assert einvoice.status_code == 200 and einvoice.headers["content-type"] == "application/pdf"
    filename, xml = facturx.get_xml_from_pdf(einvoice.content, check_xsd=True)
    assert filename == "factur-x.xml"
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    root = etree.fromstring(xml)
    assert root.findtext(GRAND, namespaces=NS) == document["totals"]["gross"]
    assert root.findtext(TAX_TOTAL, namespaces=NS) == document["totals"]["tax"]
    assert cii.status_code == 200 and cii.headers["content-type"] == "application/xml"
    assert etree.fromstring(cii.content).findtext(GRAND, namespaces=NS) == "15.29"
    # The CLI writes the same e-invoice; its links are absolute to the public URL.
    out = tmp_path / "invoice.pdf"
    argv = ["invoice", "export", str(billed.invoice_id), "--format", "facturx", "--output"]
    assert await asyncio.to_thread(main, [*argv, str(out), "--db", db_url]) == 0
    assert facturx.get_xml_from_pdf(out.read_bytes())[0] == "factur-x.xml"
    html = tmp_path / "invoice.html"
    argv = ["invoice", "export", str(billed.invoice_id), "--format", "html", "--output"]
    assert await asyncio.to_thread(main, [*argv, str(html), "--db", db_url]) == 0


async def test_e_invoice_of_a_draft_or_without_seller_is_refused(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    billed = await billed_invoice(db)
    url = f"/v1/invoices/{billed.invoice_id}/export"
    for export_format in ("facturx", "cii"):
        draft = await client.get(f"{url}?format={export_format}", headers=billed.headers)
        assert (draft.status_code, error_code(draft)) == (409, "einvoice_not_ready")
        message = draft.json()["error"]["message"]
        assert "a Factur-X e-invoice needs a finalized invoice and seller details" in message
        assert "finalized" in draft.json()["error"]["detail"]["missing"]
    await finalize_invoice(db=db, invoice_id=billed.invoice_id, now=NOW, force=True)
    no_seller = await client.get(f"{url}?format=facturx", headers=billed.headers)
    assert (no_seller.status_code, error_code(no_seller)) == (409, "einvoice_not_ready")
    assert "seller" in no_seller.json()["error"]["detail"]["missing"]
    # The PDF of a draft is fine (marked DRAFT, a seller warning), without dead links.
    pdf = await client.get(f"{url}?format=pdf", headers=billed.headers)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Seller details not configured" in text
    assert Decimal("12.85") == Decimal(
        (await client.get(f"{url}?format=json", headers=billed.headers)).json()["total"]
    )
