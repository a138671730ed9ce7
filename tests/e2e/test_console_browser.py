"""The billing console in a real browser: Playwright driving Debian's Chromium (no browser
download) against `tollgate-cloud serve` on SQLite; its users are stored before it starts, with
the production argon2 parameters (the CLI that adds them: tests/cloud/console/test_users_cli.py).
A viewer and a billing user log in and see the overview's numbers; a wrong password shows the
error; logout returns to the login page; the session cookie is HttpOnly and SameSite=Strict.
Screenshots of the login and overview pages are kept."""

import os
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.async_api import Browser, Page, Request, async_playwright, expect

from cloud.auth.service import create_api_key
from cloud.console.users import add_user
from cloud.db import Database
from cloud.schema import migrate
from firmware_sims.processes import CollectorProcess
from tests.cloud.conftest import GATEWAY, make_events, register
from tests.cloud.console.helpers import PASSWORDS, seed_overview
from tests.conftest import IN_CI
from tests.support.batches import batch_body
from tests.support.waiting import free_port

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
WAIT_MS = 15_000


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium; a failure under CI=true, a skip elsewhere (`apt-get install chromium`)."""
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is required under CI=true: apt-get install -y chromium")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    return CHROMIUM


@pytest.fixture
async def collector(tmp_path: Path, sqlite_url: str) -> AsyncIterator[CollectorProcess]:
    """A migrated collector holding the overview's data, a viewer and a billing user, serving;
    no background jobs, so no sweep changes the numbers while a page is read."""
    process = CollectorProcess(
        db_url=sqlite_url,
        port=free_port(),
        log_path=tmp_path / "collector.log",
        env={"TOLLGATE_BACKGROUND_JOBS": "off"},
    )
    key = Ed25519PrivateKey.generate()
    async with Database(sqlite_url) as db:
        await migrate(db.engine)
        await seed_overview(db, now=datetime.now(UTC))
        await register(db, GATEWAY, key)
        async with db.transaction(write=True) as session:
            for role in ("viewer", "billing"):
                await add_user(session=session, name=role, role=role, password=PASSWORDS[role])
            reader = await create_api_key(session=session, name="reader", scope="viewer")
    process.reader_key = reader.secret  # what the test reads the numbers' sources with
    async with process:
        async with httpx.AsyncClient(base_url=process.url) as client:
            stored = await client.post(
                "/v1/batches",
                content=batch_body(make_events(1, 3), key),
                headers={"Content-Type": "application/json"},
            )
            assert stored.status_code == 200, stored.text
        yield process


async def test_each_role_logs_in_sees_the_overview_and_logs_out(
    collector: CollectorProcess, chromium: Path, tmp_path: Path
) -> None:
    async with (
        httpx.AsyncClient(base_url=collector.url, headers=collector.reader_headers()) as api,
    ):
        incidents = len((await api.get("/v1/quality/incidents?state=open")).json()["incidents"])
        offline = len((await api.get("/v1/gateways?status=offline")).json())
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            requested: list[str] = []  # nothing from elsewhere: no CDN, no fonts
            blocked: set[str] = set()
            page = await new_page(browser, requested, blocked)
            await page.goto(f"{collector.url}/console")  # anonymous: sent to the login page
            await expect(page).to_have_url(f"{collector.url}/console/login")
            await save_screenshot(page, tmp_path, "login.png")
            await log_in(page, "viewer", "not the viewer's password")
            await expect(page.locator("#login-error")).to_have_text("Wrong name or password.")
            await save_screenshot(page, tmp_path, "login-error.png")

            await log_in(page, "viewer", PASSWORDS["viewer"])
            await expect(page).to_have_url(f"{collector.url}/console")
            await expect(page.locator("#user-name")).to_have_text("viewer")
            await expect(page.locator("#user-role")).to_have_text("viewer")
            await expect(page.locator("#events-today .number")).to_have_text("3")
            await expect(page.locator("#open-incidents .number")).to_have_text(str(incidents))
            await expect(page.locator("#gateways-offline .number")).to_have_text(str(offline))
            await expect(page.locator("#draft-total [data-currency=EUR]")).to_have_text("12.75 EUR")
            await expect(page.locator("#draft-total [data-currency=CHF]")).to_have_text("7.10 CHF")
            await expect(page.locator("#last-run .number")).to_contain_text("finished")
            [cookie] = [c for c in await page.context.cookies() if c["name"] == "tollgate_console"]
            assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
            assert cookie["path"] == "/console"
            await save_screenshot(page, tmp_path, "overview.png")
            await page.click("#logout")
            await expect(page).to_have_url(f"{collector.url}/console/login?ended=1")
            await page.goto(f"{collector.url}/console")
            await expect(page).to_have_url(f"{collector.url}/console/login")

            billing = await new_page(browser, requested, blocked)
            await billing.goto(f"{collector.url}/console/login")
            await log_in(billing, "billing", PASSWORDS["billing"])
            await expect(billing.locator("#user-role")).to_have_text("billing")
            await expect(billing.locator("#draft-total [data-currency=EUR]")).to_have_text(
                "12.75 EUR"
            )
            users_page = await billing.goto(f"{collector.url}/console/users")  # admin only
            assert users_page is not None and users_page.status == 403
            # Swagger UI 5 reads our OpenAPI 3.1. (ReDoc takes over 10 s to lay out this API in
            # a browser here: tests/cloud/console/test_api_docs.py checks its page and its CSP.)
            await billing.goto(f"{collector.url}/docs")
            await expect(billing.locator(".opblock").first).to_be_visible()
            # data: and this page's blob: URLs are made in the page, not fetched
            local = (collector.url, f"blob:{collector.url}/", "data:")
            elsewhere = {url for url in requested if not url.startswith(local)}
            assert requested and elsewhere <= blocked  # none is, unless a CSP refused it
        finally:
            await browser.close()


async def new_page(browser: Browser, requested: list[str], blocked: set[str]) -> Page:
    """A page in a context of its own (its own cookies); every URL it requests is noted, and
    those the browser refused to fetch because of the page's Content-Security-Policy."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    page.on("request", lambda request: requested.append(request.url))

    def failed(request: Request) -> None:
        if request.failure == "csp":  # Chromium's word for net::ERR_BLOCKED_BY_CSP
            blocked.add(request.url)

    page.on("requestfailed", failed)
    page.set_default_timeout(WAIT_MS)
    return page


async def log_in(page: Page, name: str, password: str) -> None:
    """Fill in and send the login form."""
    await page.fill("#name", name)
    await page.fill("#password", password)
    await page.click("button[type=submit]")


async def save_screenshot(page: Page, tmp_path: Path, name: str) -> None:
    """Into the test's tmp dir, and into test-artifacts/console/ in CI or with TOLLGATE_ARTIFACTS
    set."""
    shot = tmp_path / name
    await page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("TOLLGATE_ARTIFACTS") or os.environ.get("CI", "").lower() == "true":
        artifacts = REPO / "test-artifacts" / "console"
        artifacts.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, artifacts / name)
