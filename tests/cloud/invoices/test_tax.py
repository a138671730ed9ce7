"""VAT on invoices through the real API and database (both backends): rates per country and
category, reverse charge, no tax country, rate changes, missing rates, the seller file and the
frozen parties. Every amount is computed by hand in the comments."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy import update

from cloud.catalog.loader import load_catalog, parse_catalog
from cloud.errors import InvalidSettings
from cloud.invoices.models import Invoice
from cloud.invoices.verify import verify_invoice
from cloud.seller import SELLER_ENV, load_seller
from cloud.settings import Settings
from tests.cloud.conftest import running_app
from tests.cloud.invoices.test_invoice_api import admin_headers
from tests.cloud.invoices.test_runs import Billing, billing, reading, utc
from tests.support.seller import SELLER

__all__ = ["billing"]

ADDRESS = {"lines": ["Rue de Rivoli 1"], "postcode": "75001", "city": "Paris", "country": "FR"}
# base fee 10.00 at the standard rate, energy 0.35 per kWh at the reduced rate
VAT_PLAN = {
    "effective_from": "2026-01-01T00:00:00+00:00",
    "base_fee": "10.00",
    "charges": [
        {"metric": "kwh", "model": "standard", "unit_price": "0.35", "tax_category": "reduced"}
    ],
}
RATES = [
    ("DE", "standard", "2020-01-01", "19"),
    ("DE", "reduced", "2020-01-01", "7"),
    ("FR", "standard", "2020-01-01", "20"),
    ("FR", "reduced", "2020-01-01", "5.5"),
]


@pytest.fixture
async def app(db_url: str, gateway_key: Ed25519PrivateKey) -> AsyncIterator[FastAPI]:
    """The collector with a seller configured and no grace (drafts may be finalized at once)."""
    settings = Settings(db_url=db_url, seller=SELLER, invoice_grace=timedelta(0))
    async with running_app(settings, gateway_key) as application:
        yield application


@pytest.fixture
async def headers(billing: Billing) -> dict[str, str]:
    """An admin key's header."""
    return await admin_headers(billing)


