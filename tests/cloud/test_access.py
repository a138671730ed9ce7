"""Every route x every credential, from the app's own route list.

A route added later without an access rule fails `test_every_route_declares_an_access_rule`;
one whose rule lets the wrong caller in, or keeps the right one out, fails the table test.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.routing import RouteContext
from sqlalchemy import update

from cloud.auth.access import access_rule, api_routes
from cloud.auth.models import ApiKey
from cloud.auth.roles import Rule
from cloud.auth.service import create_api_key, revoke_api_key
from cloud.auth.share_links import create_share_link
from cloud.db import Database
from shared.request_signing import signed_request_headers
from tests.cloud.conftest import GATEWAY, http_client, register

KEY_ROLES = ("admin", "billing", "viewer", "ingest")
CREDENTIALS = ("none", "wrong", "revoked", "expired", *KEY_ROLES, "gateway", "share")
ALLOWED: dict[Rule, set[str]] = {
    Rule.PUBLIC: set(CREDENTIALS),
    Rule.READ: {"admin", "billing", "viewer"},
    Rule.BILLING: {"admin", "billing"},
    Rule.ADMIN: {"admin"},
    Rule.INGEST: {"ingest"},
    Rule.IMPORT: {"admin", "ingest"},
    Rule.GATEWAY: {"admin", "billing", "viewer", "gateway"},
    Rule.SHARE: {"share"},
}
DEAD_TOKEN = "tgs_" + "x" * 43


@dataclass(frozen=True)
class Keys:
    """A secret per credential, and the gateway key."""

    secrets: dict[str, str]
    share_token: str
    gateway_key: Ed25519PrivateKey


async def issue_keys(db: Database, gateway_key: Ed25519PrivateKey) -> Keys:
    """One live key per role, a revoked and an expired admin key, a share link to invoice 1."""
    secrets: dict[str, str] = {"wrong": "tg_" + "A" * 43}
    async with db.transaction(write=True) as session:
        for role in ("admin", "billing", "viewer"):
            secrets[role] = (await create_api_key(session=session, name=role, scope=role)).secret
        ingest = await create_api_key(session=session, name="lab", scope="ingest:lab")
        secrets["ingest"] = ingest.secret
        revoked = await create_api_key(session=session, name="gone", scope="admin")
        await revoke_api_key(session=session, prefix=revoked.prefix)
        secrets["revoked"] = revoked.secret
        expired = await create_api_key(
            session=session, name="old", scope="admin", expires_at=datetime.now(UTC)
        )
        secrets["expired"] = expired.secret
        link = await create_share_link(
            session=session, invoice_id=1, created_by="tests", lifetime=timedelta(days=1)
        )
    return Keys(secrets=secrets, share_token=link.token, gateway_key=gateway_key)


def concrete_path(route: RouteContext, *, share_token: str) -> str:
    """The route's path with every parameter filled in."""
    values = {"gateway_id": GATEWAY, "token": share_token, "invoice_id": "1", "n": "1"}
    return re.sub(r"{(\w+)(:\w+)?}", lambda m: values.get(m[1], "x1"), route.path_format or "")


def is_console(route: RouteContext) -> bool:
    """A console page or form (its credential is the console's session cookie)."""
    return (route.path_format or "").startswith("/console")


def request_headers(credential: str, keys: Keys, *, method: str, path: str) -> dict[str, str]:
    """The headers that present `credential`."""
    if credential == "none":
        return {}
    if credential == "gateway":
        return signed_request_headers(
            keys.gateway_key, gateway_id=GATEWAY, method=method, path=path, now=datetime.now(UTC)
        )
    if credential == "share":  # on routes that are not the share's, a share token is no key
        return {"Authorization": f"Bearer {keys.share_token}"}
    return {"Authorization": f"Bearer {keys.secrets[credential]}"}


def test_every_route_declares_an_access_rule() -> None:
    from cloud.app import create_app

    missing = [
        f"{sorted(route.methods or ())} {route.path_format}"
        for route in api_routes(create_app())
        if access_rule(route) is None
    ]

    assert missing == []


def test_the_table_covers_every_rule() -> None:
    assert set(ALLOWED) == set(Rule)


