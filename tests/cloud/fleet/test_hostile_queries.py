"""Hostile text in the fleet's path and query strings answers a JSON 4xx, never a 500."""

import httpx
import pytest

from tests.cloud.conftest import READER

PATHS = [
    "/v1/twins?cursor=%ED%A0%80",
    "/v1/twins?site=%FF%FE",
    "/v1/twins?account=%00",
    "/v1/twins?gateway=%C0%AF",
    "/v1/gateways?cursor=%ED%A0%80",
    "/v1/devices/%ED%A0%80/twin",
    "/v1/devices/%FF/twin",
    "/v1/gateways/%ED%A0%80",
]


@pytest.mark.parametrize("path", PATHS)
async def test_hostile_text_is_not_a_server_error(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path, headers=READER)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["error"]["code"]


@pytest.mark.parametrize("gateway_id", ["%ED%A0%80", "%FF", "a" * 129, "%00"])
async def test_heartbeats_to_hostile_gateway_ids_are_refused(
    client: httpx.AsyncClient, gateway_id: str
) -> None:
    response = await client.post(f"/v1/gateways/{gateway_id}/heartbeats", content=b"{}")
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["code"]
