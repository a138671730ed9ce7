"""The console's invoice pages over ASGI, on both backends: the list and its filters, an invoice's
lines as the API and the printable page state them, finalize (viewer refused, billing after a
confirmation), a line's evidence verified by verify-invoice's checks and NOT verified after an
event was changed in the database, and a run with its progress and failures.

The invoice is the scenario of tests/cloud/invoices/test_evidence.py (acme, November 2026, total
12.85 EUR: base fee, stream_hours, water), drafted at the real `now` with a century of grace so
that it stays in its grace period whatever the date.
"""

import html
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from cloud.db import Database
from cloud.invoices.finalization import finalize_invoice
from cloud.invoices.service import run_invoices
from cloud.invoices.verify import check_invoice
from tests.cloud.conftest import READER, http_client
from tests.cloud.console.helpers import ORIGIN, add_users, logged_in
from tests.cloud.invoices.test_evidence import (
    Billed,
    fetch_documents,
    line_of,
    send_usage,
    set_up_catalog,
)
from tests.cloud.invoices.test_runs import Billing, three_accounts_the_middle_one_overflowing
from tests.support.waiting import eventually

LONG_GRACE = timedelta(days=36_500)
NOVEMBER = "2026-11"


async def drafted(db: Database) -> Billed:
    """The scenario's November draft, rated now with a century of grace; the console's users."""
    secret = await set_up_catalog(db)
    feed, batches = await send_usage(db)
    report = await run_invoices(
        db=db, period=NOVEMBER, now=datetime.now(UTC), grace=LONG_GRACE, account_id="acme"
    )
    (result,) = report.accounts
    assert result.outcome == "drafted" and result.invoice_id is not None, report
    await add_users(db)
    return Billed(invoice_id=result.invoice_id, api_key=secret, feed=feed, batches=batches)


def rows(page: str, table: str) -> list[str]:
    """The body rows of the table with id `table`."""
    found = re.search(rf'<table class="list" id="{table}">(.*?)</table>', page, re.S)
    assert found, page
    body = re.search(r"<tbody>(.*?)</tbody>", found[1], re.S)
    assert body
    return re.findall(r"<tr[^>]*>(.*?)</tr>", body[1], re.S)


def cell(row: str, css: str) -> str:
    """The text of the row's cell of class `css`."""
    found = re.search(rf'<td class="[^"]*\b{css}\b[^"]*">(.*?)</td>', row, re.S)
    assert found, row
    return html.unescape(re.sub(r"<[^>]+>", "", found[1])).strip()


def sentences(page: str) -> list[str]:
    """The explanation sentences of a page's lines, in order."""
    return [html.unescape(s) for s in re.findall(r'<span class="sentence">(.*?)</span>', page)]


async def test_a_viewer_lists_reads_and_cannot_finalize(app: FastAPI, db: Database) -> None:
    billed = await drafted(db)
    october = await run_invoices(
        db=db, period="2026-10", now=datetime.now(UTC), grace=LONG_GRACE, account_id="acme"
    )
    (result,) = october.accounts
    assert result.invoice_id is not None
    await finalize_invoice(db=db, invoice_id=result.invoice_id, now=datetime.now(UTC), force=True)
    async with http_client(app) as client:
        csrf = await logged_in(client, "viewer")
        await the_list_filters_as_the_api_does(client, finalized_id=result.invoice_id)
        await the_page_shows_the_api_lines_with_the_documents_sentences(client, billed)
        await a_viewer_has_no_finalize_form_and_its_posts_are_refused(client, billed, csrf)


async def the_list_filters_as_the_api_does(client: httpx.AsyncClient, *, finalized_id: int) -> None:
    for query in ("", "period=2026-11", "status=finalized", "period=2026-10&status=draft"):
        page = await client.get(f"/console/invoices?{query}")
        api = await client.get(f"/v1/invoices?{query}", headers=READER)
        assert page.status_code == 200, page.text
        shown = [
            (int(i), a, p, t, c)
            for i, a, p, t, c in re.findall(
                r'<tr data-invoice="(\d+)">.*?class="account">(.*?)<.*?class="period">(.*?)<'
                r'.*?class="num total"><a[^>]*>(.*?)</a>.*?class="currency">(.*?)<',
                page.text,
                re.S,
            )
        ]
        expected = [
            (i["id"], i["account_id"], i["period"], i["total"], i["currency"]) for i in api.json()
        ]
        assert shown == expected, query
        assert len(shown) == {"": 2, "period=2026-11": 1, "status=finalized": 1}.get(query, 0)
    finalized = await client.get("/console/invoices?status=finalized")
    assert "INV-000001" in finalized.text and f"#{finalized_id}" in finalized.text
    assert "12.85" not in finalized.text  # the November draft is not listed
    for bad in ("period=2026-13", "status=paid", "period=" + "9" * 300):
        refused = await client.get(f"/console/invoices?{bad}")
        assert refused.status_code == 422, bad
        assert refused.json()["error"]["code"] == "invalid_parameters"


