"""The catalog pages: plans with versions and their diff, metrics with the events each matched
in the last 30 days, profiles; a price change previewed with `catalog load --dry-run`'s
machinery (old -> new draft totals, nothing written), then saved as a NEW version.

The catalog is tests/cloud/invoices/test_runs.py's: plan home = base 10.00 and kwh graduated
(0, 10] at 0.20; plan shop v1 -> v2 doubles the kwh unit price. One meter with 3 kWh in
October 2026 per account: 10.00 + 3 x 0.20 = 10.60.
"""

import re
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from cloud.catalog.loader import CatalogFile, PlanDecl
from cloud.catalog.models import PlanVersionRow
from cloud.catalog.plan_terms import PlanTerms
from cloud.catalog.plans import version_terms
from cloud.invoices.corrections import load_catalog_file
from cloud.settings import Settings
from tests.cloud.console.helpers import ORIGIN, add_users, hidden_csrf, logged_in
from tests.cloud.invoices.test_invoice_api import metered_account
from tests.cloud.invoices.test_runs import Billing, billing, reading, utc

__all__ = ["billing"]

CHANGE = {"from_version": "1", "target": "base_fee", "price": "12.00"}
FROM_OCTOBER = "2026-10-01T00:00"


def cells(page: str, table: str) -> list[list[str]]:
    """The text of each body row's cells of the table with id `table`."""
    body = page.split(f'id="{table}"', 1)[1].split("</tbody>", 1)[0].split("<tbody>", 1)[1]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.S)
    return [
        [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        for row in rows
    ]


async def versions(billing: Billing, plan_id: str) -> list[tuple[int, dict[str, object]]]:
    """(number, stored terms) of a plan's versions."""
    async with billing.db.transaction() as session:
        rows = await session.scalars(
            select(PlanVersionRow)
            .where(PlanVersionRow.plan_id == plan_id)
            .order_by(PlanVersionRow.version)
        )
        return [(row.version, dict(row.terms)) for row in rows]


async def two_drafts(billing: Billing) -> None:
    await metered_account(billing, "home-a")
    await metered_account(billing, "home-b")
    await billing.send(reading("m-home-b", utc(2026, 10, 9), "2"))  # home-b: 5 kWh, 11.00
    await billing.run("2026-10")


async def test_the_overview_lists_plans_metrics_with_their_matches_and_profiles(
    app: FastAPI, billing: Billing
) -> None:
    await add_users(billing.db)
    await two_drafts(billing)
    async with billing.db.transaction(write=True) as session:
        from cloud.catalog.metrics import create_metric

        await create_metric(
            session=session,
            metric_id="wh",
            name="Energy in Wh",
            source="events",
            aggregation="sum",
            field="quantity",
            profiles=["meter"],
            names=["reading"],
            unit="Wh",
        )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://collector"
    ) as client:
        await logged_in(client, "viewer")
        page = await client.get("/console/catalog")

    assert page.status_code == 200
    plans = {row[0]: row for row in cells(page.text, "plans")}
    assert set(plans) == {"biz", "home", "shop"}
    assert "v1" in plans["shop"][3] and "v2 2026-10-16 00:00" in plans["shop"][3]
    matched = {row[0]: row[-1] for row in cells(page.text, "metrics")}
    # three readings (received now) of meters; the Wh metric matches none of them (unit kWh)
    assert matched == {"kwh": "3", "stream_hours": "0", "wh": "0"}
    profiles = {row[0]: row for row in cells(page.text, "profiles")}
    assert profiles["camera"][2:4] == ["stream_start", "stream_stop"]
    assert profiles["meter"][2] == "no sessions"


async def test_the_plan_page_diffs_two_versions_and_a_viewer_cannot_change(
    app: FastAPI, billing: Billing
) -> None:
    await add_users(billing.db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://collector"
    ) as client:
        await logged_in(client, "viewer")
        page = await client.get("/console/catalog/plans/shop", params={"diff": "1..2"})
        same = await client.get("/console/catalog/plans/shop", params={"diff": "2..2"})
        bad = await client.get("/console/catalog/plans/shop", params={"diff": "1-2"})
        unknown = await client.get("/console/catalog/plans/shop", params={"diff": "1..9"})
        missing = await client.get("/console/catalog/plans/nope")
        csrf = hidden_csrf(page.text)
        refused = [
            await client.post(
                f"/console/catalog/plans/shop/{step}",
                data={**CHANGE, "effective_from": FROM_OCTOBER, "csrf_token": csrf},
                headers=ORIGIN,
            )
            for step in ("preview", "versions")
        ]

    assert page.status_code == 200
    assert cells(page.text, "diff-fields") == [
        ["effective_from", "2026-01-01T00:00:00Z", "2026-10-16T00:00:00Z"]
    ]
    assert cells(page.text, "diff-charges") == [["kwh", "changed", "unit_price", "0.10", "0.20"]]
    assert 'id="change-form"' not in page.text  # a viewer: no form, and its posts refused
    assert [answer.status_code for answer in refused] == [403, 403]
    assert [number for number, _ in await versions(billing, "shop")] == [1, 2]
    assert "No change." in same.text and "No charge changed." in same.text
    assert bad.status_code == 422 and unknown.status_code == 422
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "plan_not_found"


