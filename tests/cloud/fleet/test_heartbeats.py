"""POST /v1/gateways/{id}/heartbeats: accepted, refused with nothing stored, low battery."""

import gzip
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.db import Database
from cloud.gateways.enrollment import revoke_gateway
from shared.bounds import MAX_HEARTBEAT_BYTES
from shared.heartbeat import sign_heartbeat
from tests.cloud.conftest import GATEWAY, JSON, READER, error_code, register
from tests.cloud.fleet.conftest import (
    add_endpoint,
    body,
    device_report,
    envelope,
    heartbeat,
    incidents,
    messages,
    send_heartbeat,
    twin_rows,
)


async def test_heartbeat_is_kept_and_copied_into_device_twins(
    client: httpx.AsyncClient, gateway_key: Ed25519PrivateKey
) -> None:
    beat = heartbeat(
        backlog=42,
        devices=[
            device_report("lock-1", battery=87, firmware="2.4.1", offset=-320),
            device_report("panel-1", failures=3),
        ],
    )
    response = await send_heartbeat(client, beat, gateway_key)
    assert response.status_code == 200, response.text
    assert body(response)["current"] is True

    gateway = body(await client.get(f"/v1/gateways/{GATEWAY}", headers=READER))
    assert gateway["status"] == "online" and gateway["last_heartbeat_at"] is not None
    assert gateway["last_batch_at"] is None
    assert gateway["heartbeat"]["outbox"]["backlog_events"] == 42
    assert gateway["heartbeat"] == beat.content()

    lock = body(await client.get("/v1/devices/lock-1/twin", headers=READER))
    assert (lock["battery"], lock["firmware"], lock["clock_offset_ms"]) == (87, "2.4.1", -320)
    assert lock["health"]["state"] == "ok" and lock["last_received_at"] is None
    panel = body(await client.get("/v1/devices/panel-1/twin", headers=READER))
    assert panel["health"]["errors"] == {"timeout": 3} and panel["battery"] is None


async def test_an_older_heartbeat_is_accepted_and_changes_nothing(
    client: httpx.AsyncClient, gateway_key: Ed25519PrivateKey
) -> None:
    now = datetime.now(UTC)
    newer = heartbeat(sent_at=now, devices=[device_report("lock-1", battery=80)])
    older = heartbeat(
        sent_at=now - timedelta(seconds=30), devices=[device_report("lock-1", battery=10)]
    )
    assert (await send_heartbeat(client, newer, gateway_key)).status_code == 200

    response = await send_heartbeat(client, older, gateway_key)

    assert response.status_code == 200 and body(response)["current"] is False
    gateway = body(await client.get(f"/v1/gateways/{GATEWAY}", headers=READER))
    assert gateway["heartbeat"] == newer.content()
    assert body(await client.get("/v1/devices/lock-1/twin", headers=READER))["battery"] == 80


async def test_later_heartbeats_keep_values_they_do_not_report(
    client: httpx.AsyncClient, gateway_key: Ed25519PrivateKey
) -> None:
    now = datetime.now(UTC)
    first = heartbeat(
        sent_at=now - timedelta(seconds=5),
        devices=[device_report("lock-1", battery=80, firmware="1.0")],
    )
    second = heartbeat(sent_at=now, devices=[device_report("lock-1", failures=1)])
    for beat in (first, second):
        assert (await send_heartbeat(client, beat, gateway_key)).status_code == 200
    lock = body(await client.get("/v1/devices/lock-1/twin", headers=READER))
    assert (lock["battery"], lock["firmware"]) == (80, "1.0")
    assert lock["health"]["consecutive_failures"] == 1


def _signed(beat_key: Ed25519PrivateKey, **changes: object) -> bytes:
    document = sign_heartbeat(beat_key, heartbeat(devices=[device_report("lock-1", battery=5)]))
    document["heartbeat"].update(changes)
    return orjson.dumps(document)