async def the_page_shows_the_api_lines_with_the_documents_sentences(
    client: httpx.AsyncClient, billed: Billed
) -> None:
    page = await client.get(f"/console/invoices/{billed.invoice_id}")
    api = (await client.get(f"/v1/invoices/{billed.invoice_id}", headers=READER)).json()
    document = await client.get(f"/v1/invoices/{billed.invoice_id}.html", headers=READER)

    assert page.status_code == 200
    lines = rows(page.text, "lines")
    assert [cell(row, "amount") for row in lines] == [line["amount"] for line in api["lines"]]
    assert [cell(row, "amount") for row in lines] == ["10.00", "1.25", "1.60"]
    # the explanation is the printable document's own sentence for each line
    assert sentences(page.text) == sentences(document.text)
    assert "the first 1 h included" in sentences(page.text)[1]
    assert "priced by tier" in sentences(page.text)[2]
    for name, value in (("net", "net_total"), ("tax", "tax_total"), ("gross", "gross_total")):
        tile = re.search(rf'id="total-{name}">.*?class="number money">(\S+) ', page.text, re.S)
        assert tile and tile[1] == api[value], name
    assert 'id="invoice-status">draft<' in page.text and 'id="invoice-account">acme<' in page.text
    for n in (1, 2, 3):
        assert f'href="/console/invoices/{billed.invoice_id}/lines/{n}/evidence"' in page.text


async def a_viewer_has_no_finalize_form_and_its_posts_are_refused(
    client: httpx.AsyncClient, billed: Billed, csrf: str
) -> None:
    page = await client.get(f"/console/invoices/{billed.invoice_id}")
    listed = await client.get("/console/invoices")
    refused = await client.post(
        f"/console/invoices/{billed.invoice_id}/finalize",
        data={"csrf_token": csrf, "confirm": "yes", "force": "yes"},
        headers=ORIGIN,
    )
    run = await client.post(
        "/console/invoices/runs", data={"csrf_token": csrf, "period": NOVEMBER}, headers=ORIGIN
    )
    still = (await client.get(f"/v1/invoices/{billed.invoice_id}", headers=READER)).json()

    assert 'id="finalize-form"' not in page.text and "/finalize" not in page.text
    assert 'id="run-form"' not in listed.text
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert run.status_code == 403
    assert still["status"] == "draft" and still["number"] is None


async def test_billing_finalizes_and_the_evidence_verifies_until_an_event_is_changed(
    app: FastAPI, db: Database
) -> None:
    billed = await drafted(db)
    async with http_client(app) as client:
        invoice, _ = await fetch_documents(client, billed)
        csrf = await logged_in(client, "billing")
        await billing_finalizes_after_the_confirmation(client, billed, csrf)
        await an_honest_line_is_verified_by_the_checks_of_verify_invoice(client, billed)
        await change_an_event(db, billed)
        await the_changed_line_shows_not_verified(client, billed, invoice)


async def billing_finalizes_after_the_confirmation(
    client: httpx.AsyncClient, billed: Billed, csrf: str
) -> None:
    url = f"/console/invoices/{billed.invoice_id}/finalize"
    page = await client.get(f"/console/invoices/{billed.invoice_id}")
    asked = await client.post(url, data={"csrf_token": csrf}, headers=ORIGIN)
    unchanged = (await client.get(f"/v1/invoices/{billed.invoice_id}", headers=READER)).json()
    no_force = await client.post(url, data={"csrf_token": csrf, "confirm": "yes"}, headers=ORIGIN)
    done = await client.post(
        url, data={"csrf_token": csrf, "confirm": "yes", "force": "yes"}, headers=ORIGIN
    )
    shown = await client.get(done.headers["location"])
    again = await client.post(url, data={"csrf_token": csrf, "confirm": "yes"}, headers=ORIGIN)
    api = (await client.get(f"/v1/invoices/{billed.invoice_id}", headers=READER)).json()

    assert 'id="finalize-form"' in page.text
    assert asked.status_code == 200 and 'id="finalize-confirm"' in asked.text
    assert "immutable" in asked.text and 'id="grace-warning"' in asked.text
    assert unchanged["status"] == "draft"  # the first POST only asks
    assert no_force.status_code == 409 and "grace period" in no_force.text
    assert done.status_code == 303
    assert done.headers["location"] == f"/console/invoices/{billed.invoice_id}?finalized=1"
    assert (api["status"], api["number"]) == ("finalized", "INV-000001")
    assert 'id="invoice-number">INV-000001<' in shown.text
    assert 'id="invoice-status">finalized<' in shown.text and 'id="finalize-form"' not in shown.text
    assert again.status_code == 409
    assert "is finalized and cannot change" in html.unescape(again.text)


