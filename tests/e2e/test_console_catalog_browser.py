"""The console's data-quality and catalog pages in a real browser (Debian's Chromium against
`tollgate-cloud serve` on SQLite, as tests/e2e/test_console_browser.py): a billing user
acknowledges and resolves an incident, previews a price change (draft totals old -> new) and
saves it as a new version. Screenshots of each page are kept."""

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from cloud.console.users import add_user
from cloud.db import Database
from cloud.schema import migrate
from firmware_sims.processes import CollectorProcess
from tests.cloud.console.helpers import PASSWORDS
from tests.cloud.console.test_quality_pages import seed_incidents
from tests.cloud.invoices.test_invoice_api import metered_account
from tests.cloud.invoices.test_runs import Billing
from tests.e2e.test_console_browser import chromium, log_in, new_page, save_screenshot
from tests.support.waiting import free_port

__all__ = ["chromium"]


@pytest.fixture
async def collector(tmp_path: Path, sqlite_url: str) -> AsyncIterator[CollectorProcess]:
    """A collector holding incidents and the invoice tests' catalog with two October drafts
    (10.60 EUR each), and a billing user; no background jobs."""
    process = CollectorProcess(
        db_url=sqlite_url,
        port=free_port(),
        log_path=tmp_path / "collector.log",
        env={"TOLLGATE_BACKGROUND_JOBS": "off"},
    )
    async with Database(sqlite_url) as db:
        await migrate(db.engine)
        process.incidents = await seed_incidents(db)  # type: ignore[attr-defined]
        billing = await Billing(db).setup()
        for account in ("home-a", "home-b"):
            await metered_account(billing, account)
        await billing.run("2026-10")
        async with db.transaction(write=True) as session:
            await add_user(
                session=session, name="billing", role="billing", password=PASSWORDS["billing"]
            )
    async with process:
        yield process


async def test_billing_steps_an_incident_and_saves_a_previewed_price_change(
    collector: CollectorProcess, chromium: Path, tmp_path: Path
) -> None:
    url = collector.url
    incident = collector.incidents["battery"]  # type: ignore[attr-defined]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            page = await new_page(browser, [], set())
            await page.goto(f"{url}/console/login")
            await log_in(page, "billing", PASSWORDS["billing"])
            await expect(page.locator("#user-role")).to_have_text("billing")

            await page.click("nav >> text=Data quality")
            await page.select_option("select[name=state]", "open")
            await page.click("#incident-filters button")
            await expect(page).to_have_url(re.compile(r"[?&]state=open"))
            await expect(page.locator(f"#incidents [data-incident='{incident}']")).to_be_visible()
            await expect(page.locator("#incidents .state-acknowledged")).to_have_count(0)
            await save_screenshot(page, tmp_path, "quality-list.png")
            await page.click(f"#incidents a[href$='/console/quality/{incident}'] >> nth=0")
            await page.fill("#acknowledge-form input[name=note]", "replacing the battery")
            await page.click("#acknowledge")
            await expect(page.locator("#incident-state")).to_have_text("acknowledged")
            await expect(page.locator("#acknowledged")).to_contain_text("replacing the battery")
            await page.fill("#resolve-form input[name=note]", "battery replaced")
            await page.click("#resolve")
            await expect(page.locator("#incident-state")).to_have_text("resolved")
            await expect(page.locator("#resolve-form")).to_have_count(0)
            gap = collector.incidents["gap"]  # type: ignore[attr-defined]
            await page.goto(f"{url}/console/quality/{gap}")
            await expect(page.locator("#evidence")).to_contain_text("batch_ids")
            await save_screenshot(page, tmp_path, "quality-incident.png")

            await page.click("nav >> text=Catalog")
            await expect(page.locator("#metrics [data-metric=kwh] .matched")).to_have_text("2")
            await save_screenshot(page, tmp_path, "catalog-overview.png")
            await page.goto(f"{url}/console/catalog/plans/shop?diff=1..2")
            await expect(page.locator("#diff-charges [data-charge=kwh] .new")).to_have_text("0.20")
            await save_screenshot(page, tmp_path, "catalog-plan-diff.png")

            await page.goto(f"{url}/console/catalog/plans/home")
            await page.select_option("#change-target", "base_fee")
            await page.fill("#change-price", "12.00")
            await page.fill("#change-from", "2026-10-01T00:00")
            await page.click("#preview")
            rows = page.locator("#drafts tbody tr")
            await expect(rows).to_have_count(2)
            for account in ("home-a", "home-b"):
                row = page.locator(f"#drafts [data-account={account}]")
                await expect(row.locator(".old")).to_have_text("10.60 EUR")
                await expect(row.locator(".new")).to_have_text("12.60 EUR")
            await save_screenshot(page, tmp_path, "catalog-preview.png")
            await page.click("#save")
            await expect(page).to_have_url(f"{url}/console/catalog/plans/home?diff=1..2")
            await expect(page.locator("#versions [data-version]")).to_have_count(2)
            await expect(page.locator("#diff-fields [data-field=base_fee] .new")).to_have_text(
                "12.00"
            )
            await save_screenshot(page, tmp_path, "catalog-saved.png")
        finally:
            await browser.close()
