"""Catalog numbers are bounded where they enter: a 39-digit timeout or a 40-digit price is a 422
naming the field, never a server error or a rating failure later."""

import httpx

from tests.cloud.conftest import error_code


async def test_a_session_timeout_beyond_a_year_is_refused(api: httpx.AsyncClient) -> None:
    created = await api.post("/v1/profiles", json={"id": "tv", "name": "TV"})
    huge = await api.put(
        "/v1/profiles/tv/rule",
        json={"start_on": ["power_on"], "timeout_seconds": 10**38},
    )
    year = await api.put(
        "/v1/profiles/tv/rule",
        json={"start_on": ["power_on"], "timeout_seconds": 366 * 86400},
    )

    assert created.status_code == 201
    assert huge.status_code == 422 and error_code(huge) == "invalid_parameters"
    assert "timeout_seconds" in huge.json()["error"]["message"]
    assert year.status_code == 200


async def test_a_price_beyond_the_contract_digits_is_refused(api: httpx.AsyncClient) -> None:
    created = await api.post("/v1/plans", json={"id": "p", "name": "P", "currency": "EUR"})
    terms = {"effective_from": "2026-01-01T00:00:00Z", "base_fee": "1" + "0" * 40}

    refused = await api.post("/v1/plans/p/versions", json=terms)
    refused_tiny = await api.post("/v1/plans/p/versions", json={**terms, "base_fee": "1e-31"})
    fine = await api.post("/v1/plans/p/versions", json={**terms, "base_fee": "9.99"})

    assert created.status_code == 201, created.text
    assert fine.status_code == 201, fine.text
    assert refused.status_code == 422, refused.text
    assert "more than 30 digits before the point" in refused.text
    assert refused_tiny.status_code == 422
    assert "after the point" in refused_tiny.text
