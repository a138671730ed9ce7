"""Bindings: a device billed to one account at a time; moves, overlaps, naive times, ending."""

import asyncio
from datetime import UTC, datetime

import httpx
import pytest

from cloud.catalog.bindings import BindingView, bindings_overlapping
from cloud.db import Database
from cloud.gateways.enrollment import add_site
from tests.cloud.catalog.conftest import account_body, post_ok, seed_devices
from tests.cloud.conftest import error_code

NOV_1 = "2026-11-01T00:00:00+01:00"  # 2026-10-31 23:00 UTC
NOV_15 = "2026-11-15T12:00:00+01:00"  # 2026-11-15 11:00 UTC
DEC_1 = "2026-12-01T00:00:00+01:00"  # 2026-11-30 23:00 UTC


@pytest.fixture
async def catalog(api: httpx.AsyncClient) -> httpx.AsyncClient:
    """Accounts smith and jones, devices tv-1 and tv-2."""
    await post_ok(api, "/v1/accounts", account_body("smith"))
    await post_ok(api, "/v1/accounts", account_body("jones", name="The Joneses"))
    await seed_devices(api, "tv-1", "tv-2")
    return api


async def bind(api: httpx.AsyncClient, device: str, **body: object) -> httpx.Response:
    """POST a binding of `device`."""
    return await api.post(f"/v1/devices/{device}/bindings", json=body)


async def stored(api: httpx.AsyncClient, device: str) -> list[tuple[str, str, str | None]]:
    """The device's bindings as (account, valid_from, valid_to)."""
    rows = (await api.get(f"/v1/devices/{device}/bindings")).json()
    return [(row["account_id"], row["valid_from"], row["valid_to"]) for row in rows]


async def test_a_binding_is_stored_in_utc(catalog: httpx.AsyncClient) -> None:
    response = await bind(catalog, "tv-1", account_id="smith", valid_from=NOV_1)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["device_id"] == "tv-1" and body["valid_to"] is None
    assert datetime.fromisoformat(body["valid_from"]) == datetime(2026, 10, 31, 23, tzinfo=UTC)
    assert await stored(catalog, "tv-1") == [("smith", body["valid_from"], None)]
    by_account = (await catalog.get("/v1/accounts/smith/bindings")).json()
    assert [row["id"] for row in by_account] == [body["id"]]


async def test_an_overlapping_binding_is_refused_naming_the_other(
    catalog: httpx.AsyncClient,
) -> None:
    first = (await bind(catalog, "tv-1", account_id="smith", valid_from=NOV_1)).json()

    response = await bind(catalog, "tv-1", account_id="jones", valid_from=NOV_15)

    assert response.status_code == 409 and error_code(response) == "binding_overlap"
    error = response.json()["error"]
    assert f"binding {first['id']}" in error["message"] and "'smith'" in error["message"]
    assert "move=true" in error["message"]
    assert [item["id"] for item in error["detail"]["overlapping"]] == [first["id"]]
    assert await stored(catalog, "tv-1") == [("smith", first["valid_from"], None)]


async def test_a_binding_starting_inside_a_closed_one_is_refused(
    catalog: httpx.AsyncClient,
) -> None:
    await bind(catalog, "tv-1", account_id="smith", valid_from=NOV_1, valid_to=DEC_1)

    inside = await bind(catalog, "tv-1", account_id="jones", valid_from=NOV_15)
    covering = await bind(
        catalog, "tv-1", account_id="jones", valid_from="2026-10-01T00:00:00+02:00"
    )
    adjacent = await bind(catalog, "tv-1", account_id="jones", valid_from=DEC_1)
    before = await bind(
        catalog,
        "tv-1",
        account_id="jones",
        valid_from="2026-10-01T00:00:00+02:00",
        valid_to=NOV_1,
    )

    assert inside.status_code == 409 and covering.status_code == 409
    assert adjacent.status_code == 201, adjacent.text  # [from, to): touching is not overlapping
    assert before.status_code == 201, before.text
    assert [row[0] for row in await stored(catalog, "tv-1")] == ["jones", "smith", "jones"]


