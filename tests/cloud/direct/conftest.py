"""Direct-ingestion fixtures: an admin key on the real app, and sources created over the API."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cloud.auth.service import IssuedKey, create_api_key
from cloud.db import Database
from shared.bounds import parse_quantity
from tests.cloud.conftest import http_client

SOURCE_ID = "acme"
CE_SOURCE = "urn:acme:meters"
EVENT_TYPE = "com.acme.pour"
MAPPING: dict[str, Any] = {
    "ce_sources": [CE_SOURCE],
    "files": {"device": "meter", "time": "ts", "id": "txn"},
    "types": [
        {"type": EVENT_TYPE, "name": "pour", "kind": "measurement", "quantity": "kg", "unit": "kg"}
    ],
}


def quantity_reason(value: object) -> str:
    """Why `shared.bounds.parse_quantity` refuses `value`: a refused quantity's reason, verbatim."""
    with pytest.raises(ValueError) as caught:
        parse_quantity(value)
    return str(caught.value)


def bearer(secret: str) -> dict[str, str]:
    """The Authorization header sending `secret`."""
    return {"Authorization": f"Bearer {secret}"}


async def make_admin_key(db: Database) -> IssuedKey:
    """A live admin API key in `db`."""
    async with db.transaction(write=True) as session:
        return await create_api_key(session=session, name="tests")


@pytest.fixture
async def admin_key(db: Database) -> IssuedKey:
    """A live admin API key in the app's database."""
    return await make_admin_key(db)


@pytest.fixture
async def admin(app: FastAPI, admin_key: IssuedKey) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the real app sending the admin key."""
    async with http_client(app) as http:
        http.headers.update(bearer(admin_key.secret))
        yield http


async def create_source(
    admin: httpx.AsyncClient,
    source_id: str = SOURCE_ID,
    mapping: dict[str, Any] | None = None,
    key_name: str = "sender",
) -> str:
    """Create a source over the API (admin client) and return the secret of a new ingest key."""
    created = await admin.post(
        "/v1/sources", json={"id": source_id, "mapping": MAPPING if mapping is None else mapping}
    )
    assert created.status_code == 201, created.text
    return await create_key(admin, source_id, key_name)


async def create_key(admin: httpx.AsyncClient, source_id: str, name: str = "sender") -> str:
    """A new ingest key of an existing source, created over the API; its secret."""
    issued = await admin.post(f"/v1/sources/{source_id}/keys", json={"name": name})
    assert issued.status_code == 201, issued.text
    secret: str = issued.json()["secret"]
    return secret


@pytest.fixture
async def ingest_key(admin: httpx.AsyncClient) -> str:
    """The secret of an ingest key of source SOURCE_ID (mapping MAPPING)."""
    return await create_source(admin)