async def setup_vat(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """Plan `vat` and the DE and FR rates, through the API."""
    plan = await client.post(
        "/v1/plans", json={"id": "vat", "name": "VAT", "currency": "EUR"}, headers=headers
    )
    version = await client.post("/v1/plans/vat/versions", json=VAT_PLAN, headers=headers)
    assert (plan.status_code, version.status_code) == (201, 201), version.text
    for country, category, valid_from, rate in RATES:
        body = {"country": country, "category": category, "valid_from": valid_from, "rate": rate}
        added = await client.post("/v1/tax-rates", json=body, headers=headers)
        assert added.status_code == 201, added.text


async def customer(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    billing: Billing,
    account_id: str,
    kwh: str = "3",
    **fields: Any,
) -> None:
    """An account on plan vat (API) with a meter reading `kwh` in October 2026."""
    body = {
        "id": account_id,
        "name": account_id,
        "kind": "household",
        "currency": "EUR",
        "time_zone": "Europe/Berlin",
        "plan_id": "vat",
        **fields,
    }
    created = await client.post("/v1/accounts", json=body, headers=headers)
    assert created.status_code == 201, created.text
    await billing.device(f"m-{account_id}", "meter", account_id)
    await billing.send(reading(f"m-{account_id}", utc(2026, 10, 3), kwh))


async def run(client: httpx.AsyncClient, headers: dict[str, str], period: str) -> dict[str, Any]:
    """Run a period through the API; its report."""
    response = await client.post("/v1/invoice-runs", json={"period": period}, headers=headers)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


async def document(
    client: httpx.AsyncClient, headers: dict[str, str], account_id: str, period: str = "2026-10"
) -> dict[str, Any]:
    """The JSON export of the account's invoice of `period`."""
    listed = await client.get(
        "/v1/invoices", params={"account_id": account_id, "period": period}, headers=headers
    )
    invoice_id = listed.json()[0]["id"]
    exported = await client.get(
        f"/v1/invoices/{invoice_id}/export", params={"format": "json"}, headers=headers
    )
    assert exported.status_code == 200, exported.text
    result: dict[str, Any] = exported.json()
    return result


async def test_two_rates_on_one_invoice_for_a_household_in_the_sellers_country(
    client: httpx.AsyncClient, headers: dict[str, str], billing: Billing
) -> None:
    await setup_vat(client, headers)
    await customer(client, headers, billing, "home-de", country="DE")

    await run(client, headers, "2026-10")

    # base fee 10.00 at 19%: 1.90; energy 3 x 0.35 = 1.05 at 7%: 0.0735 -> 0.07
    # net 11.05, tax 1.97, gross 13.02
    doc = await document(client, headers, "home-de")
    assert doc["tax"] == [
        {
            "category": "S",
            "rate": "19",
            "taxable": "10.00",
            "tax": "1.90",
            "exemption_reason": None,
        },
        {"category": "S", "rate": "7", "taxable": "1.05", "tax": "0.07", "exemption_reason": None},
    ]
    assert doc["totals"] == {"net": "11.05", "tax": "1.97", "gross": "13.02", "due": "13.02"}
    assert doc["total"] == "11.05"  # still the net total
    assert [(ln["kind"], ln["tax_category"], ln["tax_rate"]) for ln in doc["lines"]] == [
        ("base_fee", "S", "19"),
        ("usage", "S", "7"),
    ]
    assert doc["notes"] == []
    assert doc["buyer"]["customer_number"] == "home-de"
    assert (doc["locale"], doc["issue_date"], doc["due_date"]) == ("de_DE", None, None)
    assert doc["service_period"] == {"start": "2026-10-01", "end": "2026-10-31"}
    invoice = (await client.get(f"/v1/invoices/{doc['id']}", headers=headers)).json()
    assert (invoice["net_total"], invoice["tax_total"], invoice["gross_total"]) == (
        "11.05",
        "1.97",
        "13.02",
    )
    assert [(v["category"], v["rate"], v["tax"]) for v in invoice["vat"]] == [
        ("S", "19", "1.90"),
        ("S", "7", "0.07"),
    ]


async def test_reverse_charge_for_an_eu_company_with_a_vat_id(
    client: httpx.AsyncClient, headers: dict[str, str], billing: Billing
) -> None:
    await setup_vat(client, headers)
    await customer(
        client,
        headers,
        billing,
        "acme-fr",
        kind="company",
        country="FR",
        vat_id="FR40303265045",
        address=ADDRESS,
        billing_name="ACME SARL",
    )

    await run(client, headers, "2026-10")

    # seller DE, buyer FR company with a VAT id: every line AE at 0; net = gross = 11.05
    doc = await document(client, headers, "acme-fr")
    assert doc["tax"] == [
        {
            "category": "AE",
            "rate": "0",
            "taxable": "11.05",
            "tax": "0.00",
            "exemption_reason": "Reverse charge",
        }
    ]
    assert doc["totals"] == {"net": "11.05", "tax": "0.00", "gross": "11.05", "due": "11.05"}
    assert doc["notes"] == [
        "Reverse charge: VAT to be accounted for by the recipient (Art. 196 Directive 2006/112/EC)"
    ]
    assert doc["buyer"] == {
        "name": "ACME SARL",
        "address": ADDRESS,
        "vat_id": "FR40303265045",
        "customer_number": "acme-fr",
        "kind": "company",
        "country": "FR",
    }


async def test_a_household_abroad_in_the_eu_pays_its_countrys_rates(
    client: httpx.AsyncClient, headers: dict[str, str], billing: Billing
) -> None:
    await setup_vat(client, headers)
    await customer(client, headers, billing, "home-fr", country="FR")

    await run(client, headers, "2026-10")

    # 10.00 at 20%: 2.00; 1.05 at 5.5%: 0.05775 -> 0.06; tax 2.06, gross 13.11
    doc = await document(client, headers, "home-fr")
    assert [(t["rate"], t["tax"]) for t in doc["tax"]] == [("20", "2.00"), ("5.5", "0.06")]
    assert doc["totals"]["gross"] == "13.11"


async def test_an_account_without_a_tax_country_is_charged_no_vat_and_the_run_says_so(
    client: httpx.AsyncClient, headers: dict[str, str], billing: Billing
) -> None:
    await setup_vat(client, headers)
    await customer(client, headers, billing, "nowhere")

    report = await run(client, headers, "2026-10")

    result = next(r for r in report["accounts"] if r["account_id"] == "nowhere")
    assert result["tax_note"] == "VAT not charged: the account has no tax country"
    doc = await document(client, headers, "nowhere")
    assert [(t["category"], t["tax"]) for t in doc["tax"]] == [("O", "0.00")]
    assert doc["notes"] == ["VAT not charged: the account has no tax country"]
    assert doc["totals"]["gross"] == "11.05"


async def test_the_rate_in_force_at_the_end_of_the_period_applies(
    client: httpx.AsyncClient, headers: dict[str, str], billing: Billing
) -> None:
    await setup_vat(client, headers)
    change = {"country": "DE", "category": "standard", "valid_from": "2026-11-01", "rate": "16"}
    assert (await client.post("/v1/tax-rates", json=change, headers=headers)).status_code == 201
    await customer(client, headers, billing, "home-de", country="DE")

    await run(client, headers, "2026-10")
    await run(client, headers, "2026-11")

    # October (ends 31 Oct): 10.00 at 19% = 1.90; November (from 1 Nov 16%): 10.00 x 16% = 1.60
    october = await document(client, headers, "home-de", "2026-10")
    november = await document(client, headers, "home-de", "2026-11")
    assert [(t["rate"], t["tax"]) for t in october["tax"] if t["taxable"] == "10.00"] == [
        ("19", "1.90")
    ]
    assert [(t["rate"], t["tax"]) for t in november["tax"] if t["taxable"] == "10.00"] == [
        ("16", "1.60")
    ]


async def test_a_missing_rate_fails_the_account_and_writes_nothing(
    client: httpx.AsyncClient, headers: dict[str, str], billing: Billing
) -> None:
    await setup_vat(client, headers)
    await customer(client, headers, billing, "home-at", country="AT")  # no AT rates

    report = await run(client, headers, "2026-10")

    failure = next(f for f in report["failures"] if f["account_id"] == "home-at")
    assert failure["code"] == "tax_rate_missing"
    assert failure["detail"] | {"account_id": "home-at"} == {
        "account_id": "home-at",
        "country": "AT",
        "category": "standard",
        "date": "2026-10-31",
    }
    assert "AT" in failure["message"] and "2026-10-31" in failure["message"]
    listed = await client.get("/v1/invoices", params={"account_id": "home-at"}, headers=headers)
    assert listed.json() == []


async def test_a_finalized_invoice_keeps_its_buyer_after_the_address_changes(
    client: httpx.AsyncClient, headers: dict[str, str], billing: Billing
) -> None:
    await setup_vat(client, headers)
    await customer(
        client, headers, billing, "acme-fr", kind="company", country="FR", address=ADDRESS
    )
    await run(client, headers, "2026-10")
    draft = await document(client, headers, "acme-fr")

    final = await client.post(f"/v1/invoices/{draft['id']}/finalize", headers=headers)
    moved = {**ADDRESS, "lines": ["Avenue Foch 2"], "postcode": "75116"}
    patched = await client.patch(
        "/v1/accounts/acme-fr", json={"address": moved, "payment_terms_days": 30}, headers=headers
    )

    assert final.status_code == 200, final.text
    assert patched.status_code == 200 and patched.json()["address"] == moved
    doc = await document(client, headers, "acme-fr")
    assert doc["buyer"]["address"] == ADDRESS
    assert doc["seller"] == SELLER.document()  # frozen from the settings at finalization
    issued = datetime.fromisoformat(final.json()["finalized_at"]).astimezone(UTC)
    assert doc["issue_date"] == final.json()["issue_date"]
    assert doc["payment_terms_days"] == 14
    due = datetime.fromisoformat(doc["issue_date"]) + timedelta(days=14)
    assert doc["due_date"] == due.date().isoformat()
    assert abs((issued.date() - datetime.fromisoformat(doc["issue_date"]).date()).days) <= 1
    # no VAT id: a French company is charged French VAT (20% and 5.5%)
    assert [t["category"] for t in doc["tax"]] == ["S", "S"]


async def test_bad_vat_id_or_billing_fields_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient, headers: dict[str, str], billing: Billing
) -> None:
    base = {
        "id": "bad",
        "name": "bad",
        "kind": "company",
        "currency": "EUR",
        "time_zone": "Europe/Berlin",
    }
    for extra in (
        {"vat_id": "DE136695977"},  # the checksum fails
        {"country": "XX"},
        {"locale": "xx_NOPE"},
        {"address": {**ADDRESS, "country": "ZZ"}},
    ):
        refused = await client.post("/v1/accounts", json=base | extra, headers=headers)
        assert refused.status_code == 422, (extra, refused.text)
    missing = await client.get("/v1/accounts/bad", headers=headers)
    assert missing.status_code == 404


