"""Listing every catalog kind, correcting metrics and plan versions until a finalized invoice
used them (409 naming the invoice), re-drafting what a correction changes, `catalog load` with
updates and --dry-run, warnings for a metric no event matches, errors by id. Both backends.

The billing catalog is tests/cloud/invoices/test_runs.py's: plan home = base 10.00, kwh
graduated (0, 10] at 0.20; one meter with 3 kWh in October 2026: 10.00 + 3 x 0.20 = 10.60.
"""

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from cloud.catalog.loader import parse_catalog
from cloud.catalog.models import Metric, PlanVersionRow
from cloud.cli import main
from cloud.errors import InvalidBillingInput
from cloud.gateways.enrollment import add_site
from cloud.invoices.models import Invoice
from tests.cloud.invoices.test_invoice_api import admin_headers, metered_account
from tests.cloud.invoices.test_runs import Billing, billing
from tests.cloud.test_cli import plain_url

__all__ = ["billing"]


async def cli(argv: list[str]) -> int:
    """`tollgate-cloud argv` in a thread (it runs its own event loop); its exit status."""
    return await asyncio.to_thread(main, argv)


async def draft_total(billing: Billing, account_id: str = "home-a") -> str:
    """The account's October draft total, to the cent."""
    invoice = await billing.invoice(account_id, "2026-10")
    assert invoice is not None
    return f"{invoice.total:.2f}"


async def test_sites_and_bindings_are_listed_in_bounded_pages(
    client: httpx.AsyncClient, billing: Billing
) -> None:
    headers = await admin_headers(billing)
    async with billing.db.transaction(write=True) as session:
        for site in ("s-1", "s-2", "s-3"):
            await add_site(session=session, site_id=site, name=site)
    sites = await client.get("/v1/sites", params={"limit": 2}, headers=headers)
    rest = await client.get(
        "/v1/sites", params={"limit": 2, "after": sites.json()["next_after"]}, headers=headers
    )
    assert [s["id"] for s in sites.json()["items"]] == ["s-1", "s-2"]
    assert [s["id"] for s in rest.json()["items"]] == ["s-3"] and rest.json()["next_after"] is None
    await metered_account(billing, "home-a")
    await metered_account(billing, "home-b")

    first = (await client.get("/v1/bindings", params={"limit": 1}, headers=headers)).json()
    second = await client.get(
        "/v1/bindings", params={"limit": 1, "after": first["next_after"]}, headers=headers
    )
    too_big = await client.get("/v1/bindings", params={"limit": 1001}, headers=headers)
    # A cursor beyond a 64-bit row id is refused before the database sees it (was a 500).
    beyond = await client.get("/v1/bindings", params={"after": 2**63}, headers=headers)
    versions = await client.get("/v1/plans/shop/versions", headers=headers)

    assert [b["account_id"] for b in first["items"]] == ["home-a"]
    assert [b["account_id"] for b in second.json()["items"]] == ["home-b"]
    assert too_big.status_code == 422
    assert beyond.status_code == 422 and beyond.json()["error"]["code"] == "invalid_parameters"
    assert [v["version"] for v in versions.json()] == [1, 2]


async def test_a_metric_is_corrected_and_its_drafts_redrafted_until_an_invoice_used_it(
    client: httpx.AsyncClient, billing: Billing
) -> None:
    headers = await admin_headers(billing)
    await metered_account(billing, "home-a")
    await billing.run("2026-10")
    assert await draft_total(billing) == "10.60"

    # Events say unit kWh; a metric asking for Wh matches none: kwh line 0, total 10.00.
    fixed = await client.patch("/v1/metrics/kwh", json={"unit": "Wh"}, headers=headers)

    assert fixed.status_code == 200, fixed.text
    answer = fixed.json()
    assert answer["unit"] == "Wh"
    assert answer["redrafted"] == [
        {
            "account_id": "home-a",
            "period": "2026-10",
            "invoice_id": answer["redrafted"][0]["invoice_id"],
            "old_total": "10.60",
            "new_total": "10.00",
            "outcome": "updated",
        }
    ]
    assert "unit 'Wh'" in answer["warnings"][0] and "'kWh'" in answer["warnings"][0]
    assert await draft_total(billing) == "10.00"

    back = await client.patch("/v1/metrics/kwh", json={"unit": None}, headers=headers)
    assert back.json()["redrafted"][0]["new_total"] == "10.60"
    invoice = await billing.invoice("home-a", "2026-10")
    assert invoice is not None
    done = await client.post(
        f"/v1/invoices/{invoice.id}/finalize", params={"force": "true"}, headers=headers
    )
    assert done.status_code == 200, done.text

    refused = await client.patch("/v1/metrics/kwh", json={"unit": "Wh"}, headers=headers)

    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "catalog_in_use"
    assert (
        f"finalized invoice {invoice.id}" in error["message"] and "new metric" in error["message"]
    )
    async with billing.db.transaction() as session:
        assert (await session.get(Metric, "kwh")).unit is None  # type: ignore[union-attr]


