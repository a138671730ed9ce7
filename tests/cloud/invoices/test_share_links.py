"""Share links: one invoice's page and evidence for a customer's browser, nothing else, until
the link expires or is revoked."""

import asyncio
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from cloud.auth.models import ShareLink
from cloud.cli import main
from cloud.db import Database
from tests.cloud.conftest import error_code, http_client
from tests.cloud.invoices.test_evidence import billed_invoice


async def share(client: httpx.AsyncClient, invoice_id: int, headers: dict[str, str]) -> str:
    """A new share link's path."""
    response = await client.post(
        f"/v1/invoices/{invoice_id}/share-links",
        headers=headers,
        json={"expires_in_seconds": 3600},
    )
    assert response.status_code == 201, response.text
    url: str = response.json()["url"]
    assert re.fullmatch(r"/v1/shared/tgs_[A-Za-z0-9_-]{43}", url)
    return url


async def test_a_link_opens_the_page_and_its_evidence_without_a_key(
    app: FastAPI, db: Database
) -> None:
    billed = await billed_invoice(db)
    async with http_client(app) as client:
        url = await share(client, billed.invoice_id, billed.headers)
        page = await client.get(url)
        evidence = await client.get(f"{url}/lines/2/evidence")
        pdf = await client.get(f"{url}/invoice.pdf")
        staff = await client.get(
            f"/v1/invoices/{billed.invoice_id}/lines/2/evidence", headers=billed.headers
        )

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "12.85" in html
    hrefs = re.findall(r'href="([^"]+)"', html)
    # every link stays inside the share link: the lines' evidence and the page's PDF
    assert hrefs and all(href.startswith(f"{url}/") for href in hrefs), hrefs
    assert {href for href in hrefs if not href.startswith(f"{url}/lines/")} == {
        f"{url}/invoice.pdf"
    }
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert "/v1/events" not in html and "/v1/invoices/" not in html
    assert evidence.status_code == 200
    assert evidence.json() == staff.json()


async def test_the_token_opens_nothing_else(app: FastAPI, db: Database) -> None:
    billed = await billed_invoice(db)
    async with http_client(app) as client:
        url = await share(client, billed.invoice_id, billed.headers)
        token = url.rsplit("/", 1)[1]
        as_key = {"Authorization": f"Bearer {token}"}
        answers = [
            await client.get(f"/v1/invoices/{billed.invoice_id}", headers=as_key),
            await client.get("/v1/events", headers=as_key),
            await client.get(f"/v1/invoices/{billed.invoice_id}.html", headers=as_key),
        ]
        other_line = await client.get(f"{url}/lines/99/evidence")

    assert [answer.status_code for answer in answers] == [401, 401, 401]
    assert other_line.status_code == 404


async def test_a_revoked_or_expired_link_is_refused(app: FastAPI, db: Database) -> None:
    billed = await billed_invoice(db)
    async with http_client(app) as client:
        first = await share(client, billed.invoice_id, billed.headers)
        second = await share(client, billed.invoice_id, billed.headers)
        async with db.transaction(write=True) as session:
            await session.execute(
                update(ShareLink)
                .where(ShareLink.id == 2)
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        expired = await client.get(second)
        revoked_count = await client.delete(
            f"/v1/invoices/{billed.invoice_id}/share-links", headers=billed.headers
        )
        revoked = await client.get(first)

    assert expired.status_code == 401 and "expired at" in expired.json()["error"]["message"]
    assert revoked_count.json() == {"revoked": 2}
    assert revoked.status_code == 401 and error_code(revoked) == "unauthorized"
    assert revoked.json()["error"]["detail"]["reason"] == "revoked"


async def test_lifetimes_are_bounded_and_the_invoice_must_exist(app: FastAPI, db: Database) -> None:
    billed = await billed_invoice(db)
    async with http_client(app) as client:
        too_long = await client.post(
            f"/v1/invoices/{billed.invoice_id}/share-links",
            headers=billed.headers,
            json={"expires_in_seconds": 91 * 86400},
        )
        missing = await client.post("/v1/invoices/999/share-links", headers=billed.headers, json={})

    assert too_long.status_code == 422
    assert missing.status_code == 404 and error_code(missing) == "invoice_not_found"


async def test_the_cli_prints_a_link_once(
    app: FastAPI, db: Database, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    billed = await billed_invoice(db)
    capsys.readouterr()

    code = await _in_thread(
        ["share", "create", "--invoice", str(billed.invoice_id), "--db", db_url]
    )
    printed = capsys.readouterr().out
    (path,) = re.findall(r"/v1/shared/tgs_[A-Za-z0-9_-]{43}", printed)
    async with http_client(app) as client:
        page = await client.get(path)

    assert code == 0 and page.status_code == 200
    assert "expires" in printed


async def _in_thread(argv: list[str]) -> int:
    return await asyncio.to_thread(main, argv)