async def test_tax_rate_api_refuses_bad_and_duplicate_rates(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    rate = {"country": "DE", "category": "standard", "valid_from": "2020-01-01", "rate": "19"}
    first = await client.post("/v1/tax-rates", json=rate, headers=headers)
    again = await client.post("/v1/tax-rates", json=rate | {"rate": "20"}, headers=headers)
    bad = [
        await client.post("/v1/tax-rates", json=rate | change, headers=headers)
        for change in (
            {"rate": "0", "valid_from": "2021-01-01"},  # standard must be above 0
            {"category": "zero", "rate": "5"},  # zero must be 0
            {"country": "QQ"},
            {"rate": 19.0},  # a float is not exact
        )
    ]

    assert first.status_code == 201
    assert (again.status_code, again.json()["error"]["code"]) == (409, "already_exists")
    assert [response.status_code for response in bad] == [422, 422, 422, 422]
    listed = await client.get("/v1/tax-rates", headers=headers)
    assert listed.json() == [
        {"country": "DE", "category": "standard", "valid_from": "2020-01-01", "rate": "19"}
    ]


async def test_catalog_file_declares_tax_rates(billing: Billing) -> None:
    catalog = parse_catalog(
        """
[[tax_rates]]
country = "DE"
category = "reduced"
valid_from = 2020-01-01
rate = "7"
"""
    )
    async with billing.db.transaction(write=True) as session:
        first = await load_catalog(session=session, catalog=catalog)
    async with billing.db.transaction(write=True) as session:
        second = await load_catalog(session=session, catalog=catalog)
    assert [o.action for o in first.outcomes] == ["create"]
    assert [o.action for o in second.outcomes] == ["unchanged"]


def _seller_file(tmp_path: Path, body: str) -> str:
    path = tmp_path / "seller.toml"
    path.write_text(body, encoding="utf-8")
    return str(path)


GOOD_SELLER = """
[seller]
name = "Tollgate Metering GmbH"
street = ["Hauptstr. 1"]
postcode = "10115"
city = "Berlin"
country = "DE"
vat_id = "DE 136 695 976"
email = "billing@example.com"
iban = "DE89 3704 0044 0532 0130 00"
"""


def test_seller_file_is_read_and_compacted(tmp_path: Path) -> None:
    seller = load_seller(_seller_file(tmp_path, GOOD_SELLER))
    assert (seller.vat_id, seller.iban) == ("DE136695976", "DE89370400440532013000")
    assert seller.document()["bank"]["account_name"] == "Tollgate Metering GmbH"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("DE89 3704 0044 0532 0130 00", "DE00 3704 0044 0532 0130 00"), "seller.iban"),
        (("DE 136 695 976", "DE 136 695 977"), "seller.vat_id"),
        (('city = "Berlin"', 'city = "Berlin"\ncolour = "red"'), "seller.colour"),
        (('country = "DE"', 'country = "Germany"'), "seller.country"),
    ],
)
def test_a_bad_seller_file_names_the_file_and_the_field(
    tmp_path: Path, change: tuple[str, str], field: str
) -> None:
    path = _seller_file(tmp_path, GOOD_SELLER.replace(*change))
    with pytest.raises(InvalidSettings) as caught:
        load_seller(path)
    assert path in caught.value.message and field in caught.value.message