async def test_the_preview_shows_the_dry_runs_totals_and_writes_nothing(
    app: FastAPI, billing: Billing
) -> None:
    await add_users(billing.db)
    await two_drafts(billing)
    before = await versions(billing, "home")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://collector"
    ) as client:
        csrf = await logged_in(client, "billing")
        plan_page = (await client.get("/console/catalog/plans/home")).text
        preview = await client.post(
            "/console/catalog/plans/home/preview",
            data={**CHANGE, "effective_from": FROM_OCTOBER, "csrf_token": csrf},
            headers=ORIGIN,
        )
    # The oracle: `catalog load --dry-run` of the same new version.
    home = (await versions(billing, "home"))[0][1]
    terms = PlanTerms.model_validate(
        {**home, "base_fee": "12.00", "effective_from": "2026-10-01T00:00:00+00:00"}
    )
    _, dry_run = await load_catalog_file(
        db=billing.db,
        catalog=CatalogFile(
            plans=[PlanDecl(id="home", name="home", currency="EUR", versions=[terms])]
        ),
        now=datetime.now(UTC),
        grace=Settings().invoice_grace,
        dry_run=True,
    )

    assert 'id="change-form"' in plan_page and 'value="2027-01-01T00:00"' in plan_page
    assert preview.status_code == 200, preview.text
    shown = cells(preview.text, "drafts")
    assert shown == [
        [item.account_id, item.period, f"{item.old_total} EUR", f"{item.new_total} EUR", "updated"]
        for item in dry_run
    ]
    assert [row[:4] for row in shown] == [
        ["home-a", "2026-10", "10.60 EUR", "12.60 EUR"],
        ["home-b", "2026-10", "11.00 EUR", "13.00 EUR"],
    ]
    assert ["base_fee", "10.00", "12.00"] in cells(preview.text, "diff-fields")
    assert await versions(billing, "home") == before
    invoice = await billing.invoice("home-a", "2026-10")
    assert invoice is not None and f"{invoice.total:.2f}" == "10.60"


async def test_save_appends_a_new_version_and_bad_changes_are_shown_refused(
    app: FastAPI, billing: Billing
) -> None:
    await add_users(billing.db)
    await two_drafts(billing)
    before = await versions(billing, "home")
    form = {**CHANGE, "target": "charge:stream_hours", "price": "0.75"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://collector"
    ) as client:
        csrf = await logged_in(client, "admin")
        refused = {}
        for name, wrong in {
            "price": {"price": "abc"},
            "negative": {"price": "-1"},
            "target": {"target": "charge:kwh"},  # graduated: no unit_price to set
            "instant": {"effective_from": "tomorrow"},
            "taken": {"effective_from": "2026-01-01T00:00"},  # version 1's
        }.items():
            data = {**CHANGE, "effective_from": FROM_OCTOBER, **wrong, "csrf_token": csrf}
            refused[name] = await client.post(
                "/console/catalog/plans/home/preview", data=data, headers=ORIGIN
            )
        preview = await client.post(
            "/console/catalog/plans/home/preview",
            data={**form, "effective_from": FROM_OCTOBER, "csrf_token": csrf},
            headers=ORIGIN,
        )
        save = re.search(r'<form method="post" action="([^"]+)" id="save-form"', preview.text)
        assert save is not None
        hidden = dict(re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', preview.text))
        saved = await client.post(save[1], data=hidden, headers=ORIGIN)
        shown = await client.get(saved.headers["location"])
        again = await client.post(save[1], data=hidden, headers=ORIGIN)

    for name, answer in refused.items():
        assert answer.status_code == 422, name
        assert 'id="change-error"' in answer.text, name
    assert "already effective from 2026-01-01 00:00 UTC" in refused["taken"].text
    assert saved.status_code == 303
    assert saved.headers["location"] == "/console/catalog/plans/home?diff=1..2"
    after = await versions(billing, "home")
    assert after[0] == before[0]  # version 1 as it was
    assert [number for number, _ in after] == [1, 2]
    assert cells(shown.text, "diff-charges") == [
        ["stream_hours", "changed", "unit_price", "0.50", "0.75"]
    ]
    new = version_terms(await _row(billing, "home", 2))
    assert new.effective_from == datetime(2026, 10, 1, tzinfo=UTC)
    # the same instant again is refused: a change never edits a version in place
    assert again.status_code == 422 and "already effective from" in again.text
    assert await versions(billing, "home") == after


async def _row(billing: Billing, plan_id: str, version: int) -> PlanVersionRow:
    async with billing.db.transaction() as session:
        row = await session.get(PlanVersionRow, (plan_id, version))
    assert row is not None
    return row
