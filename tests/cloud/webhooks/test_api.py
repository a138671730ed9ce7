"""The webhook API over the real app (ASGI), on both backends; a real receiver for replay."""

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from cloud.auth.service import create_api_key
from cloud.db import Database
from cloud.webhooks.delivery import deliver_due
from cloud.webhooks.models import WebhookDelivery, WebhookEndpoint
from cloud.webhooks.types import EventType
from tests.cloud.conftest import READER, error_code
from tests.cloud.webhooks.conftest import FAST, T0, emit_many, run_until_settled
from tests.cloud.webhooks.receiver import Receiver

URL = "http://127.0.0.1:9/hooks"


@pytest.fixture
async def admin(db: Database) -> dict[str, str]:
    """Headers holding an admin key."""
    async with db.transaction(write=True) as session:
        key = await create_api_key(session=session, name="ops", scope="admin")
    return {"Authorization": f"Bearer {key.secret}"}


@pytest.fixture
async def api(client: httpx.AsyncClient, admin: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """The ASGI client, sending the admin key."""
    client.headers.update(admin)
    yield client


async def _rows(db: Database) -> tuple[int, int]:
    async with db.transaction() as session:
        endpoints = await session.scalar(select(func.count()).select_from(WebhookEndpoint))
        sent = await session.scalar(select(func.count()).select_from(WebhookDelivery))
    return endpoints or 0, sent or 0


async def test_the_secret_is_answered_once_and_never_read_back(api: httpx.AsyncClient) -> None:
    made = await api.post(
        "/v1/webhooks/endpoints",
        json={"url": URL, "event_types": ["incident.opened", "gateway.offline"]},
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["secret"].startswith("whsec_") and len(body["secret"]) == 6 + 44
    assert body["event_types"] == ["gateway.offline", "incident.opened"] and body["enabled"]

    one = await api.get(f"/v1/webhooks/endpoints/{body['id']}")
    listed = await api.get("/v1/webhooks/endpoints")
    assert one.status_code == 200 and "secret" not in one.json()
    assert [item["id"] for item in listed.json()["endpoints"]] == [body["id"]]
    assert body["secret"] not in one.text + listed.text


async def test_disable_enable_and_delete(api: httpx.AsyncClient, db: Database) -> None:
    made = await api.post(
        "/v1/webhooks/endpoints", json={"url": URL, "event_types": ["incident.opened"]}
    )
    endpoint_id = made.json()["id"]

    disabled = await api.post(f"/v1/webhooks/endpoints/{endpoint_id}/disable")
    assert disabled.json()["enabled"] is False
    assert "disabled by" in disabled.json()["disabled_reason"]
    enabled = await api.post(f"/v1/webhooks/endpoints/{endpoint_id}/enable")
    assert enabled.json()["enabled"] is True and enabled.json()["disabled_reason"] is None

    await emit_many(db, 2)
    await deliver_due(db, T0, policy=FAST)  # port 9 refuses: two deliveries with a log
    deleted = await api.delete(f"/v1/webhooks/endpoints/{endpoint_id}")
    assert deleted.status_code == 200
    assert deleted.json() == {"id": endpoint_id, "deliveries_deleted": 2}
    gone = await api.get(f"/v1/webhooks/endpoints/{endpoint_id}")
    assert gone.status_code == 404 and error_code(gone) == "webhook_endpoint_not_found"
    assert await _rows(db) == (0, 0)


async def test_replay_over_the_api_sends_the_same_message_id_again(
    api: httpx.AsyncClient, db: Database
) -> None:
    async with Receiver(failing=True) as receiver:
        made = await api.post(
            "/v1/webhooks/endpoints", json={"url": receiver.url, "event_types": ["incident.opened"]}
        )
        endpoint_id, receiver.secret = made.json()["id"], made.json()["secret"]
        [message] = await emit_many(db, 1)
        await run_until_settled(db)  # 10 attempts of 500, then failed and the endpoint disabled

        failed = await api.get("/v1/webhooks/deliveries", params={"state": "failed"})
        [entry] = failed.json()["deliveries"]
        assert entry["message_id"] == message and entry["attempts"] == FAST.max_attempts
        assert len(entry["log"]) == FAST.max_attempts * FAST.quick_tries
        assert {attempt["status_code"] for attempt in entry["log"]} == {500}

        pending = await api.post(f"/v1/webhooks/deliveries/{entry['id']}/replay")
        assert pending.status_code == 202, pending.text
        assert pending.json()["message_id"] == message and pending.json()["state"] == "pending"
        again = await api.post(f"/v1/webhooks/deliveries/{entry['id']}/replay")
        assert again.status_code == 409 and error_code(again) == "delivery_not_replayable"

        receiver.failing = False
        await api.post(f"/v1/webhooks/endpoints/{endpoint_id}/enable")
        report = await deliver_due(db, T0 + timedelta(days=30), policy=FAST)
        assert report.succeeded == 1

        # A succeeded delivery may be replayed too: the receiver sees the same id twice.
        assert (await api.post(f"/v1/webhooks/deliveries/{entry['id']}/replay")).status_code == 202
        await deliver_due(db, T0 + timedelta(days=31), policy=FAST)

    assert receiver.ids() == [message, message]
    listed = await api.get("/v1/webhooks/deliveries", params={"endpoint": endpoint_id})
    [done] = listed.json()["deliveries"]
    assert done["state"] == "succeeded" and done["log"][-1]["status_code"] == 200


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"url": "ftp://example.com/hook", "event_types": ["incident.opened"]}, "url"),
        ({"url": "http:///nohost", "event_types": ["incident.opened"]}, "url"),
        ({"url": "http://exa mple.com/", "event_types": ["incident.opened"]}, "url"),
        ({"url": "http://example.com:99999/", "event_types": ["incident.opened"]}, "url"),
        ({"url": "http://xn--/", "event_types": ["incident.opened"]}, "url"),
        ({"url": "https://x.example/" + "a" * 2048, "event_types": ["incident.opened"]}, "url"),
        ({"url": URL, "event_types": ["incident.exploded"]}, "event_types"),
        ({"url": URL, "event_types": []}, "event_types"),
        ({"url": URL}, "event_types"),
        ({"url": URL, "event_types": ["incident.opened"], "description": "x" * 501}, "description"),
        ({"url": "http://example.com/\u0000", "event_types": ["incident.opened"]}, "url"),
    ],
)
async def test_bad_endpoints_are_refused_with_a_json_error_and_nothing_stored(
    api: httpx.AsyncClient, db: Database, body: dict[str, object], where: str
) -> None:
    answer = await api.post("/v1/webhooks/endpoints", json=body)

    assert answer.status_code == 422, answer.text
    assert error_code(answer) == "invalid_parameters"
    assert where in answer.json()["error"]["message"]
    assert await _rows(db) == (0, 0)


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("GET", "/v1/webhooks/endpoints/77", "webhook_endpoint_not_found"),
        ("DELETE", "/v1/webhooks/endpoints/77", "webhook_endpoint_not_found"),
        ("POST", "/v1/webhooks/endpoints/77/enable", "webhook_endpoint_not_found"),
        ("POST", "/v1/webhooks/endpoints/77/disable", "webhook_endpoint_not_found"),
        ("POST", "/v1/webhooks/deliveries/77/replay", "webhook_delivery_not_found"),
        ("GET", "/v1/webhooks/endpoints/0", "invalid_parameters"),
        ("GET", "/v1/webhooks/endpoints/abc", "invalid_parameters"),
        ("POST", f"/v1/webhooks/deliveries/{2**63}/replay", "invalid_parameters"),
        ("GET", "/v1/webhooks/deliveries?state=lost", "invalid_parameters"),
        ("GET", "/v1/webhooks/deliveries?limit=1001", "invalid_parameters"),
        ("GET", "/v1/webhooks/deliveries?endpoint=-1", "invalid_parameters"),
    ],
)
async def test_unknown_ids_and_bad_parameters_answer_json_errors(
    api: httpx.AsyncClient, method: str, path: str, code: str
) -> None:
    answer = await api.request(method, path)

    assert answer.status_code in (404, 422), answer.text
    assert error_code(answer) == code


async def test_a_viewer_key_may_not_read_endpoints(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/webhooks/endpoints", headers=READER)

    assert answer.status_code == 403 and error_code(answer) == "forbidden"


async def test_event_types_enum_matches_the_contract() -> None:
    assert {kind.value for kind in EventType} == {
        "incident.opened",
        "incident.resolved",
        "gateway.offline",
        "gateway.online",
        "usage.threshold_reached",
        "invoice.drafted",
        "invoice.finalized",
        "credit_note.issued",  # issue 15: a credit note is issued final
    }
