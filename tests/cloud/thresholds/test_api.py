"""The thresholds API over ASGI on both backends: add, list, remove; every refusal is a JSON
error that stores nothing."""

from typing import Any

import httpx

from cloud.thresholds.check import check_thresholds
from cloud.thresholds.service import MAX_PER_ACCOUNT
from tests.cloud.conftest import READER
from tests.cloud.invoices.test_runs import Billing, reading, utc
from tests.cloud.thresholds.conftest import key_headers

BASE = "/v1/accounts/home-1/thresholds"


async def listed(client: httpx.AsyncClient, path: str = BASE) -> list[dict[str, Any]]:
    """The account's thresholds as GET answers them."""
    response = await client.get(path, headers=READER)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()
    return items


async def test_add_list_fire_and_remove(client: httpx.AsyncClient, billing: Billing) -> None:
    await billing.account("home-1")
    await billing.device("meter-1", "meter", "home-1")
    billing_key = await key_headers(billing.db, "billing")

    units = await client.post(
        BASE, json={"metric_id": "kwh", "measure": "units", "value": "10"}, headers=billing_key
    )
    amount = await client.post(BASE, json={"measure": "amount", "value": 25}, headers=billing_key)

    assert units.status_code == 201, units.text
    assert amount.status_code == 201, amount.text
    made = units.json()
    assert {k: made[k] for k in ("account_id", "metric_id", "measure", "enabled")} == {
        "account_id": "home-1",
        "metric_id": "kwh",
        "measure": "units",
        "enabled": True,
    }
    assert made["value"] == "10" and made["last_fired"] is None
    assert [(t["metric_id"], t["measure"], t["value"]) for t in await listed(client)] == [
        ("kwh", "units", "10"),
        (None, "amount", "25"),
    ]

    await billing.send(reading("meter-1", utc(2026, 11, 3), "12.5"))
    await check_thresholds(billing.db, utc(2026, 11, 4))
    fired = (await listed(client))[0]["last_fired"]
    assert fired["period"] == "2026-11" and fired["observed"] == "12.5"

    removed = await client.delete(f"/v1/thresholds/{made['id']}", headers=billing_key)
    again = await client.delete(f"/v1/thresholds/{made['id']}", headers=billing_key)

    assert removed.status_code == 204  # with its firing
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "threshold_not_found"
    assert [t["id"] for t in await listed(client)] == [amount.json()["id"]]


async def test_bad_thresholds_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, billing: Billing
) -> None:
    await billing.account("home-1")
    await billing.account("bare", plan=None)
    headers = await key_headers(billing.db, "billing")
    refusals: list[tuple[str, dict[str, Any], int, str]] = [
        (BASE, {"metric_id": "water", "measure": "units", "value": "1"}, 422, "water"),
        (BASE, {"measure": "units", "value": "1"}, 422, "needs a metric"),
        (BASE, {"metric_id": "kwh", "measure": "units", "value": "0"}, 422, "value"),
        (BASE, {"metric_id": "kwh", "measure": "units", "value": "-3"}, 422, "value"),
        (BASE, {"metric_id": "kwh", "measure": "units", "value": 1.5}, 422, "float"),
        (BASE, {"metric_id": "kwh", "measure": "units", "value": "1" * 31}, 422, "digits"),
        (BASE, {"metric_id": "kwh", "measure": "units", "value": "NaN"}, 422, "value"),
        (BASE, {"metric_id": "kwh", "measure": "liters", "value": "1"}, 422, "measure"),
        (BASE, {"metric_id": "kwh", "measure": "units", "value": "1", "x": 1}, 422, "x"),
        (BASE, {"metric_id": "Bad Id!", "measure": "units", "value": "1"}, 422, "metric_id"),
        (
            "/v1/accounts/bare/thresholds",
            {"metric_id": "kwh", "measure": "units", "value": "1"},
            422,
            "no plan",
        ),
        ("/v1/accounts/nobody/thresholds", {"measure": "amount", "value": "1"}, 404, "nobody"),
        (
            "/v1/accounts/" + "a" * 65 + "/thresholds",
            {"measure": "amount", "value": "1"},
            422,
            "account_id",
        ),
    ]
    for path, body, status, named in refusals:
        response = await client.post(path, json=body, headers=headers)
        assert response.status_code == status, (body, response.text)
        assert named in response.text, (body, response.text)
        assert set(response.json()["error"]) == {"id", "code", "message", "detail"}
    assert await listed(client) == []
    assert await listed(client, "/v1/accounts/bare/thresholds") == []

    unknown = await client.get("/v1/accounts/nobody/thresholds", headers=READER)
    too_big = await client.delete(f"/v1/thresholds/{2**63}", headers=headers)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "account_not_found"
    assert too_big.status_code == 422


async def test_an_account_holds_a_bounded_number_of_thresholds(
    client: httpx.AsyncClient, billing: Billing
) -> None:
    await billing.account("home-1")
    headers = await key_headers(billing.db, "billing")
    for n in range(MAX_PER_ACCOUNT):
        made = await client.post(
            BASE, json={"measure": "amount", "value": str(n + 1)}, headers=headers
        )
        assert made.status_code == 201

    over = await client.post(BASE, json={"measure": "amount", "value": "1"}, headers=headers)

    assert over.status_code == 422 and str(MAX_PER_ACCOUNT) in over.json()["error"]["message"]
    assert len(await listed(client)) == MAX_PER_ACCOUNT


async def test_a_viewer_reads_but_cannot_add_or_remove(
    client: httpx.AsyncClient, billing: Billing
) -> None:
    await billing.account("home-1")
    body = {"measure": "amount", "value": "5"}

    refused = await client.post(BASE, json=body, headers=READER)
    removal = await client.delete("/v1/thresholds/1", headers=READER)

    assert refused.status_code == 403 and removal.status_code == 403
    assert await listed(client) == []


async def test_a_paused_threshold_does_not_fire_until_enabled(
    client: httpx.AsyncClient, billing: Billing
) -> None:
    await billing.account("home-1")
    await billing.device("meter-1", "meter", "home-1")
    billing_key = await key_headers(billing.db, "billing")
    made = await client.post(
        BASE, json={"metric_id": "kwh", "measure": "units", "value": "10"}, headers=billing_key
    )
    threshold_id = made.json()["id"]

    paused = await client.post(f"/v1/thresholds/{threshold_id}/disable", headers=billing_key)
    viewer = await client.post(f"/v1/thresholds/{threshold_id}/enable", headers=READER)
    unknown = await client.post("/v1/thresholds/999999/enable", headers=billing_key)

    assert paused.status_code == 200 and paused.json()["enabled"] is False
    assert viewer.status_code == 403
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "threshold_not_found"
    await billing.send(reading("meter-1", utc(2026, 11, 3), "12.5"))
    await check_thresholds(billing.db, utc(2026, 11, 4))
    assert (await listed(client))[0]["last_fired"] is None  # paused: not checked

    resumed = await client.post(f"/v1/thresholds/{threshold_id}/enable", headers=billing_key)
    assert resumed.status_code == 200 and resumed.json()["enabled"] is True
    await check_thresholds(billing.db, utc(2026, 11, 5))
    fired = (await listed(client))[0]["last_fired"]
    assert fired is not None and fired["period"] == "2026-11"
