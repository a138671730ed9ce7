"""The accounts pages: search by id or name, one account with its bindings, usage charts that
show the API's numbers (and the same as their tables), the cost so far and its invoices.
Anonymous callers: tests/cloud/console/test_console_access.py."""

import re
from datetime import UTC, datetime
from decimal import Decimal
from html import escape, unescape
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

from fastapi import FastAPI

from cloud.db import Database
from tests.cloud.conftest import READER, http_client
from tests.cloud.console.accounts_seed import ACCOUNT, READINGS, seed_account
from tests.cloud.console.helpers import add_users, logged_in


class UsageSection(HTMLParser):
    """A page's usage sections: per metric, the chart's bar values and titles, the table's
    cells (shown and exact) and the API source the section names."""

    def __init__(self) -> None:
        super().__init__()
        self.metric: str | None = None
        self.bars: dict[str, list[str]] = {}
        self.cells: dict[str, list[str]] = {}
        self.exact: dict[str, list[str]] = {}
        self.sources: dict[str, str] = {}
        self.text_of: str | None = None
        self.values: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        metric = found.get("data-metric")
        if tag == "section" and metric:
            self.metric = metric
            self.sources[metric] = found["data-source"] or ""
            for store in (self.bars, self.cells, self.exact, self.values):
                store[metric] = []
        if self.metric is None:
            return
        if tag == "g" and found.get("class") == "bar":
            self.bars[self.metric].append(found["data-value"] or "")
        if tag == "text" and found.get("class") == "value":
            self.text_of = "value"
        if tag == "td" and "value" in (found.get("class") or "").split():
            self.exact[self.metric].append(found["data-exact"] or "")
            self.text_of = "cell"

    def handle_data(self, data: str) -> None:
        if self.metric is None or self.text_of is None:
            return
        target = self.values if self.text_of == "value" else self.cells
        target[self.metric].append(data.strip())
        self.text_of = None


def usage_of(html: str) -> UsageSection:
    """The parsed usage sections of an account page."""
    parser = UsageSection()
    parser.feed(html)
    return parser


async def test_the_account_page_charts_the_apis_usage_and_its_table(
    app: FastAPI, db: Database
) -> None:
    await add_users(db)
    await seed_account(db, now=datetime.now(UTC))
    async with http_client(app) as client:
        await logged_in(client, "viewer")
        pages = {
            bucket: (await client.get(f"/console/accounts/{ACCOUNT}?bucket={bucket}")).text
            for bucket in ("hour", "day", "month")
        }
        answers = {}
        for bucket, html in pages.items():
            source = usage_of(html).sources["kwh"]
            answers[bucket] = (await client.get(source, headers=READER)).json()

    for bucket, html in pages.items():
        usage = usage_of(html)
        api = [Decimal(point["value"]) for point in answers[bucket]["buckets"]]
        assert answers[bucket]["granularity"] == bucket and answers[bucket]["time_zone"]
        assert usage.bars["kwh"] == usage.values["kwh"] == usage.cells["kwh"]  # chart = table
        assert [Decimal(v) for v in usage.exact["kwh"]] == api  # table = the API
        assert [Decimal(v) for v in usage.bars["kwh"]] == api  # 3 decimals at most: exact
        assert sum(api) == sum(READINGS)
        assert 'class="axis-unit"' in html and ">kWh</text>" in html
        assert "Europe/Berlin" in html
    assert len(answers["month"]["buckets"]) == 12
    assert 28 <= len(answers["day"]["buckets"]) <= 31
    assert 23 <= len(answers["hour"]["buckets"]) <= 25


