"""The console's invoice pages in a real browser (Playwright on Debian's Chromium) against
`tollgate-cloud serve` on SQLite, holding the evidence scenario of
tests/cloud/invoices/test_evidence.py (acme, November 2026: base fee, stream_hours, water) with
no invoice yet. A billing user runs November and sees its progress reach done; a second run,
written with its chunk pending, shows "running" until the page's script, polling, sees the
console's rating steps finish it. The user opens the draft, asks to finalize (the confirmation
page) and opens the water line's evidence: VERIFIED. A viewer sees the invoice without a
Finalize button. Then a stored event is changed in the database and the same evidence page
shows NOT VERIFIED with the failed check. Screenshots go to test-artifacts/console/invoices-*.png.
"""

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from cloud.console.invoices_runs import queue_run, rate_and_finish
from cloud.console.users import add_user
from cloud.db import Database
from cloud.schema import migrate
from firmware_sims.processes import CollectorProcess
from shared.events import UsageEvent
from tests.cloud.console.helpers import PASSWORDS
from tests.cloud.invoices.test_evidence import send_usage, set_up_catalog
from tests.e2e.test_console_browser import chromium as chromium  # the fixture
from tests.e2e.test_console_browser import log_in, new_page, save_screenshot
from tests.support.waiting import free_port

NOVEMBER = "2026-11"
GRACE = timedelta(days=36_500)


@pytest.fixture
async def collector(
    tmp_path: Path, sqlite_url: str
) -> AsyncIterator[tuple[CollectorProcess, UsageEvent]]:
    """A collector with the scenario's catalog and usage, a viewer and a billing user (a
    century of grace: the run's draft stays a draft whatever the date); and the event of
    meter-1's 60 l, to be changed."""
    process = CollectorProcess(
        db_url=sqlite_url,
        port=free_port(),
        log_path=tmp_path / "collector.log",
        env={"TOLLGATE_BACKGROUND_JOBS": "off", "TOLLGATE_INVOICE_GRACE": f"{GRACE.days}d"},
    )
    async with Database(sqlite_url) as db:
        await migrate(db.engine)
        await set_up_catalog(db)
        _, batches = await send_usage(db)
        async with db.transaction(write=True) as session:
            for role in ("viewer", "billing"):
                await add_user(session=session, name=role, role=role, password=PASSWORDS[role])
    sixty = next(event for event in batches[0] if event.quantity == 60)
    async with process:
        yield process, sixty


async def test_run_watch_open_evidence_verified_viewer_and_tampered(
    collector: tuple[CollectorProcess, UsageEvent], chromium: Path, tmp_path: Path
) -> None:
    process, sixty = collector
    base = process.url
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            requested: list[str] = []
            blocked: set[str] = set()
            billing = await new_page(browser, requested, blocked)
            await billing.goto(f"{base}/console/login")
            await log_in(billing, "billing", PASSWORDS["billing"])
            await billing.goto(f"{base}/console/invoices")
            await billing.fill("#run-period", NOVEMBER)
            await billing.click("#run-start")
            await expect(billing.locator("#run-state")).to_have_text("finished")
            await expect(billing.locator("#run-done")).to_have_text("1")
            await expect(billing.locator("#run-total")).to_have_text("1")
            await expect(billing.locator('[data-count="drafted"]')).to_have_text("1")
            await save_screenshot(billing, tmp_path, "invoices-run-progress.png")

            await billing.click("#run-drafts")
            await expect(billing.locator("#invoices tbody tr")).to_have_count(1)
            await expect(billing.locator("#invoices .total")).to_have_text("12.85")
            await save_screenshot(billing, tmp_path, "invoices-list.png")
            await billing.click("#invoices tbody tr a >> nth=0")
            await expect(billing.locator("#invoice-status")).to_have_text("draft")
            await expect(billing.locator("#lines .amount")).to_have_text(["10.00", "1.25", "1.60"])
            invoice_url = billing.url
            await save_screenshot(billing, tmp_path, "invoices-detail.png")
            await billing.click("#finalize")
            await expect(billing.locator("#finalize-confirm")).to_contain_text("immutable")
            await expect(billing.locator("#grace-warning")).to_be_visible()
            await save_screenshot(billing, tmp_path, "invoices-finalize-confirm.png")
            await billing.click("#cancel")

            await billing.click("#line-3 a.evidence")
            await expect(billing.locator("#verified")).to_contain_text("VERIFIED")
            await expect(billing.locator("#not-verified")).to_have_count(0)
            evidence_url = billing.url
            await save_screenshot(billing, tmp_path, "invoices-evidence-verified.png")

            # live: a run written with its chunk still pending shows "running", then the page's
            # script polls until the console's rating steps (run here) finish it
            async with Database(process.db_url) as db:
                queued = await queue_run(
                    db=db, period=NOVEMBER, now=datetime.now(UTC), grace=GRACE, seller=None
                )
                await billing.goto(f"{base}/console/invoices/runs/{queued.run_id}")
                await expect(billing.locator("#run-state")).to_have_text("running")
                await expect(billing.locator("#run-done")).to_have_text("0")
                await rate_and_finish(db=db, queued=queued, seller=None)
            await expect(billing.locator("#run-state")).to_have_text("finished")
            await expect(billing.locator('[data-count="updated"]')).to_have_text("1")
            assert any(url.endswith(f"/runs/{queued.run_id}/progress") for url in requested)

            viewer = await new_page(browser, requested, blocked)
            await viewer.goto(f"{base}/console/login")
            await log_in(viewer, "viewer", PASSWORDS["viewer"])
            await viewer.goto(invoice_url)
            await expect(viewer.locator("#lines .amount")).to_have_count(3)
            await expect(viewer.locator("#finalize")).to_have_count(0)

            tamper(process, sixty)
            await viewer.goto(evidence_url)
            await expect(viewer.locator("#not-verified")).to_contain_text("NOT VERIFIED")
            await expect(viewer.locator("#verified")).to_have_count(0)
            await expect(viewer.locator("#checks tr.check-failed").first).to_contain_text(
                "chain recomputes"
            )
            await save_screenshot(viewer, tmp_path, "invoices-evidence-not-verified.png")
            local = (base, "data:")
            assert {url for url in requested if not url.startswith(local)} <= blocked
        finally:
            await browser.close()


def tamper(collector: CollectorProcess, event: UsageEvent) -> None:
    """Change the stored event's quantity in place, as a stray SQL statement would."""
    path = collector.db_url.split("///", 1)[1]
    with sqlite3.connect(path) as connection:
        changed = connection.execute(
            "UPDATE events SET quantity = '6' WHERE gateway_id = ? AND seq = ?",
            (event.gateway_id, event.seq),
        ).rowcount
    assert changed == 1