async def test_move_ends_the_open_binding_where_the_new_one_starts(
    catalog: httpx.AsyncClient,
) -> None:
    first = (await bind(catalog, "tv-1", account_id="smith", valid_from=NOV_1)).json()

    moved = await bind(catalog, "tv-1", account_id="jones", valid_from=NOV_15, move=True)

    assert moved.status_code == 201, moved.text
    new_from = moved.json()["valid_from"]
    assert await stored(catalog, "tv-1") == [
        ("smith", first["valid_from"], new_from),
        ("jones", new_from, None),
    ]


@pytest.mark.parametrize(
    "setup",
    [
        [{"account_id": "smith", "valid_from": NOV_15}],  # the open one starts at the same time
        [{"account_id": "smith", "valid_from": NOV_1, "valid_to": DEC_1}],  # not open-ended
        [
            {"account_id": "smith", "valid_from": NOV_1, "valid_to": "2026-11-20T00:00:00Z"},
            {"account_id": "smith", "valid_from": "2026-11-20T00:00:00Z"},
        ],  # two would have to change
        [{"account_id": "smith", "valid_from": "2026-11-20T00:00:00Z"}],  # starts after
    ],
    ids=["same-start", "closed", "two-overlaps", "later-open"],
)
async def test_move_only_ends_one_earlier_open_binding(
    catalog: httpx.AsyncClient, setup: list[dict[str, object]]
) -> None:
    for body in setup:
        assert (await bind(catalog, "tv-1", **body)).status_code == 201
    before = await stored(catalog, "tv-1")

    response = await bind(catalog, "tv-1", account_id="jones", valid_from=NOV_15, move=True)

    assert response.status_code == 409 and error_code(response) == "binding_overlap"
    assert await stored(catalog, "tv-1") == before


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        (
            {"account_id": "smith", "valid_from": "2026-11-01T00:00:00"},
            422,
            "invalid_billing_input",
            "valid_from must carry a UTC offset",
        ),
        (
            {"account_id": "smith", "valid_from": NOV_1, "valid_to": "2026-12-01T00:00:00"},
            422,
            "invalid_billing_input",
            "valid_to must carry a UTC offset",
        ),
        (
            {"account_id": "smith", "valid_from": NOV_15, "valid_to": NOV_1},
            422,
            "invalid_billing_input",
            "must be after valid_from",
        ),
        (
            {"account_id": "smith", "valid_from": NOV_1, "valid_to": NOV_1},
            422,
            "invalid_billing_input",
            "must be after valid_from",
        ),
        ({"account_id": "nobody", "valid_from": NOV_1}, 404, "account_not_found", "nobody"),
        (
            {"account_id": "smith", "valid_from": "yesterday"},
            422,
            "invalid_parameters",
            "valid_from",
        ),
    ],
    ids=["naive-from", "naive-to", "reversed", "empty", "unknown-account", "not-a-time"],
)
async def test_a_bad_binding_is_refused(
    catalog: httpx.AsyncClient, body: dict[str, object], status: int, code: str, message: str
) -> None:
    response = await bind(catalog, "tv-1", **body)

    assert response.status_code == status, response.text
    assert error_code(response) == code
    assert message in response.json()["error"]["message"]
    assert await stored(catalog, "tv-1") == []


async def test_binding_an_unknown_device_is_404(catalog: httpx.AsyncClient) -> None:
    response = await bind(catalog, "tv-9", account_id="smith", valid_from=NOV_1)
    listing = await catalog.get("/v1/devices/tv-9/bindings")

    assert response.status_code == 404 and error_code(response) == "device_not_found"
    assert listing.status_code == 404 and error_code(listing) == "device_not_found"


