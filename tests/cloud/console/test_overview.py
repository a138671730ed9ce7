"""The overview page: each number from its read model, each with its API operation's link."""

import re
from datetime import UTC, datetime
from decimal import Decimal

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from cloud.console.overview import read_overview
from cloud.db import Database
from tests.cloud.conftest import READER, http_client, make_events, post
from tests.cloud.console.helpers import add_users, logged_in, seed_overview


async def test_the_overview_counts_what_the_read_models_hold(
    app: FastAPI, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    now = datetime.now(UTC)
    await seed_overview(db, now=now)
    async with http_client(app) as client:
        assert (await post(client, make_events(1, 3), gateway_key)).status_code == 200
        assert (await post(client, make_events(1, 3), gateway_key)).status_code == 200  # dupes

        listed = await client.get("/v1/quality/incidents?state=open", headers=READER)

    overview = await read_overview(db=db, now=datetime.now(UTC))

    assert overview.events_today == 3 and overview.events_last_hour == 3
    assert overview.events_per_minute == Decimal("0.1")
    # the seeded two, and what the repeated batch filed (a duplicate delivery)
    assert overview.open_incidents == len(listed.json()["incidents"]) >= 3
    assert overview.gateways_offline == 1
    assert overview.draft_totals == {"CHF": Decimal("7.10"), "EUR": Decimal("12.75")}
    assert overview.draft_count == 3
    assert overview.last_run is not None and overview.last_run.state == "finished"


async def test_an_empty_collector_shows_zeros_and_no_run(db: Database) -> None:
    overview = await read_overview(db=db, now=datetime.now(UTC))

    assert (overview.events_today, overview.open_incidents, overview.gateways_offline) == (0, 0, 0)
    assert overview.draft_totals == {} and overview.last_run is None


async def test_the_page_shows_the_numbers_the_user_and_links_that_resolve(
    app: FastAPI, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    now = datetime.now(UTC)
    await add_users(db)
    await seed_overview(db, now=now)
    async with http_client(app) as client:
        await post(client, make_events(1, 3), gateway_key)
        await logged_in(client, "billing")
        page = (await client.get("/console")).text
        listed = await client.get("/v1/quality/incidents?state=open", headers=READER)
        targets = dict(re.findall(r'<a id="([\w-]+-page)" href="([^"]+)"', page))
        console_pages = {
            link: (await client.get(href.replace("&amp;", "&"))).status_code
            for link, href in targets.items()
        }
        incidents_page = (await client.get(targets["open-incidents-page"])).text

    assert re.search(r'id="user-name">billing<', page) and 'id="user-role"' in page
    assert _tile(page, "events-today") == "3"
    assert _tile(page, "open-incidents") == str(len(listed.json()["incidents"]))
    assert _tile(page, "gateways-offline") == "1"
    assert '12.75 <span class="unit">EUR</span>' in page
    assert '7.10 <span class="unit">CHF</span>' in page
    assert 'action="/console/logout"' in page
    schema = app.openapi()
    links = re.findall(r'class="source" href="/docs#/(\w+)/(\w+)"', page)
    assert len(links) == 6  # events twice, incidents, gateways, drafts, the run
    operations = {
        (operation["tags"][0], operation["operationId"])
        for item in schema["paths"].values()
        for operation in item.values()
    }
    assert set(links) <= operations
    assert f"GET /v1/invoices?period={now:%Y-%m}&amp;status=draft" in page
    assert console_pages == {
        "open-incidents-page": 200,
        "drafts-page": 200,
        "last-run-page": 200,
    }, console_pages
    shown = {int(n) for n in re.findall(r'href="/console/quality/(\d+)"', incidents_page)}
    assert shown == {incident["id"] for incident in listed.json()["incidents"]}


async def test_a_viewer_sees_the_overview_too(app: FastAPI, db: Database) -> None:
    await add_users(db)
    async with http_client(app) as client:
        await logged_in(client, "viewer")
        page = await client.get("/console")

    assert page.status_code == 200 and _tile(page.text, "draft-total") == "none"
    assert "Users</a>" not in page.text  # the admin's page is not offered


def _tile(page: str, tile_id: str) -> str:
    found = re.search(
        rf'id="{tile_id}">.*?<p class="number[^"]*">(?:<a [^>]+>)?([^<]+)', page, re.S
    )
    assert found, tile_id
    return found[1].strip()


async def test_the_stylesheet_is_ours_and_public(client: httpx.AsyncClient) -> None:
    answer = await client.get("/console/assets/console.css")

    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/css")
    assert "url(" not in answer.text and "@import" not in answer.text  # nothing from elsewhere