async def test_every_route_times_every_credential(
    app: FastAPI, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    keys = await issue_keys(db, gateway_key)
    wrong: list[str] = []
    async with http_client(app) as client:
        for route in api_routes(app):
            if is_console(route):  # a session cookie, not a key: tests/cloud/console/
                continue
            rule = access_rule(route)
            assert rule is not None
            for method in sorted(route.methods or ()):
                for credential in CREDENTIALS:
                    failure = await check_one(client, route, rule, method, credential, keys)
                    if failure:
                        wrong.append(failure)

    assert wrong == []


async def check_one(
    client: httpx.AsyncClient,
    route: RouteContext,
    rule: Rule,
    method: str,
    credential: str,
    keys: Keys,
) -> str | None:
    """What is wrong with the answer to `credential` calling the route, if anything."""
    token = keys.share_token if credential == "share" else DEAD_TOKEN
    path = concrete_path(route, share_token=token)
    headers = request_headers(credential, keys, method=method, path=path)
    body = {} if method in {"POST", "PUT", "PATCH"} else None
    response = await client.request(method, path, headers=headers, json=body)
    where = f"{method} {route.path_format} as {credential}: {response.status_code}"
    if credential in ALLOWED[rule]:
        return where if response.status_code in (401, 403) else None
    # A key of another role is forbidden; on a share route only the token counts, so a dead
    # token is unauthorized whatever key comes with it.
    expected = 403 if credential in KEY_ROLES and rule is not Rule.SHARE else 401
    if response.status_code != expected:
        return f"{where}, expected {expected}"
    error = response.json()["error"]
    if (
        error["code"] not in ("unauthorized", "forbidden")
        or not error["message"]
        or not error["id"]
    ):
        return f"{where}: not a refusal body: {error}"
    return None


async def test_refusals_say_what_is_missing(app: FastAPI, db: Database) -> None:
    keys = await issue_keys(db, Ed25519PrivateKey.generate())
    async with http_client(app) as client:
        anonymous = await client.get("/v1/invoices")
        expired = await client.get("/v1/invoices", headers=_bearer(keys.secrets["expired"]))
        revoked = await client.get("/v1/invoices", headers=_bearer(keys.secrets["revoked"]))
        viewer = await client.post(
            "/v1/invoice-runs", headers=_bearer(keys.secrets["viewer"]), json={"period": "2026-11"}
        )

    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.json()["error"]["detail"] == {"missing": "api_key"}
    assert "expired at" in expired.json()["error"]["message"]
    assert expired.json()["error"]["detail"]["reason"] == "expired"
    assert "was revoked at" in revoked.json()["error"]["message"]
    assert viewer.status_code == 403
    assert viewer.json()["error"]["detail"] == {"role": "viewer", "required": ["admin", "billing"]}
    assert "POST /v1/invoice-runs needs admin or billing" in viewer.json()["error"]["message"]


async def test_a_key_stops_working_when_it_expires(app: FastAPI, db: Database) -> None:
    async with db.transaction(write=True) as session:
        issued = await create_api_key(
            session=session,
            name="temp",
            scope="viewer",
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
    async with http_client(app) as client:
        before = await client.get("/v1/invoices", headers=_bearer(issued.secret))
        async with db.transaction(write=True) as session:
            await session.execute(
                update(ApiKey)
                .where(ApiKey.id == issued.id)
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        after = await client.get("/v1/invoices", headers=_bearer(issued.secret))

    assert before.status_code == 200
    assert after.status_code == 401 and after.json()["error"]["detail"]["reason"] == "expired"


async def test_a_gateway_reads_only_its_own_head(
    app: FastAPI, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    other_key = Ed25519PrivateKey.generate()
    await register(db, "site-043-gw1", other_key)
    own = "/v1/gateways/site-043-gw1/head"
    theirs = f"/v1/gateways/{GATEWAY}/head"
    now = datetime.now(UTC)
    async with http_client(app) as client:
        ok = await client.get(own, headers=_signed(other_key, "site-043-gw1", own, now))
        not_theirs = await client.get(
            theirs, headers=_signed(other_key, "site-043-gw1", theirs, now)
        )
        status = await client.get(
            "/v1/gateways/site-043-gw1",
            headers=_signed(other_key, "site-043-gw1", "/v1/gateways/site-043-gw1", now),
        )
        stale = await client.get(
            own, headers=_signed(other_key, "site-043-gw1", own, now - timedelta(minutes=6))
        )
        forged = await client.get(own, headers=_signed(gateway_key, "site-043-gw1", own, now))
        replayed_elsewhere = await client.get(
            theirs, headers=_signed(other_key, "site-043-gw1", own, now)
        )

    assert ok.status_code == 200
    assert ok.json() == {
        "gateway_id": "site-043-gw1",
        "public_key_pem": ok.json()["public_key_pem"],
        "last_seq": None,
        "last_hash": None,
    }
    assert not_theirs.status_code == 403
    assert status.status_code == 401  # the full status (gaps, incidents) needs a key
    assert stale.status_code == 401 and stale.json()["error"]["detail"]["missing"] == (
        "fresh_signature"
    )
    assert forged.status_code == 401
    assert replayed_elsewhere.status_code == 401  # the signature covers the path


async def test_an_error_nobody_expected_answers_json_with_a_logged_id(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async def explode() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/v1/test-explode", explode, methods=["GET"])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://c"
    ) as client:
        response = await client.get("/v1/test-explode")

    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error" and error["id"].startswith("e-")
    assert error["id"] in error["message"]
    assert any(error["id"] in record.getMessage() for record in caplog.records)


async def test_unknown_paths_and_methods_answer_the_error_body(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/nothing-here")
    method = await client.put("/healthz")

    assert missing.status_code == 404 and missing.json()["error"]["code"] == "http_404"
    assert method.status_code == 405 and missing.json()["error"]["id"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/invoices/3134641228839169848552540078080",
        "/v1/invoices/9223372036854775808/lines/1/evidence",
        "/v1/invoices/1/lines/99999999999999999999/evidence",
    ],
)
async def test_ids_beyond_64_bits_are_422(app: FastAPI, db: Database, path: str) -> None:
    keys = await issue_keys(db, Ed25519PrivateKey.generate())
    async with http_client(app) as client:
        response = await client.get(path, headers=_bearer(keys.secrets["viewer"]))
        patch = await client.patch(
            "/v1/bindings/9999999999999999999",
            headers=_bearer(keys.secrets["billing"]),
            json={"valid_to": "2026-12-01T00:00:00Z"},
        )

    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_parameters"
    assert patch.status_code == 422


def test_the_openapi_declares_the_shared_statuses() -> None:
    from cloud.app import create_app

    schema = create_app().openapi()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            declared = set(operation["responses"])
            assert {"500", "503"} <= declared, (method, path)
            if "security" in operation:
                assert {"401", "403"} <= declared, (method, path)
            for status, answer in operation["responses"].items():
                if status.startswith(("4", "5")):
                    ref = answer["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorBody"), (method, path, status)
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _signed(key: Ed25519PrivateKey, gateway_id: str, path: str, now: datetime) -> dict[str, str]:
    return signed_request_headers(key, gateway_id=gateway_id, method="GET", path=path, now=now)