def test_settings_load_refuses_a_bad_seller_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SELLER_ENV, _seller_file(tmp_path, "[seller\nname="))
    with pytest.raises(InvalidSettings, match="not TOML"):
        Settings.load(db="sqlite:///x.sqlite")
    monkeypatch.setenv(SELLER_ENV, str(tmp_path / "missing.toml"))
    with pytest.raises(InvalidSettings, match="cannot read it"):
        Settings.load(db="sqlite:///x.sqlite")
    monkeypatch.setenv(SELLER_ENV, _seller_file(tmp_path, GOOD_SELLER))
    assert Settings.load(db="sqlite:///x.sqlite").seller == load_seller(
        str(tmp_path / "seller.toml")
    )
    assert Settings().seller is None


async def test_verify_invoice_rechecks_the_vat_totals_and_names_a_tampered_one(
    client: httpx.AsyncClient, headers: dict[str, str], billing: Billing
) -> None:
    await setup_vat(client, headers)
    await customer(client, headers, billing, "home-de", country="DE")
    await run(client, headers, "2026-10")
    invoice_id = (await document(client, headers, "home-de"))["id"]
    # as above: S 19 10.00 -> 1.90, S 7 1.05 -> 0.0735 -> 0.07; tax 1.97, gross 13.02
    assert verify_invoice(*await verify_documents(client, headers, invoice_id)) == []
    shown = (await client.get(f"/v1/invoices/{invoice_id}", headers=headers)).json()
    evidence = (await verify_documents(client, headers, invoice_id))[1]
    assert verify_invoice(shown, evidence) == []

    async with billing.db.transaction(write=True) as session:  # tamper in the database
        await session.execute(
            update(Invoice).where(Invoice.id == invoice_id).values(tax_total=Decimal("1.90"))
        )
    exported, evidence = await verify_documents(client, headers, invoice_id)
    shown = (await client.get(f"/v1/invoices/{invoice_id}", headers=headers)).json()

    for tampered in (exported, shown):
        problems = verify_invoice(tampered, evidence)
        assert [(p.line, p.what) for p in problems] == [
            (None, "VAT and gross totals equal the VAT breakdown of the lines")
        ]
        assert problems[0].detail == (
            "tax_total 1.90, computed 1.97 (lines: S 19 %: 10.00 -> 1.90; S 7 %: 1.05 -> 0.07)"
        )

    async with billing.db.transaction(write=True) as session:
        await session.execute(
            update(Invoice)
            .where(Invoice.id == invoice_id)
            .values(tax_total=Decimal("1.97"), gross_total=Decimal("13.00"))
        )
    exported, evidence = await verify_documents(client, headers, invoice_id)
    [problem] = verify_invoice(exported, evidence)
    assert problem.detail.startswith("gross_total 13.00, computed 13.02 (lines:")
    # a saved document whose breakdown total was edited fails too
    exported["totals"]["tax"] = "0.00"
    exported["gross_total"] = "13.02"
    [problem] = verify_invoice(exported, evidence)
    assert problem.detail.startswith("totals.tax 0.00, computed 1.97")


async def verify_documents(
    client: httpx.AsyncClient, headers: dict[str, str], invoice_id: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The invoice's JSON export and every line's evidence, over the API."""
    url = f"/v1/invoices/{invoice_id}"
    exported = await client.get(f"{url}/export", params={"format": "json"}, headers=headers)
    invoice: dict[str, Any] = exported.json()
    evidence = [
        (await client.get(f"{url}/lines/{line['n']}/evidence", headers=headers)).json()
        for line in invoice["lines"]
    ]
    return invoice, evidence
