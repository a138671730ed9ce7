"""The devices pages: the list (search by id or name), a device's twin, its sessions on a
timeline with their close reasons, and its events with their place in the gateway's chain (a
tampered link shows)."""

import re
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from sqlalchemy import update

from cloud.console import devices_reads
from cloud.db import Database
from cloud.ingest.models import StoredEvent
from tests.cloud.conftest import READER, http_client
from tests.cloud.console.accounts_seed import ACCOUNT, GATEWAY, seed_account
from tests.cloud.console.helpers import add_users, logged_in


async def test_the_device_page_shows_the_twin_sessions_and_chained_events(
    app: FastAPI, db: Database
) -> None:
    await add_users(db)
    seeded = await seed_account(db, now=datetime.now(UTC))
    async with http_client(app) as client:
        await logged_in(client, "viewer")
        every = (await client.get("/console/devices")).text
        meters = (await client.get("/console/devices?q=METER")).text
        too_long = await client.get("/console/devices", params={"q": "x" * 65})
        camera = (await client.get("/console/devices/cam-1")).text
        meter = (await client.get("/console/devices/meter-1")).text
        twin = (await client.get("/v1/devices/cam-1/twin", headers=READER)).json()
        sessions = (await client.get("/v1/devices/cam-1/sessions", headers=READER)).json()

    assert _devices(every) == ["cam-1", "meter-1", "old-meter"]
    assert _devices(meters) == ["meter-1", "old-meter"]
    assert too_long.status_code == 422
    assert _field(camera, "twin-gateway") == GATEWAY == twin["gateway_id"]
    assert _field(camera, "twin-state") == twin["state"] == "inactive"
    assert f'href="/console/accounts/{ACCOUNT}"' in camera
    assert "Times in Europe/Berlin" in camera
    assert re.findall(r'class="channel-state">([^<]+)<', camera) == ["inactive"]
    assert [s["close_reason"] for s in sessions] == ["deactivated"]
    assert re.findall(r'class="close-reason">([^<]+)<', camera) == ["deactivated"]
    assert re.findall(r'<g class="span" data-row="video" data-label="([^"]+)"', camera) == [
        "deactivated"
    ]
    meter_seqs = [e.seq for e in seeded.events if e.device_id == "meter-1"]
    assert _seqs(meter) == sorted(meter_seqs, reverse=True)  # newest first
    assert _chain(meter) == ["links"] * 3
    first = next(e for e in seeded.events if e.seq == 1)
    assert f'title="{first.hash}">{first.hash[:12]}<' in (camera + meter)


async def test_a_tampered_prev_hash_shows_as_broken_and_pages_go_back_by_seq(
    app: FastAPI, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_users(db)
    seeded = await seed_account(db, now=datetime.now(UTC))
    meter_seqs = sorted((e.seq for e in seeded.events if e.device_id == "meter-1"), reverse=True)
    async with db.transaction(write=True) as session:
        await session.execute(
            update(StoredEvent)
            .where(StoredEvent.gateway_id == GATEWAY, StoredEvent.seq == meter_seqs[0])
            .values(prev_hash="f" * 64)
        )
    monkeypatch.setattr(devices_reads, "EVENT_PAGE", 2)
    async with http_client(app) as client:
        await logged_in(client, "viewer")
        newest = (await client.get("/console/devices/meter-1")).text
        older = (await client.get(f"/console/devices/meter-1?before={meter_seqs[1]}")).text
        bad_range = await client.get("/console/devices/meter-1?from=2026-01-01T00:00:00Z")
        naive = await client.get("/console/devices/meter-1?from=2026-01-01T00:00:00")
        unknown = await client.get("/console/devices/nobody")

    assert _seqs(newest) == meter_seqs[:2]
    assert _chain(newest) == ["broken", "links"]
    assert f"before={meter_seqs[1]}" in newest
    assert _seqs(older) == meter_seqs[2:] and _chain(older) == ["links"]
    assert 'id="older"' not in older
    assert bad_range.status_code == 422 and naive.status_code == 422
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "device_twin_not_found"


def _field(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert found, element_id
    return found[1]


def _seqs(html: str) -> list[int]:
    return [int(seq) for seq in re.findall(r'class="num seq">(\d+)<', html)]


def _chain(html: str) -> list[str]:
    return re.findall(r'class="chain chain-\w+">([^<]+)<', html)


def _devices(html: str) -> list[str]:
    return re.findall(r'<a class="device" href="/console/devices/[^"]+">([^<]+)<', html)
