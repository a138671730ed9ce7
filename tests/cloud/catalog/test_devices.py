"""Device profiles and devices over the API; registering or re-profiling a device, and changing a
profile's rule, queue the device's sessions for recomputation."""

import httpx
import pytest
from sqlalchemy import delete, select

from cloud.db import Database
from cloud.gateways.enrollment import add_site
from cloud.session_work import SessionWork
from tests.cloud.catalog.conftest import post_ok
from tests.cloud.conftest import error_code

TV = {"id": "tv", "name": "TV", "start_on": ["power_on"], "end_on": ["power_off"]}


async def queued(db: Database) -> list[str]:
    """Device ids in the session work queue."""
    async with db.transaction() as session:
        return sorted(set(await session.scalars(select(SessionWork.device_id))))


async def clear_queue(db: Database) -> None:
    """Empty the session work queue."""
    async with db.transaction(write=True) as session:
        await session.execute(delete(SessionWork))


async def test_create_get_and_list_profiles(api: httpx.AsyncClient) -> None:
    created = await post_ok(api, "/v1/profiles", {**TV, "timeout_seconds": 14400})
    await post_ok(api, "/v1/profiles", {"id": "meter", "name": "Meter"})

    fetched = (await api.get("/v1/profiles/tv")).json()
    listed = (await api.get("/v1/profiles")).json()

    assert created == fetched
    assert fetched["start_on"] == ["power_on"] and fetched["end_on"] == ["power_off"]
    assert fetched["timeout_seconds"] == 14400
    assert [item["id"] for item in listed] == ["meter", "tv"]
    assert listed[0]["start_on"] == [] and listed[0]["timeout_seconds"] is None


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({**TV, "end_on": ["power_on"]}, "invalid_billing_input", "in both start_on and end_on"),
        ({**TV, "start_on": []}, "invalid_billing_input", "end_on needs start_on"),
        ({**TV, "timeout_seconds": 0}, "invalid_parameters", "timeout_seconds"),
        ({**TV, "start_on": [""]}, "invalid_parameters", "start_on"),
        ({**TV, "id": "TV!"}, "invalid_parameters", "id"),
    ],
    ids=["name-in-both", "end-without-start", "zero-timeout", "empty-name", "bad-id"],
)
async def test_a_bad_profile_is_refused(
    api: httpx.AsyncClient, body: dict[str, object], code: str, message: str
) -> None:
    response = await api.post("/v1/profiles", json=body)

    assert response.status_code == 422 and error_code(response) == code
    assert message in response.json()["error"]["message"]
    assert (await api.get("/v1/profiles")).json() == []


async def test_a_duplicate_profile_is_refused(api: httpx.AsyncClient) -> None:
    await post_ok(api, "/v1/profiles", TV)

    response = await api.post("/v1/profiles", json={**TV, "name": "Other"})

    assert response.status_code == 409 and error_code(response) == "already_exists"
    assert (await api.get("/v1/profiles/tv")).json()["name"] == "TV"


async def test_a_device_is_created_and_queued_for_sessions(
    api: httpx.AsyncClient, db: Database
) -> None:
    async with db.transaction(write=True) as session:
        await add_site(session=session, site_id="site-1", name="Flat 1")
    await post_ok(api, "/v1/profiles", TV)

    created = await post_ok(
        api,
        "/v1/devices",
        {
            "id": "site-1/tv:living",
            "name": "Living room TV",
            "profile_id": "tv",
            "site_id": "site-1",
        },
    )
    fetched = (await api.get("/v1/devices/site-1/tv:living")).json()

    assert created == fetched
    assert fetched["profile_id"] == "tv" and fetched["site_id"] == "site-1"
    assert await queued(db) == ["site-1/tv:living"]


async def test_devices_are_listed_by_site_and_profile(api: httpx.AsyncClient, db: Database) -> None:
    async with db.transaction(write=True) as session:
        await add_site(session=session, site_id="site-1", name="Flat 1")
    await post_ok(api, "/v1/profiles", TV)
    await post_ok(api, "/v1/profiles", {"id": "meter", "name": "Meter"})
    for device_id, profile, site in [
        ("tv-1", "tv", "site-1"),
        ("tv-2", "tv", None),
        ("m-1", "meter", "site-1"),
    ]:
        body = {"id": device_id, "name": device_id, "profile_id": profile, "site_id": site}
        await post_ok(api, "/v1/devices", body)

    def ids(response: httpx.Response) -> list[str]:
        return [item["id"] for item in response.json()["items"]]

    assert ids(await api.get("/v1/devices")) == ["m-1", "tv-1", "tv-2"]
    assert ids(await api.get("/v1/devices", params={"site_id": "site-1"})) == ["m-1", "tv-1"]
    assert ids(await api.get("/v1/devices", params={"profile_id": "tv"})) == ["tv-1", "tv-2"]
    both = await api.get("/v1/devices", params={"profile_id": "tv", "site_id": "site-1"})
    assert ids(both) == ["tv-1"]
    page = (await api.get("/v1/devices", params={"limit": 2})).json()
    assert page["next_after"] == "tv-1"


