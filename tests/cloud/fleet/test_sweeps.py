"""The silence and offline sweeps: incidents opened once, resolved by the next report, webhook
messages written with them (both backends)."""

from datetime import UTC, datetime, timedelta

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.catalog import devices
from cloud.db import Database
from cloud.direct.mapping import SourceMapping
from cloud.direct.schemas import SourceCreate
from cloud.direct.service import add_source
from cloud.fleet.sweeps import sweep_offline_gateways, sweep_silent_devices
from cloud.gateways.enrollment import revoke_gateway
from cloud.settings import Settings
from cloud.wiring import jobs
from shared.events import EventKind
from tests.cloud.conftest import GATEWAY, JSON, READER, register
from tests.cloud.fleet.conftest import (
    Chain,
    add_endpoint,
    body,
    event,
    heartbeat,
    incidents,
    messages,
    send_heartbeat,
)
from tests.support.batches import batch_body

OFFLINE_AFTER = timedelta(minutes=5)


async def catalog(db: Database) -> None:
    """`meter` devices report every 60 s; `panel` devices have no interval (never checked)."""
    async with db.transaction(write=True) as session:
        await devices.create_profile(
            session=session, profile_id="meter", name="Meter", expected_interval_seconds=60
        )
        await devices.create_profile(session=session, profile_id="panel", name="Panel")
        for device_id, profile in (("m-1", "meter"), ("m-2", "meter"), ("p-1", "panel")):
            await devices.create_device(
                session=session, device_id=device_id, name=device_id, profile_id=profile
            )
        await devices.create_device(  # catalogued, never heard: not silent
            session=session, device_id="m-never", name="m-never", profile_id="meter"
        )


def ping(n: int, device_id: str) -> object:
    return event(n, device_id=device_id, name="tick", kind=EventKind.ACTIVITY, quantity="1")


