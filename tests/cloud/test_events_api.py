"""GET /v1/events: filters, keyset paging in (gateway_id, seq) order, and clear parameter errors."""

from datetime import timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.db import Database
from shared.canonical import format_time
from tests.cloud.conftest import GATEWAY, READER, error_code, make_events, post, register
from tests.support.batches import T0

SECOND_GATEWAY = "site-007-gw2"  # sorts before GATEWAY


@pytest.fixture
async def stored(client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey) -> None:
    """GATEWAY has seqs 1..12 (panel-1) and SECOND_GATEWAY seqs 1..8 (lock-9)."""
    other_key = Ed25519PrivateKey.generate()
    await register(db, SECOND_GATEWAY, other_key)
    assert (await post(client, make_events(1, 12), gateway_key)).status_code == 200
    second = make_events(1, 8, gateway_id=SECOND_GATEWAY, device_id="lock-9")
    assert (await post(client, second, other_key)).status_code == 200


async def fetch(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    """GET /v1/events with `params`, asserting success."""
    response = await client.get("/v1/events", headers=READER, params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def keys(page: dict[str, Any]) -> list[tuple[str, int]]:
    """The (gateway_id, seq) of each event on a page."""
    return [(event["gateway_id"], event["seq"]) for event in page["events"]]


def at(seconds: int) -> str:
    """RFC 3339 time `seconds` after the test chain's T0."""
    return format_time(T0 + timedelta(seconds=seconds))


@pytest.mark.usefixtures("stored")
async def test_events_are_ordered_by_gateway_then_seq(client: httpx.AsyncClient) -> None:
    page = await fetch(client)

    assert keys(page) == (
        [(SECOND_GATEWAY, n) for n in range(1, 9)] + [(GATEWAY, n) for n in range(1, 13)]
    )
    assert page["next_cursor"] is None


@pytest.mark.usefixtures("stored")
async def test_filters_by_gateway_and_device(client: httpx.AsyncClient) -> None:
    by_gateway = await fetch(client, gateway_id=SECOND_GATEWAY)
    by_device = await fetch(client, device_id="panel-1")
    nobody = await fetch(client, gateway_id=SECOND_GATEWAY, device_id="panel-1")

    assert keys(by_gateway) == [(SECOND_GATEWAY, n) for n in range(1, 9)]
    assert keys(by_device) == [(GATEWAY, n) for n in range(1, 13)]
    assert nobody == {"events": [], "next_cursor": None}


@pytest.mark.usefixtures("stored")
async def test_since_is_inclusive_and_until_exclusive(client: httpx.AsyncClient) -> None:
    page = await fetch(client, gateway_id=GATEWAY, since=at(3), until=at(6))

    assert keys(page) == [(GATEWAY, 3), (GATEWAY, 4), (GATEWAY, 5)]
    assert [event["occurred_at"] for event in page["events"]] == [at(3), at(4), at(5)]


@pytest.mark.usefixtures("stored")
async def test_time_filters_accept_offsets(client: httpx.AsyncClient) -> None:
    page = await fetch(client, gateway_id=GATEWAY, since="2026-11-01T10:00:10+02:00")

    assert keys(page) == [(GATEWAY, 10), (GATEWAY, 11), (GATEWAY, 12)]


@pytest.mark.usefixtures("stored")
async def test_cursor_pages_through_everything_once(client: httpx.AsyncClient) -> None:
    seen: list[tuple[str, int]] = []
    pages = 0
    cursor = None
    while True:
        params = {"limit": 7} if cursor is None else {"limit": 7, "cursor": cursor}
        page = await fetch(client, **params)
        seen += keys(page)
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert seen == keys(await fetch(client, limit=1000))


@pytest.mark.usefixtures("stored")
async def test_cursor_combines_with_filters(client: httpx.AsyncClient) -> None:
    first = await fetch(client, device_id="lock-9", limit=5)
    second = await fetch(client, device_id="lock-9", limit=5, cursor=first["next_cursor"])

    assert keys(first) + keys(second) == [(SECOND_GATEWAY, n) for n in range(1, 9)]
    assert second["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "location"),
    [
        ({"limit": 0}, ["query", "limit"]),
        ({"limit": 1001}, ["query", "limit"]),
        ({"limit": "many"}, ["query", "limit"]),
        ({"since": "yesterday"}, ["query", "since"]),
        ({"until": "2026-11-01T08:00:00"}, ["query", "until"]),
        ({"cursor": "not-a-cursor"}, ["query", "cursor"]),
        ({"cursor": "WyJhIl0="}, ["query", "cursor"]),
    ],
)
async def test_bad_parameters_are_422_with_location(
    client: httpx.AsyncClient, params: dict[str, Any], location: list[str]
) -> None:
    response = await client.get("/v1/events", headers=READER, params=params)

    assert response.status_code == 422
    assert error_code(response) == "invalid_parameters"
    assert location in [error["loc"] for error in response.json()["error"]["detail"]["errors"]]
