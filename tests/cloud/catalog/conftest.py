"""Catalog fixtures: an admin key on the real app, and a client that sends it."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from cloud.auth.service import IssuedKey, create_api_key
from cloud.db import Database
from tests.cloud.conftest import http_client


@pytest.fixture
async def admin_key(db: Database) -> IssuedKey:
    """A live admin API key in the app's database."""
    async with db.transaction(write=True) as session:
        return await create_api_key(session=session, name="tests")


@pytest.fixture
async def api(app: FastAPI, admin_key: IssuedKey) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the real app sending the admin key."""
    async with http_client(app) as http:
        http.headers["Authorization"] = f"Bearer {admin_key.secret}"
        yield http


async def post_ok(api: httpx.AsyncClient, path: str, body: dict[str, object]) -> dict[str, object]:
    """POST `body`, expecting 201; the answer."""
    response = await api.post(path, json=body)
    assert response.status_code == 201, response.text
    answer: dict[str, object] = response.json()
    return answer


def account_body(account_id: str = "smith", **changes: object) -> dict[str, object]:
    """A valid account document."""
    return {
        "id": account_id,
        "name": "The Smiths",
        "kind": "household",
        "currency": "EUR",
        "time_zone": "Europe/Berlin",
        **changes,
    }


async def seed_devices(api: httpx.AsyncClient, *device_ids: str) -> None:
    """A `tv` profile and one device per id."""
    await post_ok(
        api,
        "/v1/profiles",
        {"id": "tv", "name": "TV", "start_on": ["power_on"], "end_on": ["power_off"]},
    )
    for device_id in device_ids:
        await post_ok(api, "/v1/devices", {"id": device_id, "name": device_id, "profile_id": "tv"})
