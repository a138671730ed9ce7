"""The diagnostics page in a real browser: Playwright driving Debian's Chromium (no browser
download) against the real agent and a simulated Modbus panel. A technician logs in, sees the
panel's live value, presses "poll now" and sees the fresh reading; anonymous access is refused.
The screenshot is kept as a test artifact."""

import os
import shutil
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.conftest import IN_CI
from tests.support.diagnostics import DEVICE_ID, PASSWORD, diagnostics_site

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
WAIT_MS = 30_000


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium; a failure under CI=true, a skip elsewhere (`apt-get install chromium`)."""
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is required under CI=true: apt-get install -y chromium")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    return CHROMIUM


async def test_technician_sees_a_live_value_and_polls_now(tmp_path: Path, chromium: Path) -> None:
    async with (
        diagnostics_site(tmp_path) as site,
        async_playwright() as playwright,
    ):
        browser = await playwright.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(WAIT_MS)
            await refuses_anonymous(page, site.url)
            await page.fill("#password", PASSWORD)
            await page.click("button[type=submit]")
            await expect(page).to_have_url(f"{site.url}/")

            row = page.locator(f"#device-{DEVICE_ID}")
            await expect(row.locator(".live-value")).to_have_text("door_open = 40")
            await expect(page.locator("#live")).to_have_text("live")

            await site.panel.set("door_open", 777)
            await row.locator(f"button[data-poll='{DEVICE_ID}']").click()
            await expect(page.locator(f"#poll-result-{DEVICE_ID}")).to_contain_text(
                "door_open = 777"
            )
            await expect(row.locator(".live-value")).to_have_text("door_open = 777")
            # The counter moved, so the writer committed an event: the live tail shows it.
            await expect(page.locator("#events-body tr").first).to_contain_text("door_open")
            await save_screenshot(page, tmp_path)
        finally:
            await browser.close()


async def refuses_anonymous(page: Page, url: str) -> None:
    """No cookie: the page sends the browser to the login form and the API answers 401."""
    await page.goto(f"{url}/")
    await expect(page).to_have_url(f"{url}/login")
    assert (await page.request.get(f"{url}/api/status")).status == 401
    assert (await page.request.get(f"{url}/api/support-bundle")).status == 401
    await page.fill("#password", "not the password")
    await page.click("button[type=submit]")
    await expect(page.locator("#error")).to_have_text("wrong password")


async def save_screenshot(page: Page, tmp_path: Path) -> None:
    """Into the test's tmp dir, and into test-artifacts/ when TOLLGATE_ARTIFACTS is set."""
    shot = tmp_path / "diagnostics.png"
    await page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("TOLLGATE_ARTIFACTS"):
        artifacts = REPO / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        shutil.copyfile(shot, artifacts / "diagnostics.png")
