"""Every catalog route needs a live admin key; keys are stored as hashes only."""

import httpx
from sqlalchemy import select

from cloud.auth.models import ApiKey
from cloud.auth.service import IssuedKey, create_api_key, revoke_api_key
from cloud.db import Database
from tests.cloud.conftest import error_code

ROUTES = [
    ("GET", "/v1/accounts"),
    ("POST", "/v1/accounts"),
    ("GET", "/v1/accounts/smith"),
    ("PATCH", "/v1/accounts/smith"),
    ("GET", "/v1/accounts/smith/bindings"),
    ("GET", "/v1/profiles"),
    ("POST", "/v1/profiles"),
    ("GET", "/v1/profiles/tv"),
    ("PUT", "/v1/profiles/tv/rule"),
    ("GET", "/v1/devices"),
    ("POST", "/v1/devices"),
    ("GET", "/v1/devices/tv-1"),
    ("PATCH", "/v1/devices/tv-1"),
    ("GET", "/v1/devices/tv-1/bindings"),
    ("POST", "/v1/devices/tv-1/bindings"),
    ("PATCH", "/v1/bindings/1"),
    ("GET", "/v1/metrics"),
    ("POST", "/v1/metrics"),
    ("GET", "/v1/metrics/m"),
    ("GET", "/v1/plans"),
    ("POST", "/v1/plans"),
    ("GET", "/v1/plans/p"),
    ("POST", "/v1/plans/p/versions"),
    ("GET", "/v1/unbilled"),
]


async def test_every_route_refuses_a_request_without_a_key(client: httpx.AsyncClient) -> None:
    for method, path in ROUTES:
        response = await client.request(method, path, json={})

        assert response.status_code == 401, (method, path)
        assert error_code(response) == "unauthorized"


async def test_a_wrong_key_is_refused(client: httpx.AsyncClient, admin_key: IssuedKey) -> None:
    wrong = admin_key.secret[:-4] + ("AAAA" if not admin_key.secret.endswith("AAAA") else "BBBB")

    response = await client.get("/v1/accounts", headers={"Authorization": f"Bearer {wrong}"})
    not_bearer = await client.get("/v1/accounts", headers={"Authorization": admin_key.secret})

    assert response.status_code == 401 and error_code(response) == "unauthorized"
    assert not_bearer.status_code == 401


async def test_a_revoked_key_is_refused(
    client: httpx.AsyncClient, db: Database, admin_key: IssuedKey
) -> None:
    headers = {"Authorization": f"Bearer {admin_key.secret}"}
    assert (await client.get("/v1/accounts", headers=headers)).status_code == 200

    async with db.transaction(write=True) as session:
        assert await revoke_api_key(session=session, prefix=admin_key.prefix) == 1
    response = await client.get("/v1/accounts", headers=headers)

    assert response.status_code == 401 and error_code(response) == "unauthorized"


async def test_a_key_of_another_scope_is_forbidden(client: httpx.AsyncClient, db: Database) -> None:
    async with db.transaction(write=True) as session:
        key = await create_api_key(session=session, name="ingest", scope="ingest:lab")

    response = await client.get("/v1/accounts", headers={"Authorization": f"Bearer {key.secret}"})

    assert response.status_code == 403 and error_code(response) == "forbidden"


async def test_keys_are_stored_hashed_never_in_clear(db: Database, admin_key: IssuedKey) -> None:
    async with db.transaction() as session:
        rows = list(await session.scalars(select(ApiKey).where(ApiKey.id == admin_key.id)))

    assert len(rows) == 1
    stored = " ".join(str(getattr(rows[0], c.key)) for c in ApiKey.__table__.columns)
    assert admin_key.secret not in stored
    assert admin_key.secret[len(admin_key.prefix) :] not in stored
    assert rows[0].prefix == admin_key.prefix and len(rows[0].key_hash) == 64


async def test_openapi_documents_the_catalog_models(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()

    for model in (
        "AccountCreate",
        "BindingCreate",
        "PlanTerms-Input",
        "MetricCreate",
        "ProfileOut",
    ):
        assert model in schema["components"]["schemas"]
    post = schema["paths"]["/v1/accounts"]["post"]
    assert {"401", "409", "422"} <= set(post["responses"])
