"""Text the database cannot store (U+0000, lone surrogates) is refused the same on both backends,
wherever it comes: a JSON body, a path, a query string, or quoted in a refusal's incident."""

import json

import pytest
from fastapi import FastAPI

from cloud.auth.service import create_api_key
from cloud.db import Database
from cloud.incidents.counts import count_incidents
from cloud.incidents.models import IncidentKind
from cloud.incidents.sink import record_incident
from tests.cloud.conftest import GATEWAY, counts, error_code, http_client


@pytest.fixture
async def billing(app: FastAPI, db: Database) -> dict[str, str]:
    """A billing key's header."""
    async with db.transaction(write=True) as session:
        issued = await create_api_key(session=session, name="billing", scope="billing")
    return {"Authorization": f"Bearer {issued.secret}"}


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        ("/v1/profiles", {"id": "tv", "name": "T\u0000V"}, "name"),
        ("/v1/profiles", {"id": "tv", "name": "TV", "start_on": ["on", "o\u0000n"]}, "start_on[1]"),
        ("/v1/accounts", {"id": "a", "name": "\ud800", "currency": "EUR"}, "name"),
        ("/v1/plans", {"id": "p", "name": "P\u0000", "currency": "EUR"}, "name"),
    ],
)
async def test_a_body_with_unstorable_text_is_422_naming_the_field(
    app: FastAPI, billing: dict[str, str], path: str, body: dict[str, object], where: str
) -> None:
    async with http_client(app) as client:
        # ASCII JSON: a lone surrogate travels as its escape, as a hostile client would send it.
        response = await client.post(
            path,
            content=json.dumps(body).encode("ascii"),
            headers={**billing, "Content-Type": "application/json"},
        )

    assert response.status_code == 422, response.text
    assert error_code(response) == "invalid_parameters"
    message = response.json()["error"]["message"]
    # pydantic refuses a lone surrogate itself ("unable to parse raw data as a unicode string")
    assert f"{where}: text may not contain U+" in message or f"{where}: Input" in message


@pytest.mark.parametrize(
    "url", ["/v1/accounts/a%00b", "/v1/devices/x%00/sessions", "/v1/events?device_id=a%00"]
)
async def test_a_url_with_nul_is_422_before_any_route(
    app: FastAPI, billing: dict[str, str], url: str
) -> None:
    async with http_client(app) as client:
        response = await client.get(url, headers=billing)
        anonymous = await client.get(url)

    assert response.status_code == 422 and error_code(response) == "invalid_parameters"
    assert anonymous.status_code == 422
    assert response.json()["error"]["id"].startswith("e-")


async def test_an_incident_quoting_unstorable_text_is_stored(db: Database) -> None:
    await db.run_write(
        lambda session: record_incident(
            session,
            gateway_id=GATEWAY,
            kind=IncidentKind.CHAIN_BROKEN,
            detail="refused key 'a\u0000b' and '\ud800'",
        )
    )
    async with db.transaction() as session:
        assert (await count_incidents(session=session, gateway_id=GATEWAY)) == {"chain_broken": 1}
    assert (await counts(db))["incidents"] == 1


async def test_a_body_that_is_not_utf8_is_a_declared_400(
    app: FastAPI, billing: dict[str, str]
) -> None:
    async with http_client(app) as client:
        response = await client.post(
            "/v1/profiles",
            content=b"\xff",
            headers={**billing, "Content-Type": "application/json"},
        )
        schema = (await client.get("/openapi.json")).json()

    assert response.status_code == 400 and response.json()["error"]["id"]
    assert "400" in schema["paths"]["/v1/profiles"]["post"]["responses"]