async def test_silence_sweep_opens_once_and_data_coming_back_resolves(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    await catalog(db)
    await add_endpoint(db, "incident.opened", "incident.resolved")
    chain = Chain(gateway_key)
    await chain.send(client, [ping(1, "m-1"), ping(2, "m-2"), ping(3, "p-1")])
    now = datetime.now(UTC)

    early = await sweep_silent_devices(db, now + timedelta(seconds=30))
    assert (early.flagged, early.opened) == (0, 0)

    report = await sweep_silent_devices(db, now + timedelta(seconds=90))
    assert (report.flagged, report.opened) == (2, 2)  # not p-1 (no interval), not m-never
    again = await sweep_silent_devices(db, now + timedelta(seconds=120))
    assert (again.flagged, again.opened) == (0, 0)  # flagged once, not bumped

    silent = await incidents(db, "silent_device")
    assert [(i.device_id, i.state, i.gateway_id) for i in silent] == [
        ("m-1", "open", GATEWAY),
        ("m-2", "open", GATEWAY),
    ]
    shown = body(await client.get("/v1/devices/m-1/twin", headers=READER))
    assert shown["silent"] is True
    assert "silent_device" in [i["kind"] for i in shown["open_incidents"]]
    listed = body(await client.get("/v1/twins?silent=true", headers=READER))
    assert [t["device_id"] for t in listed["items"]] == ["m-1", "m-2"]

    await chain.send(client, [ping(5, "m-1")])  # m-1 is back

    states = {i.device_id: i.state for i in await incidents(db, "silent_device")}
    assert states == {"m-1": "resolved", "m-2": "open"}
    back = body(await client.get("/v1/devices/m-1/twin", headers=READER))
    assert back["silent"] is False
    assert "silent_device" not in [i["kind"] for i in back["open_incidents"]]
    sent = sorted(
        (kind, payload["device_id"])
        for kind, payload in await messages(db)
        if payload["kind"] == "silent_device"
    )
    assert sent == [
        ("incident.opened", "m-1"),
        ("incident.opened", "m-2"),
        ("incident.resolved", "m-1"),
    ]

    reopened = await sweep_silent_devices(db, datetime.now(UTC) + timedelta(seconds=90))
    assert (reopened.flagged, reopened.opened) == (1, 1)  # m-1 silent again: a new incident
    assert [(i.device_id, i.state) for i in await incidents(db, "silent_device")] == [
        ("m-1", "resolved"),
        ("m-2", "open"),
        ("m-1", "open"),
    ]


async def test_offline_then_online_by_batch_and_by_heartbeat(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    await add_endpoint(db, "gateway.offline", "gateway.online", "incident.opened")
    chain = Chain(gateway_key)
    await chain.send(client, [ping(1, "m-1")])
    now = datetime.now(UTC)

    assert (await sweep_offline_gateways(db, now, offline_after=OFFLINE_AFTER)).flagged == 0
    gone = await sweep_offline_gateways(db, now + 2 * OFFLINE_AFTER, offline_after=OFFLINE_AFTER)
    assert (gone.flagged, gone.opened) == (1, 1)
    again = await sweep_offline_gateways(db, now + 3 * OFFLINE_AFTER, offline_after=OFFLINE_AFTER)
    assert again.flagged == 0
    status = body(await client.get(f"/v1/gateways/{GATEWAY}", headers=READER))
    assert status["status"] == "offline"
    listed = body(await client.get("/v1/gateways?status=offline", headers=READER))
    assert [g["gateway_id"] for g in listed] == [GATEWAY]

    await chain.send(client, [ping(2, "m-1")])  # a batch sets it online

    assert body(await client.get(f"/v1/gateways/{GATEWAY}", headers=READER))["status"] == "online"
    assert [i.state for i in await incidents(db, "gateway_offline")] == ["resolved"]

    later = datetime.now(UTC) + 2 * OFFLINE_AFTER
    await sweep_offline_gateways(db, later, offline_after=OFFLINE_AFTER)
    accepted = await send_heartbeat(client, heartbeat(), gateway_key)  # so does a heartbeat
    assert accepted.status_code == 200, accepted.text
    assert body(await client.get(f"/v1/gateways/{GATEWAY}", headers=READER))["status"] == "online"
    assert [i.state for i in await incidents(db, "gateway_offline")] == ["resolved", "resolved"]

    # The sweeps ran at future times, so the rows are compared as a set, not by creation time.
    kinds = sorted(
        (kind, payload["gateway_id"])
        for kind, payload in await messages(db)
        if kind.startswith("gateway.") or payload["kind"] == "gateway_offline"
    )
    assert kinds == [
        ("gateway.offline", GATEWAY),
        ("gateway.offline", GATEWAY),
        ("gateway.online", GATEWAY),
        ("gateway.online", GATEWAY),
        ("incident.opened", GATEWAY),
        ("incident.opened", GATEWAY),
    ]


async def test_a_batch_of_duplicates_sets_an_offline_gateway_online(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    """A gateway re-sending what the collector already holds (its ack was lost) is alive."""
    chain = Chain(gateway_key)
    await chain.send(client, [ping(1, "m-1")])
    later = datetime.now(UTC) + 2 * OFFLINE_AFTER
    assert (await sweep_offline_gateways(db, later, offline_after=OFFLINE_AFTER)).flagged == 1

    resent = await client.post(
        "/v1/batches", content=batch_body(chain.sent, gateway_key), headers=JSON
    )

    assert resent.json()["stored"] == 0 and resent.json()["duplicates"] == 1
    assert body(await client.get(f"/v1/gateways/{GATEWAY}", headers=READER))["status"] == "online"
    assert [i.state for i in await incidents(db, "gateway_offline")] == ["resolved"]


async def test_direct_sources_are_not_listed_as_gateways(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    await Chain(gateway_key).send(client, [ping(1, "m-1")])
    rules = SourceMapping.model_validate(
        {
            "ce_sources": ["urn:test:bins"],
            "types": [{"type": "com.test.pour", "name": "pour", "kind": "activity"}],
        }
    )
    async with db.transaction(write=True) as session:
        await add_source(session=session, spec=SourceCreate(id="bins", mapping=rules))

    listed = body(await client.get("/v1/gateways", headers=READER))

    assert [g["gateway_id"] for g in listed] == [GATEWAY]  # not source:bins


async def test_revoked_and_silent_since_registration_gateways(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    other = Ed25519PrivateKey.generate()
    await register(db, "gw-other", other)
    await Chain(gateway_key).send(client, [ping(1, "m-1")])
    await Chain(other, gateway_id="gw-other").send(client, [ping(1, "m-9")])
    async with db.transaction(write=True) as session:
        await revoke_gateway(session=session, gateway_id="gw-other", reason="stolen")

    later = datetime.now(UTC) + 2 * OFFLINE_AFTER
    report = await sweep_offline_gateways(db, later, offline_after=OFFLINE_AFTER)

    assert report.flagged == 1  # the revoked gateway is not swept
    assert [i.gateway_id for i in await incidents(db, "gateway_offline")] == [GATEWAY]
    unknown = body(await client.get("/v1/gateways?status=unknown", headers=READER))
    assert unknown == []  # both reported once


async def test_the_jobs_are_wired_and_run_by_the_scheduler(db: Database) -> None:
    names = [job.name for job in jobs(Settings())]
    assert {"silent_devices", "offline_gateways"} <= set(names)
    fleet = [job for job in jobs(Settings()) if job.name in {"silent_devices", "offline_gateways"}]
    reports = [str(await job.run(db, datetime.now(UTC))) for job in fleet]
    assert reports == ["0 flagged, 0 incidents opened"] * 2