async def test_a_binding_is_ended_but_may_not_come_to_overlap(
    catalog: httpx.AsyncClient,
) -> None:
    first = (await bind(catalog, "tv-1", account_id="smith", valid_from=NOV_1)).json()

    ended = await catalog.patch(f"/v1/bindings/{first['id']}", json={"valid_to": NOV_15})
    second = await bind(catalog, "tv-1", account_id="jones", valid_from=DEC_1)
    extended = await catalog.patch(f"/v1/bindings/{first['id']}", json={"valid_to": None})
    naive = await catalog.patch(
        f"/v1/bindings/{first['id']}", json={"valid_to": "2026-11-20T00:00:00"}
    )
    reversed_ = await catalog.patch(
        f"/v1/bindings/{first['id']}", json={"valid_to": "2026-10-01T00:00:00Z"}
    )
    missing = await catalog.patch("/v1/bindings/999999", json={"valid_to": NOV_15})

    assert ended.status_code == 200 and ended.json()["valid_to"] is not None
    assert second.status_code == 201
    assert extended.status_code == 409 and error_code(extended) == "binding_overlap"
    assert naive.status_code == 422 and error_code(naive) == "invalid_billing_input"
    assert reversed_.status_code == 422
    assert missing.status_code == 404 and error_code(missing) == "binding_not_found"
    assert await stored(catalog, "tv-1") == [
        ("smith", first["valid_from"], ended.json()["valid_to"]),
        ("jones", second.json()["valid_from"], None),
    ]


async def test_bindings_overlapping_lists_what_covers_an_interval(
    catalog: httpx.AsyncClient, db: Database
) -> None:
    await bind(catalog, "tv-1", account_id="smith", valid_from=NOV_1)
    await bind(catalog, "tv-1", account_id="jones", valid_from=NOV_15, move=True)
    await bind(catalog, "tv-2", account_id="smith", valid_from=DEC_1)
    november = datetime(2026, 10, 31, 23, tzinfo=UTC), datetime(2026, 11, 30, 23, tzinfo=UTC)

    async with db.transaction() as session:
        everyone = await bindings_overlapping(session=session, start=november[0], end=november[1])
        smith = await bindings_overlapping(
            session=session, start=november[0], end=november[1], account_id="smith"
        )
        december = await bindings_overlapping(
            session=session, start=november[1], end=datetime(2026, 12, 31, 23, tzinfo=UTC)
        )

    mid = datetime(2026, 11, 15, 11, tzinfo=UTC)
    assert everyone == [
        BindingView("tv-1", "jones", mid, None),
        BindingView("tv-1", "smith", november[0], mid),
    ]
    assert smith == [BindingView("tv-1", "smith", november[0], mid)]
    # tv-2 starts exactly at the end of November: [start, end) does not reach it.
    assert [(b.device_id, b.account_id) for b in december] == [("tv-1", "jones"), ("tv-2", "smith")]


async def test_concurrent_bindings_of_one_device_cannot_both_win(
    catalog: httpx.AsyncClient,
) -> None:
    # Each request checks for overlaps then inserts; the device row lock (PostgreSQL) and the
    # write lock (SQLite) make the second see the first's binding.
    for attempt in range(3):
        device = f"race-{attempt}"
        await post_ok(catalog, "/v1/devices", {"id": device, "name": device, "profile_id": "tv"})
        answers = await asyncio.gather(
            bind(catalog, device, account_id="smith", valid_from=NOV_1),
            bind(catalog, device, account_id="jones", valid_from=NOV_15),
        )

        assert sorted(answer.status_code for answer in answers) == [201, 409]
        assert len(await stored(catalog, device)) == 1


async def test_a_device_changes_site(catalog: httpx.AsyncClient, db: Database) -> None:
    async with db.transaction(write=True) as session:
        await add_site(session=session, site_id="block-a", name="Block A")

    moved = await catalog.patch("/v1/devices/tv-1", json={"site_id": "block-a"})
    renamed = await catalog.patch("/v1/devices/tv-1", json={"name": "Bedroom TV"})
    unknown = await catalog.patch("/v1/devices/tv-1", json={"site_id": "block-z"})
    cleared = await catalog.patch("/v1/devices/tv-1", json={"site_id": None})

    assert moved.json()["site_id"] == "block-a"
    assert renamed.json()["site_id"] == "block-a"  # absent: left alone
    assert unknown.status_code == 404 and error_code(unknown) == "site_not_found"
    assert cleared.json()["site_id"] is None and cleared.json()["name"] == "Bedroom TV"