async def test_search_then_the_account_with_its_bindings_cost_so_far_and_invoices(
    app: FastAPI, db: Database
) -> None:
    await add_users(db)
    await seed_account(db, now=datetime.now(UTC))
    async with http_client(app) as client:
        await logged_in(client, "viewer")
        everyone = (await client.get("/console/accounts")).text
        by_name = (await client.get("/console/accounts", params={"q": "household"})).text
        by_id = (await client.get("/console/accounts", params={"q": "BOLT"})).text
        wildcard = (await client.get("/console/accounts", params={"q": "%"})).text
        too_long = await client.get("/console/accounts", params={"q": "x" * 65})
        page = (await client.get(f"/console/accounts/{ACCOUNT}")).text
        other = (await client.get("/console/accounts/bolt-works")).text
        missing = await client.get("/console/accounts/nobody")
        bad_bucket = await client.get(f"/console/accounts/{ACCOUNT}?bucket=week")

    assert _account_links(everyone) == [ACCOUNT, "bolt-works"]
    assert _account_links(by_name) == [ACCOUNT]
    assert _account_links(by_id) == ["bolt-works"]
    assert _account_links(wildcard) == []  # % is a character here, not a wildcard
    assert too_long.status_code == 422
    assert too_long.json()["error"]["code"] == "invalid_parameters"
    cost = re.search(r'id="cost-so-far".*?</article>', page, re.S)
    assert cost and "1.35</a>" in cost[0] and "EUR" in cost[0]  # 6.75 kWh x 0.20
    invoice = re.search(r'href="/console/invoices/(\d+)">open invoice', page)
    assert invoice and f'href="/console/invoices/{invoice[1]}">1.35</a>' in page
    spans = re.findall(r'<g class="span" data-row="([^"]+)" data-label="([^"]+)"', page)
    assert sorted(row for row, _ in spans) == ["cam-1", "meter-1", "old-meter"]
    assert [label.endswith("to now") for row, label in sorted(spans)] == [True, True, False]
    assert 'href="/console/devices/meter-1"' in page
    assert "no draft yet" in other and "No plan: no metric is charged." in other
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "account_not_found"
    assert bad_bucket.status_code == 422


def _account_links(html: str) -> list[str]:
    return re.findall(r'<a class="account" href="/console/accounts/([^"]+)">', html)


async def test_a_buckets_number_opens_down_to_the_signed_events_behind_it(
    app: FastAPI, db: Database
) -> None:
    await add_users(db)
    seeded = await seed_account(db, now=datetime.now(UTC))
    async with http_client(app) as client:
        anonymous = await client.get(f"/console/accounts/{ACCOUNT}/usage/events")
        await logged_in(client, "viewer")
        page = (await client.get(f"/console/accounts/{ACCOUNT}?bucket=month")).text
        links = re.findall(r'data-exact="([^"]+)"><a class="bucket-events" href="([^"]+)"', page)
        non_zero = [(Decimal(exact), unescape(href)) for exact, href in links if Decimal(exact)]
        assert len(links) == 12 and len(non_zero) == 1  # this month's readings
        number, href = non_zero[0]
        events = (await client.get(href)).text
        query = parse_qs(urlsplit(href).query)
        start, end = query["start"][0], query["end"][0]
        bad_metric = await client.get(href.replace("metric=kwh", "metric=minutes"))
        reversed_range = await client.get(
            f"/console/accounts/{ACCOUNT}/usage/events",
            params={"metric": "kwh", "start": end, "end": start},
        )
        two_months = await client.get(
            f"/console/accounts/{ACCOUNT}/usage/events",
            params={"metric": "kwh", "start": start, "end": "2999-01-01T00:00:00+00:00"},
        )

    assert f'<a href="{escape(href)}"><g class="bar"' in page  # the bar opens it too
    readings = [event for event in seeded.events if event.name == "reading"]
    rows = re.findall(
        r'<tr class="event" data-gateway="([^"]+)" data-seq="(\d+)" data-quantity="([^"]*)">',
        events,
    )
    assert [(gateway, int(seq)) for gateway, seq, _ in rows] == [
        (event.gateway_id, event.seq) for event in readings
    ]
    assert sum(Decimal(quantity) for _, _, quantity in rows) == number == sum(READINGS)
    assert f'id="events-total" data-exact="{number}"' in events
    assert f'id="bucket-value" data-exact="{number}"' in events
    assert 'data-matches="yes"' in events and "equals the number" in events
    for event in readings:
        assert f"?gateway={event.gateway_id}&amp;before={event.seq + 1}" in events
        assert f">{event.hash[:12]}</code>" in events
    assert "Europe/Berlin" in events
    for refused in (bad_metric, reversed_range, two_months):
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "invalid_parameters"
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/console/login"
