"""The accounts and devices pages in a real browser (Playwright on Debian's Chromium) against
`tollgate-cloud serve` on SQLite, seeded before it starts (tests/cloud/console/accounts_seed.py):
search an account, open it, read its chart's values from the SVG (labels and <title>s) and check
them against the table under it and the API's usage numbers; open a device from the account and
see its twin and sessions. Screenshots: accounts-search, accounts-account, devices-device."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from playwright.async_api import async_playwright, expect

from cloud.auth.service import create_api_key
from cloud.console.users import add_user
from cloud.db import Database
from cloud.schema import migrate
from firmware_sims.processes import CollectorProcess
from tests.cloud.console.accounts_seed import ACCOUNT, GATEWAY, READINGS, seed_account
from tests.cloud.console.helpers import PASSWORDS
from tests.e2e.test_console_browser import chromium, log_in, new_page, save_screenshot
from tests.support.waiting import free_port

__all__ = ["chromium"]  # the fixture, shared with the console's first browser test


@pytest.fixture
async def collector(tmp_path: Path, sqlite_url: str) -> AsyncIterator[CollectorProcess]:
    """A migrated collector holding the seeded account and a viewer, serving, no background
    jobs (nothing changes the numbers while a page is read)."""
    process = CollectorProcess(
        db_url=sqlite_url,
        port=free_port(),
        log_path=tmp_path / "collector.log",
        env={"TOLLGATE_BACKGROUND_JOBS": "off"},
    )
    async with Database(sqlite_url) as db:
        await migrate(db.engine)
        await seed_account(db, now=datetime.now(UTC))
        async with db.transaction(write=True) as session:
            await add_user(
                session=session, name="viewer", role="viewer", password=PASSWORDS["viewer"]
            )
            reader = await create_api_key(session=session, name="reader", scope="viewer")
    process.reader_key = reader.secret
    async with process:
        yield process


async def test_an_accounts_chart_shows_its_tables_and_the_apis_numbers(
    collector: CollectorProcess, chromium: Path, tmp_path: Path
) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            requested: list[str] = []
            blocked: set[str] = set()
            page = await new_page(browser, requested, blocked)
            await page.goto(f"{collector.url}/console/login")
            await log_in(page, "viewer", PASSWORDS["viewer"])
            await expect(page).to_have_url(f"{collector.url}/console")
            await page.click("nav >> text=Accounts")
            await page.fill("#q", "acme")
            await page.click("#search")
            await expect(page.locator("a.account")).to_have_count(1)
            await save_screenshot(page, tmp_path, "accounts-search.png")

            await page.click(f"a.account >> text={ACCOUNT}")
            await expect(page.locator("#account-name")).to_have_text("Acme Household")
            section = page.locator("#usage-kwh")
            labels = await section.locator("svg text.value").all_text_contents()
            titles = await section.locator("svg g.bar > title").all_text_contents()
            cells = await section.locator("td.value").all_text_contents()
            exact = [
                await cell.get_attribute("data-exact")
                for cell in await section.locator("td.value").all()
            ]
            source = await section.get_attribute("data-source")
            await save_screenshot(page, tmp_path, "accounts-account.png")

            await page.click('#bindings a[href$="/console/devices/cam-1"]')
            await expect(page.locator("#device-id")).to_have_text("cam-1")
            await expect(page.locator("#twin-gateway")).to_have_text(GATEWAY)
            await expect(page.locator("#twin-account a")).to_have_text(ACCOUNT)
            await expect(page.locator("#sessions td.close-reason")).to_have_text(["deactivated"])
            await expect(page.locator("svg#sessions g.span")).to_have_count(1)
            await save_screenshot(page, tmp_path, "devices-device.png")
            assert not blocked  # nothing refused by the page's CSP
        finally:
            await browser.close()
    assert source
    async with httpx.AsyncClient(base_url=collector.url, headers=collector.reader_headers()) as api:
        answer = (await api.get(source)).json()
    api_values = [Decimal(bucket["value"]) for bucket in answer["buckets"]]

    assert [label.strip() for label in labels] == cells  # the chart's labels are the table's
    assert [title.split(": ")[1].removesuffix(" kWh") for title in titles] == cells
    assert [Decimal(value or "") for value in exact] == api_values  # the table is the API's
    assert [Decimal(label) for label in labels] == api_values
    assert sum(api_values) == sum(READINGS) and answer["time_zone"] == "Europe/Berlin"