REFUSALS = {
    "bad signature": (401, "invalid_heartbeat_signature"),
    "stale": (401, "stale_heartbeat"),
    "from the future": (401, "stale_heartbeat"),
    "unknown gateway": (403, "unknown_gateway"),
    "another gateway's id": (422, "invalid_heartbeat"),
    "not json": (422, "invalid_heartbeat"),
    "wrong shape": (422, "invalid_heartbeat"),
    "tampered": (401, "invalid_heartbeat_signature"),
    "oversized": (413, "body_too_large"),
    "oversized gzip": (413, "body_too_large"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
async def test_refused_heartbeats_store_nothing(
    case: str, client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    now = datetime.now(UTC)
    path, headers = f"/v1/gateways/{GATEWAY}/heartbeats", dict(JSON)
    beat = heartbeat(devices=[device_report("lock-1", battery=5)])
    if case == "bad signature":
        content = envelope(beat, Ed25519PrivateKey.generate())
    elif case == "stale":
        content = envelope(heartbeat(sent_at=now - timedelta(seconds=301)), gateway_key)
    elif case == "from the future":
        content = envelope(heartbeat(sent_at=now + timedelta(seconds=400)), gateway_key)
    elif case == "unknown gateway":
        path = "/v1/gateways/gw-nobody/heartbeats"
        content = envelope(heartbeat(gateway_id="gw-nobody"), gateway_key)
    elif case == "another gateway's id":
        await register(db, "gw-two", gateway_key)
        path = "/v1/gateways/gw-two/heartbeats"
        content = envelope(beat, gateway_key)
    elif case == "not json":
        content = b"{heartbeat"
    elif case == "wrong shape":
        content = orjson.dumps({"heartbeat": {"gateway_id": GATEWAY}, "extra": 1})
    elif case == "tampered":
        content = _signed(gateway_key, uptime_s=1)
    elif case == "oversized":
        content = b" " * (MAX_HEARTBEAT_BYTES + 1)
    else:
        content = gzip.compress(envelope(beat, gateway_key) + b" " * MAX_HEARTBEAT_BYTES)
        headers["Content-Encoding"] = "gzip"

    response = await client.post(path, content=content, headers=headers)

    status, code = REFUSALS[case]
    assert (response.status_code, error_code(response)) == (status, code), response.text
    assert response.json()["error"]["message"]
    assert await twin_rows(db) == (0, 0)
    assert await incidents(db, "low_battery") == []


async def test_a_revoked_gateway_is_refused(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    async with db.transaction(write=True) as session:
        await revoke_gateway(session=session, gateway_id=GATEWAY, reason="decommissioned")
    response = await send_heartbeat(client, heartbeat(), gateway_key)
    assert (response.status_code, error_code(response)) == (403, "gateway_revoked")
    assert await twin_rows(db) == (0, 0)


async def test_low_battery_opens_once_and_resolves_when_back_above(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    await add_endpoint(db, "incident.opened", "incident.resolved")
    start = datetime.now(UTC) - timedelta(seconds=60)
    levels = [50, 15, 12, 25, 19]
    for n, level in enumerate(levels):
        beat = heartbeat(
            sent_at=start + timedelta(seconds=n),
            devices=[device_report("lock-1", battery=level), device_report("lock-2", battery=90)],
        )
        assert (await send_heartbeat(client, beat, gateway_key)).status_code == 200
        if level == 12:
            low = body(await client.get("/v1/twins?low_battery=true", headers=READER))
            assert [t["device_id"] for t in low["items"]] == ["lock-1"]

    found = await incidents(db, "low_battery")
    assert [(i.device_id, i.state) for i in found] == [("lock-1", "resolved"), ("lock-1", "open")]
    assert found[0].evidence is not None and found[0].evidence["battery"] == 15
    assert [kind for kind, _ in await messages(db)] == [
        "incident.opened",
        "incident.resolved",
        "incident.opened",
    ]
    shown = body(await client.get("/v1/devices/lock-1/twin", headers=READER))
    assert shown["low_battery"] is True and shown["battery"] == 19
    fine = body(await client.get("/v1/twins?low_battery=false", headers=READER))
    assert [t["device_id"] for t in fine["items"]] == ["lock-2"]