async def an_honest_line_is_verified_by_the_checks_of_verify_invoice(
    client: httpx.AsyncClient, billed: Billed
) -> None:
    invoice, evidence = await fetch_documents(client, billed)  # finalized now
    n = line_of(invoice, "usage", "water")["n"]
    expected = [check.what for check in check_invoice(invoice, evidence) if check.line in (None, n)]
    page = await client.get(f"/console/invoices/{billed.invoice_id}/lines/{n}/evidence")

    assert page.status_code == 200
    assert 'id="verified"' in page.text and "NOT VERIFIED" not in page.text
    checks = rows(page.text, "checks")
    assert [cell(row, "what") for row in checks] == expected
    assert all(cell(row, "result") == "✓ ok" for row in checks)
    assert [cell(row, "quantity") for row in rows(page.text, "events")] == ["60 l", "70 l"]
    assert len(rows(page.text, "batches")) == 2
    chain_links = re.findall(r'class="chain-link" href="([^"]+)"', page.text)
    assert len(chain_links) == 2  # each billed event opens its place in the device's chain
    chain = await client.get(chain_links[0].replace("&amp;", "&"))
    assert chain.status_code == 200 and "Events" in chain.text
    missing = await client.get(f"/console/invoices/{billed.invoice_id}/lines/9/evidence")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "invoice_line_not_found"


async def change_an_event(db: Database, billed: Billed) -> None:
    """meter-1's stored 60 l become 6 l, in place (as a stray SQL statement would do)."""
    (sixty,) = [event for event in billed.batches[0] if event.quantity == Decimal(60)]
    async with db.transaction(write=True) as session:
        await session.execute(
            text("UPDATE events SET quantity = :six WHERE gateway_id = :gateway AND seq = :seq"),
            {
                "six": "6" if db.dialect == "sqlite" else Decimal(6),
                "gateway": sixty.gateway_id,
                "seq": sixty.seq,
            },
        )


async def the_changed_line_shows_not_verified(
    client: httpx.AsyncClient, billed: Billed, invoice: dict[str, Any]
) -> None:
    water = line_of(invoice, "usage", "water")["n"]
    base_fee = line_of(invoice, "base_fee")["n"]
    page = await client.get(f"/console/invoices/{billed.invoice_id}/lines/{water}/evidence")
    other = await client.get(f"/console/invoices/{billed.invoice_id}/lines/{base_fee}/evidence")

    assert page.status_code == 200
    assert 'id="not-verified"' in page.text and 'id="verified"' not in page.text
    failed = [row for row in rows(page.text, "checks") if "✗ FAILED" in row]
    assert [cell(row, "what").split(": ")[-1] for row in failed] == [
        "chain recomputes",
        "all 2 billed events are signed batch events, unchanged",
        "quantity and amount recompute from the evidence",
    ]
    assert "amount 0.76 (stored 1.60)" in cell(failed[2], "detail")
    assert 'id="other-lines"' in other.text and f"line {water}</a> (3 failed)" in other.text


async def test_a_run_shows_its_progress_then_its_counts_failures_and_drafts(
    app: FastAPI, db: Database
) -> None:
    billing = await Billing(db).setup()
    await three_accounts_the_middle_one_overflowing(billing)  # acct-b cannot be rated
    await add_users(db)
    async with http_client(app) as client:
        csrf = await logged_in(client, "billing")
        bad = await client.post(
            "/console/invoices/runs", data={"csrf_token": csrf, "period": "2026-13"}, headers=ORIGIN
        )
        started = await client.post(
            "/console/invoices/runs", data={"csrf_token": csrf, "period": "2026-10"}, headers=ORIGIN
        )
        assert started.status_code == 303, started.text
        page_url = started.headers["location"]
        run_id = int(page_url.rsplit("/", 1)[1])

        async def finished() -> bool:
            return bool((await progress_of())["state"] == "finished")

        async def progress_of() -> dict[str, Any]:
            answer: dict[str, Any] = (await client.get(f"{page_url}/progress")).json()
            return answer

        await eventually(finished, what="the run to finish")
        progress = await progress_of()
        page = await client.get(page_url)
        api = (await client.get(f"/v1/invoice-runs/{run_id}", headers=READER)).json()
        drafts = await client.get("/console/invoices?period=2026-10&status=draft")

    assert bad.status_code == 422 and 'id="run-error"' in bad.text
    assert (
        (progress["accounts_done"], progress["accounts"])
        == (3, 3)
        == (
            api["accounts_done"],
            api["accounts"],
        )
    )
    assert progress["failures"] == ["acct-b"]
    assert 'id="run-done">3<' in page.text and 'id="run-total">3<' in page.text
    assert 'data-count="drafted">2<' in page.text and 'data-count="failed">1<' in page.text
    (failure,) = rows(page.text, "run-failures")
    assert "acct-b" in failure and "rating_out_of_bounds" in failure
    assert 'href="/console/invoices?period=2026-10&amp;status=draft"' in page.text
    assert [a for a in re.findall(r'class="account">(.*?)<', drafts.text)] == ["acct-a", "acct-c"]
    assert '<script src="/console/invoices/assets/run-progress.js">' in page.text
