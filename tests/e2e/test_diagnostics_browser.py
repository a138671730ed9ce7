"""The diagnostics page in a real browser: Playwright driving Debian's Chromium (no browser
download) against the real agent and a simulated Modbus panel. A technician logs in, sees the
panel's live value, presses "poll now" and sees the fresh reading; anonymous access is refused.
With the collector down (a closed port) the cloud-link banner appears with the link's error, the
header counts the alarms, and a device that answers but counts errors is not a green "ok".
The screenshots are kept as test artifacts."""

import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.conftest import IN_CI
from tests.support.diagnostics import DEVICE_ID, PASSWORD, diagnostics_site
from tests.support.waiting import free_port

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
WAIT_MS = 30_000
# How many lines the last occurrence of a text is laid out on inside an element.
LINES_OF_TEXT = """(element, text) => {
  const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT), nodes = [];
  let all = "";
  while (walker.nextNode()) {
    nodes.push([walker.currentNode, all.length]);
    all += walker.currentNode.data;
  }
  const at = (i) => {
    for (const [node, from] of nodes) if (i < from + node.data.length) return [node, i - from];
  };
  const first = all.lastIndexOf(text), last = at(first + text.length - 1);
  const range = document.createRange();
  range.setStart(...at(first));
  range.setEnd(last[0], last[1] + 1);
  return new Set([...range.getClientRects()].map((rect) => Math.round(rect.top))).size;
}"""


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


async def test_a_down_collector_shows_the_cloud_link_banner(tmp_path: Path, chromium: Path) -> None:
    """The agent's collector URL is a closed port. The device's 95 bad checksums are counted
    on its health as the IT-100 driver counts them (a Modbus panel cannot send a bad checksum)."""
    collector = f"http://127.0.0.1:{free_port()}"
    async with (
        diagnostics_site(tmp_path, cloud_url=collector) as site,
        async_playwright() as playwright,
    ):
        browser = await playwright.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(WAIT_MS)
            await page.goto(f"{site.url}/login")
            await page.fill("#password", PASSWORD)
            await page.click("button[type=submit]")
            await expect(page).to_have_url(f"{site.url}/")
            state = page.locator("#state")
            banner = page.locator("#alarms .banner.alarm[data-code='cloud_link_down']")
            # Rendered (this host's clock may be unsynced: a warning, not this alarm).
            await expect(state).to_have_text(re.compile(r"^running"), timeout=WAIT_MS)
            await expect(banner).to_have_count(0)

            # An event to send: the counter moves and "poll now" commits it; the forwarder
            # then fails against the closed port, again and again.
            await site.panel.set("door_open", 41)
            await page.locator(f"button[data-poll='{DEVICE_ID}']").click()
            await expect(banner).to_contain_text("Cloud link down for", timeout=WAIT_MS)
            await expect(banner).to_contain_text("batch attempts failed in a row")
            error = site.agent.forwarder.health.last_error if site.agent.forwarder else None
            assert error and error.startswith("ConnectError")
            await expect(banner).to_contain_text(error)
            await expect(state).to_have_text(re.compile(r"^running, \d+ alarms?$"))
            await expect(state).to_have_class(re.compile(r"\bfailing\b"))
            url = page.locator("#identity dd", has_text=collector)
            await expect(url).to_have_text(collector)
            # Where the card is too narrow for the URL it wraps, but never inside the port number.
            port = collector.rsplit(":", 1)[1]
            assert await url.evaluate(LINES_OF_TEXT, port) == 1

            badge = page.locator(f"#device-{DEVICE_ID} .badge")
            await expect(badge).to_have_text("ok")
            for _ in range(95):
                site.agent.health[DEVICE_ID].count("bad_checksum")
            await expect(badge).to_have_text("ok, recent errors", timeout=WAIT_MS)
            await expect(badge).to_have_class(re.compile(r"\bwarn\b"))
            device_banner = page.locator("#alarms .banner.warn[data-code='device_errors']")
            await expect(device_banner).to_contain_text(f"Device {DEVICE_ID}: answers")
            await expect(device_banner).to_contain_text("bad_checksum 95")
            await save_screenshot(page, tmp_path, "diagnostics-alarms.png")
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


async def save_screenshot(page: Page, tmp_path: Path, name: str = "diagnostics.png") -> None:
    """Into the test's tmp dir, and into test-artifacts/ in CI or with TOLLGATE_ARTIFACTS
    set."""
    shot = tmp_path / name
    await page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("TOLLGATE_ARTIFACTS") or os.environ.get("CI", "").lower() == "true":
        artifacts = REPO / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        shutil.copyfile(shot, artifacts / name)