async def test_a_plan_version_is_replaced_until_an_invoice_used_it(
    client: httpx.AsyncClient, billing: Billing
) -> None:
    headers = await admin_headers(billing)
    await metered_account(billing, "home-a")
    await billing.run("2026-10")
    version = (await client.get("/v1/plans/home/versions", headers=headers)).json()[0]
    terms = {**version["terms"], "base_fee": "12.00"}

    replaced = await client.put("/v1/plans/home/versions/1", json=terms, headers=headers)

    assert replaced.status_code == 200, replaced.text
    # 12.00 + 3 x 0.20 = 12.60
    assert [(r["old_total"], r["new_total"]) for r in replaced.json()["redrafted"]] == [
        ("10.60", "12.60")
    ]
    invoice = await billing.invoice("home-a", "2026-10")
    assert invoice is not None
    await client.post(
        f"/v1/invoices/{invoice.id}/finalize", params={"force": "true"}, headers=headers
    )
    refused = await client.put(
        "/v1/plans/home/versions/1", json={**terms, "base_fee": "1"}, headers=headers
    )
    missing = await client.put("/v1/plans/home/versions/9", json=terms, headers=headers)

    assert (
        refused.status_code == 409 and refused.json()["error"]["detail"]["invoice_id"] == invoice.id
    )
    assert "plan home version 1" in refused.json()["error"]["message"]
    assert missing.status_code == 404
    async with billing.db.transaction() as session:
        row = await session.get(PlanVersionRow, ("home", 1))
        assert row is not None and row.terms["base_fee"] == "12.00"


UPDATE = """
[[metrics]]
id = "kwh"
name = "Energy"
source = "events"
aggregation = "sum"
field = "quantity"
profiles = ["meter"]
names = ["reading"]
unit = "openings"
"""


async def test_load_dry_run_prints_the_plan_and_totals_and_writes_nothing(
    billing: Billing, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await metered_account(billing, "home-a")
    await billing.run("2026-10")
    path = tmp_path / "catalog.toml"
    path.write_text(UPDATE)
    url = plain_url(db_url)
    capsys.readouterr()

    assert await cli(["catalog", "load", str(path), "--dry-run", "--db", url]) == 0
    out, err = capsys.readouterr()

    assert "dry run: nothing was written" in out
    assert "update metric kwh\n    unit: None -> 'openings'" in out
    assert "home-a 2026-10: 10.60 -> 10.00" in out  # the kwh line would bill 0
    assert "warning: metric kwh matches none" in err and "unit 'openings'" in err
    assert await draft_total(billing) == "10.60"
    async with billing.db.transaction() as session:
        assert (await session.get(Metric, "kwh")).unit is None  # type: ignore[union-attr]

    assert await cli(["catalog", "load", str(path), "--db", url]) == 0
    out = capsys.readouterr().out
    assert "metrics: 0 created, 1 updated, 0 unchanged" in out
    assert "home-a 2026-10: 10.60 -> 10.00" in out
    assert await draft_total(billing) == "10.00"


async def test_catalog_list_prints_every_kind(
    billing: Billing, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await metered_account(billing, "home-a")
    url = plain_url(db_url)
    kinds = {
        "accounts": "home-a",
        "profiles": "meter",
        "devices": "m-home-a",
        "metrics": "kwh",
        "plans": "shop",
        "versions": "shop",
        "bindings": "m-home-a",
        "sites": None,
        "sources": None,
        "gateways": "billing-gw",
    }
    for kind, expected in kinds.items():
        capsys.readouterr()
        assert await cli(["catalog", "list", kind, "--db", url]) == 0, kind
        table = capsys.readouterr().out
        assert await cli(["catalog", "list", kind, "--json", "--db", url]) == 0, kind
        rows = json.loads(capsys.readouterr().out)
        if expected is not None:
            assert expected in table and expected in json.dumps(rows), kind


async def test_invoice_discard_deletes_a_draft_from_the_cli(
    billing: Billing, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await metered_account(billing, "home-a")
    await billing.run("2026-10")
    invoice = await billing.invoice("home-a", "2026-10")
    assert invoice is not None

    assert await cli(["invoice", "discard", str(invoice.id), "--db", plain_url(db_url)]) == 0
    assert await cli(["invoice", "discard", "999999", "--db", plain_url(db_url)]) == 2

    async with billing.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Invoice)) == 0


def test_errors_name_objects_by_id() -> None:
    text = """
[[plans]]
id = "depot-basic"
name = "Depot"
currency = "EUR"
[[plans.versions]]
effective_from = 2026-11-01T00:00:00Z
[[plans.versions]]
effective_from = 2026-12-01T00:00:00Z
[[plans.versions.charges]]
metric = "door_opens"
model = "standard"
unit_price = 0.5
"""
    with pytest.raises(InvalidBillingInput) as caught:
        parse_catalog(text)

    message = caught.value.message
    assert message.startswith(
        "catalog file: plan depot-basic, version 2 (from 2026-12-01T00:00:00+00:00), "
        "charge door_opens: unit_price"
    ), message
    assert "plans.0" not in message
