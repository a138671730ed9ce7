"""GET /v1/devices/{id}/sessions and POST /v1/sessions/refresh: admin key, answers, errors."""

import httpx

from cloud.auth.service import create_api_key
from cloud.db import Database
from tests.cloud.conftest import error_code
from tests.cloud.sessions.support import CAMERA, add_device, add_profile, at, work
from tests.support.usage import GatewayFeed, usage


async def admin_headers(db: Database) -> dict[str, str]:
    """An Authorization header with a fresh admin key."""
    async with db.transaction(write=True) as session:
        issued = await create_api_key(session=session, name="ops")
    return {"Authorization": f"Bearer {issued.secret}"}


async def test_routes_refuse_requests_without_a_valid_key(
    client: httpx.AsyncClient, db: Database
) -> None:
    await GatewayFeed("gw-r0").register(db)
    response = await client.post("/v1/sessions/refresh")
    assert response.status_code == 401 and error_code(response) == "unauthorized"
    response = await client.get("/v1/devices/cam-1/sessions")
    assert response.status_code == 401 and error_code(response) == "unauthorized"
    bad = {"Authorization": "Bearer tg_not-a-key"}
    assert (await client.get("/v1/devices/cam-1/sessions", headers=bad)).status_code == 401


async def test_refresh_then_list_sessions(client: httpx.AsyncClient, db: Database) -> None:
    headers = await admin_headers(db)
    await add_profile(db, "camera", CAMERA)
    await add_device(db, "cam-1", "camera")
    feed = await GatewayFeed("gw-r1").register(db)
    await feed.send(
        db,
        [
            usage("cam-1", "stream_start", at(0), channel="main"),
            usage("cam-1", "stream_stop", at(30), channel="main"),
            usage("cam-1", "stream_start", at(40), channel="main"),
        ],
    )
    response = await client.post("/v1/sessions/refresh", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"pairs": 1, "events": 3, "written": 2, "retired": 0}
    assert await work(db) == {}

    response = await client.get("/v1/devices/cam-1/sessions", headers=headers)
    assert response.status_code == 200
    first, second = response.json()
    assert first["close_reason"] == "deactivated" and first["channel"] == "main"
    assert first["started_at"].startswith("2026-11-02T08:00:00")
    assert first["events"] == [{"gateway_id": "gw-r1", "seq": 1}, {"gateway_id": "gw-r1", "seq": 2}]
    assert second["close_reason"] == "still_open" and second["ended_at"] is None

    window = {"start": at(35).isoformat(), "end": at(50).isoformat()}
    response = await client.get("/v1/devices/cam-1/sessions", headers=headers, params=window)
    assert [s["events"][0]["seq"] for s in response.json()] == [3]


async def test_list_errors(client: httpx.AsyncClient, db: Database) -> None:
    headers = await admin_headers(db)
    response = await client.get("/v1/devices/nope/sessions", headers=headers)
    assert response.status_code == 404 and error_code(response) == "device_not_found"
    await add_profile(db, "camera", CAMERA)
    await add_device(db, "cam-1", "camera")
    backwards = {"start": at(10).isoformat(), "end": at(0).isoformat()}
    response = await client.get("/v1/devices/cam-1/sessions", headers=headers, params=backwards)
    assert response.status_code == 422 and error_code(response) == "invalid_parameters"
    naive = {"start": "2026-11-02T08:00:00"}
    response = await client.get("/v1/devices/cam-1/sessions", headers=headers, params=naive)
    assert response.status_code == 422