async def test_changing_a_devices_profile_requeues_it(api: httpx.AsyncClient, db: Database) -> None:
    await post_ok(api, "/v1/profiles", TV)
    await post_ok(api, "/v1/profiles", {"id": "radio", "name": "Radio", "start_on": ["on"]})
    await post_ok(api, "/v1/devices", {"id": "tv-1", "name": "TV", "profile_id": "tv"})
    await clear_queue(db)

    renamed = await api.patch("/v1/devices/tv-1", json={"name": "Old TV"})
    assert await queued(db) == []  # a new name does not change sessions
    moved = await api.patch("/v1/devices/tv-1", json={"profile_id": "radio"})

    assert renamed.json()["name"] == "Old TV"
    assert moved.json()["profile_id"] == "radio" and moved.json()["name"] == "Old TV"
    assert await queued(db) == ["tv-1"]


async def test_changing_a_rule_requeues_the_profiles_devices(
    api: httpx.AsyncClient, db: Database
) -> None:
    await post_ok(api, "/v1/profiles", TV)
    await post_ok(api, "/v1/profiles", {"id": "radio", "name": "Radio", "start_on": ["on"]})
    for device_id, profile in [("tv-1", "tv"), ("tv-2", "tv"), ("radio-1", "radio")]:
        await post_ok(api, "/v1/devices", {"id": device_id, "name": "x", "profile_id": profile})
    await clear_queue(db)

    response = await api.put(
        "/v1/profiles/tv/rule",
        json={"start_on": ["power_on", "wake"], "end_on": ["standby"], "timeout_seconds": 600},
    )

    assert response.status_code == 200, response.text
    assert response.json()["start_on"] == ["power_on", "wake"]
    assert response.json()["timeout_seconds"] == 600
    assert await queued(db) == ["tv-1", "tv-2"]


async def test_a_bad_rule_change_changes_nothing(api: httpx.AsyncClient, db: Database) -> None:
    await post_ok(api, "/v1/profiles", TV)
    await post_ok(api, "/v1/devices", {"id": "tv-1", "name": "TV", "profile_id": "tv"})
    await clear_queue(db)

    bad = await api.put("/v1/profiles/tv/rule", json={"start_on": ["x"], "end_on": ["x"]})
    missing = await api.put("/v1/profiles/nope/rule", json={"start_on": ["x"]})

    assert bad.status_code == 422 and error_code(bad) == "invalid_billing_input"
    assert missing.status_code == 404 and error_code(missing) == "profile_not_found"
    assert (await api.get("/v1/profiles/tv")).json()["start_on"] == ["power_on"]
    assert await queued(db) == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"id": "tv-9", "name": "TV", "profile_id": "nope"}, 404, "profile_not_found"),
        (
            {"id": "tv-9", "name": "TV", "profile_id": "tv", "site_id": "nowhere"},
            404,
            "site_not_found",
        ),
        ({"id": "tv 9", "name": "TV", "profile_id": "tv"}, 422, "invalid_parameters"),
        ({"id": "tv-1", "name": "TV again", "profile_id": "tv"}, 409, "already_exists"),
    ],
    ids=["unknown-profile", "unknown-site", "bad-id", "duplicate"],
)
async def test_a_bad_device_is_refused(
    api: httpx.AsyncClient, db: Database, body: dict[str, object], status: int, code: str
) -> None:
    await post_ok(api, "/v1/profiles", TV)
    await post_ok(api, "/v1/devices", {"id": "tv-1", "name": "TV", "profile_id": "tv"})
    await clear_queue(db)

    response = await api.post("/v1/devices", json=body)

    assert response.status_code == status and error_code(response) == code
    assert [d["id"] for d in (await api.get("/v1/devices")).json()["items"]] == ["tv-1"]
    assert (await api.get("/v1/devices/tv-1")).json()["name"] == "TV"
    assert await queued(db) == []


async def test_patching_a_device_to_an_unknown_profile_is_refused(api: httpx.AsyncClient) -> None:
    await post_ok(api, "/v1/profiles", TV)
    await post_ok(api, "/v1/devices", {"id": "tv-1", "name": "TV", "profile_id": "tv"})

    response = await api.patch("/v1/devices/tv-1", json={"name": "New", "profile_id": "nope"})
    unknown = await api.get("/v1/devices/tv-2")

    assert response.status_code == 404 and error_code(response) == "profile_not_found"
    assert (await api.get("/v1/devices/tv-1")).json()["name"] == "TV"
    assert unknown.status_code == 404 and error_code(unknown) == "device_not_found"
