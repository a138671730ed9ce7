"""Unbilled usage: events no binding covers are listed per device, never dropped; devices unknown
to the catalog and gaps between bindings included."""

from datetime import UTC, datetime

import httpx

from cloud.catalog.unbilled import UnbilledDevice, unbilled_usage
from cloud.db import Database
from tests.cloud.catalog.conftest import account_body, post_ok, seed_devices
from tests.cloud.conftest import error_code
from tests.support.usage import GatewayFeed, usage


def nov(day: int, hour: int = 0) -> datetime:
    """A time in November 2026, UTC."""
    return datetime(2026, 11, day, hour, tzinfo=UTC)


async def seed(api: httpx.AsyncClient, db: Database) -> None:
    """tv-1 bound to smith [Nov 1, Nov 10) and to jones from Nov 20; tv-2 never bound; ghost-7
    not in the catalog. Events:

        tv-1     Nov 5 (smith), Nov 10 00:00 (gap: smith's binding ends there, exclusive),
                 Nov 15 (gap), Nov 20 00:00 (jones: starts there, inclusive), Nov 25 (jones)
        tv-2     Nov 3 power_on, Nov 4 power_off (no binding)
        ghost-7  Nov 12 (unknown device)
    """
    await post_ok(api, "/v1/accounts", account_body("smith"))
    await post_ok(api, "/v1/accounts", account_body("jones"))
    await seed_devices(api, "tv-1", "tv-2")
    bindings = [
        {"account_id": "smith", "valid_from": nov(1).isoformat(), "valid_to": nov(10).isoformat()},
        {"account_id": "jones", "valid_from": nov(20).isoformat()},
    ]
    for body in bindings:
        await post_ok(api, "/v1/devices/tv-1/bindings", body)
    feed = await GatewayFeed("gw-unbilled").register(db)
    await feed.send(
        db,
        [
            usage("tv-2", "power_on", nov(3)),
            usage("tv-2", "power_off", nov(4)),
            usage("tv-1", "power_on", nov(5)),
            usage("tv-1", "power_on", nov(10)),
            usage("ghost-7", "pulse", nov(12)),
            usage("tv-1", "power_off", nov(15)),
            usage("tv-1", "power_on", nov(20)),
            usage("tv-1", "power_off", nov(25)),
        ],
    )


async def test_unbilled_usage_lists_gaps_unbound_and_unknown_devices(
    api: httpx.AsyncClient, db: Database
) -> None:
    await seed(api, db)

    async with db.transaction() as session:
        found = await unbilled_usage(session=session, start=None, end=None)

    assert found == [
        UnbilledDevice("ghost-7", False, 1, nov(12), nov(12), ("pulse",)),
        UnbilledDevice("tv-1", True, 2, nov(10), nov(15), ("power_off", "power_on")),
        UnbilledDevice("tv-2", True, 2, nov(3), nov(4), ("power_off", "power_on")),
    ]


async def test_the_api_lists_unbilled_usage_in_a_window(
    api: httpx.AsyncClient, db: Database
) -> None:
    await seed(api, db)

    everything = (await api.get("/v1/unbilled")).json()
    # [Nov 4, Nov 15): tv-2's Nov 4 event, tv-1's Nov 10 event, ghost-7; not tv-1's Nov 15.
    window = await api.get(
        "/v1/unbilled",
        params={"start": "2026-11-04T01:00:00+01:00", "end": "2026-11-15T00:00:00Z"},
    )

    assert [(d["device_id"], d["event_count"]) for d in everything] == [
        ("ghost-7", 1),
        ("tv-1", 2),
        ("tv-2", 2),
    ]
    assert window.status_code == 200
    assert [(d["device_id"], d["known"], d["event_count"]) for d in window.json()] == [
        ("ghost-7", False, 1),
        ("tv-1", True, 1),
        ("tv-2", True, 1),
    ]
    tv_1 = window.json()[1]
    assert datetime.fromisoformat(tv_1["first_at"]) == nov(10) and tv_1["names"] == ["power_on"]


async def test_binding_the_gap_makes_its_usage_billed(api: httpx.AsyncClient, db: Database) -> None:
    await seed(api, db)

    await post_ok(
        api,
        "/v1/devices/tv-1/bindings",
        {"account_id": "smith", "valid_from": nov(10).isoformat(), "valid_to": nov(20).isoformat()},
    )

    assert [d["device_id"] for d in (await api.get("/v1/unbilled")).json()] == ["ghost-7", "tv-2"]


async def test_bad_windows_are_refused(api: httpx.AsyncClient) -> None:
    naive = await api.get("/v1/unbilled", params={"start": "2026-11-01T00:00:00"})
    backwards = await api.get(
        "/v1/unbilled", params={"start": "2026-11-02T00:00:00Z", "end": "2026-11-01T00:00:00Z"}
    )

    assert naive.status_code == 422 and error_code(naive) == "invalid_billing_input"
    assert backwards.status_code == 422 and error_code(backwards) == "invalid_billing_input"


async def test_nothing_unbilled_is_an_empty_list(api: httpx.AsyncClient) -> None:
    assert (await api.get("/v1/unbilled")).json() == []
