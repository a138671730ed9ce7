"""GET /v1/gateways/{id}: where the stored chain ends, its gaps and its incidents; /healthz."""

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.db import Database
from tests.cloud.conftest import GATEWAY, READER, error_code, make_events, post, register


async def status(client: httpx.AsyncClient) -> dict[str, object]:
    """The gateway status of GATEWAY."""
    response = await client.get(f"/v1/gateways/{GATEWAY}", headers=READER)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_new_gateway_has_no_chain_yet(client: httpx.AsyncClient) -> None:
    body = await status(client)

    assert body["last_seq"] is None and body["last_hash"] is None
    assert body["event_count"] == 0
    assert body["missing_ranges"] == [] and body["incidents"] == {}
    assert isinstance(body["registered_at"], str) and body["registered_at"].endswith("Z")


async def test_gap_shows_as_missing_range_and_last_hash_is_the_last_event(
    client: httpx.AsyncClient, gateway_key: Ed25519PrivateKey
) -> None:
    chain = make_events(1, 30)
    assert (await post(client, chain[:10], gateway_key)).status_code == 200
    assert (await post(client, chain[20:], gateway_key)).status_code == 200

    body = await status(client)

    assert body["missing_ranges"] == [[11, 20]]
    assert body["last_seq"] == 30
    assert body["last_hash"] == chain[29].hash
    assert body["event_count"] == 20


async def test_filling_the_gap_closes_it(
    client: httpx.AsyncClient, gateway_key: Ed25519PrivateKey
) -> None:
    chain = make_events(1, 30)
    await post(client, chain[:10], gateway_key)
    await post(client, chain[20:], gateway_key)

    response = await post(client, chain[10:20], gateway_key)

    assert response.status_code == 200 and response.json()["stored"] == 10
    body = await status(client)
    assert body["missing_ranges"] == [] and body["event_count"] == 30


async def test_gaps_at_the_start_and_in_between(
    client: httpx.AsyncClient, gateway_key: Ed25519PrivateKey
) -> None:
    chain = make_events(1, 40)
    await post(client, chain[4:8], gateway_key)
    await post(client, chain[9:12], gateway_key)
    await post(client, chain[35:], gateway_key)

    assert (await status(client))["missing_ranges"] == [[1, 4], [9, 9], [13, 35]]


async def test_incidents_are_counted_by_kind(
    client: httpx.AsyncClient, gateway_key: Ed25519PrivateKey
) -> None:
    events = make_events(1, 5)
    await post(client, events, gateway_key)
    await post(client, events, gateway_key)
    await post(client, events, gateway_key)
    forged = await post(client, make_events(6, 8), Ed25519PrivateKey.generate())

    # A forgery proves nothing about the gateway: refused, but not filed on its record.
    assert forged.status_code == 401
    assert (await status(client))["incidents"] == {"duplicate_delivery": 2}


async def test_unknown_gateway_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/gateways/nobody", headers=READER)

    assert response.status_code == 404
    assert error_code(response) == "gateway_not_found"


async def test_health_and_unknown_routes(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    missing = await client.get("/v1/nothing-here")

    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert missing.status_code == 404 and error_code(missing) == "http_404"


async def test_openapi_documents_the_batch_body(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()

    body = document["paths"]["/v1/batches"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert set(schema["required"]) >= {"gateway_id", "first_seq", "signature", "events"}
    assert "quantity" in schema["properties"]["events"]["items"]["properties"]
    assert "$ref" not in str(schema)
    assert (await client.get("/docs")).status_code == 200


async def test_gateway_ids_may_contain_slashes_and_colons(
    client: httpx.AsyncClient, db: Database
) -> None:
    await register(db, "acme/site:7", Ed25519PrivateKey.generate())

    response = await client.get("/v1/gateways/acme/site:7", headers=READER)

    assert response.status_code == 200
    assert response.json()["gateway_id"] == "acme/site:7"
