"""Device and gateway twins after real signed batches, read through the API (both backends)."""

from datetime import UTC, datetime, timedelta

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from cloud.catalog import accounts, bindings, devices
from cloud.db import Database
from cloud.gateways.enrollment import add_site
from shared.events import EventKind
from tests.cloud.conftest import GATEWAY, READER, error_code, register
from tests.cloud.fleet.conftest import Chain, body, event, twin_rows
from tests.support.batches import T0

A, D, ACT, MEAS = (
    EventKind.ACTIVATION,
    EventKind.DEACTIVATION,
    EventKind.ACTIVITY,
    EventKind.MEASUREMENT,
)


def at(n: int) -> str:
    return (T0 + timedelta(seconds=n)).isoformat(timespec="microseconds").replace("+00:00", "Z")


def moment(text: object) -> datetime:
    assert isinstance(text, str)
    return datetime.fromisoformat(text)


def counter(n: int, raw: int, previous: int, **flags: bool) -> object:
    attrs = {"table": "holding", "address": 4, "previous": previous, "raw": raw, **flags}
    return event(
        n, device_id="meter-1", name="energy", kind=ACT, quantity="5", unit="kWh", attrs=attrs
    )


async def twin(client: httpx.AsyncClient, device_id: str) -> dict[str, object]:
    response = await client.get(f"/v1/devices/{device_id}/twin", headers=READER)
    assert response.status_code == 200, response.text
    found: dict[str, object] = body(response)
    return found


async def test_twins_after_real_batches(
    client: httpx.AsyncClient, gateway_key: Ed25519PrivateKey
) -> None:
    chain = Chain(gateway_key)
    await chain.send(
        client,
        [
            event(1, device_id="panel-1", name="armed", kind=A, channel="1"),
            event(2, device_id="panel-1", name="armed", kind=A, channel="2"),
            event(3, device_id="meter-1", name="power", kind=MEAS, quantity="1.50", unit="kW"),
            counter(4, 100, 95),
            event(
                5,
                device_id="lock-7",
                name="closed",
                kind=D,
                quantity="12.5",
                unit="kg",
                attrs={"lock_id": 7, "clock_offset_ms": -1500},
            ),
        ],
    )
    await chain.send(
        client,
        [
            event(6, device_id="panel-1", name="disarmed", kind=D, channel="2"),
            event(7, device_id="panel-1", name="armed", kind=A, channel="1"),
            event(0, device_id="panel-1", name="disarmed", kind=D, channel="1"),  # late
            event(8, device_id="meter-1", name="power", kind=MEAS, quantity="2.25", unit="kW"),
            counter(9, 3, 65530, wrapped=True),
            counter(10, 2, 50000, reset=True),
        ],
    )

    panel = await twin(client, "panel-1")
    assert panel["heard"] is True and panel["gateway_id"] == GATEWAY
    assert panel["state"] == "active"
    assert panel["channels"] == {
        "1": {"state": "active", "since": at(1), "event": "armed", "at": at(7)},
        "2": {"state": "inactive", "since": at(6), "event": "disarmed", "at": at(6)},
    }
    assert moment(panel["last_occurred_at"]) == T0 + timedelta(seconds=7)
    assert panel["last_seq"] == 8
    assert panel["last_received_at"] is not None and panel["profile_id"] is None

    meter = await twin(client, "meter-1")
    assert meter["points"]["power"] == {"quantity": "2.25", "unit": "kW", "at": at(8)}
    assert meter["counter"] == {
        "energy": {"raw": 2, "at": at(10), "last_wrap_at": at(9), "last_reset_at": at(10)}
    }
    lock = await twin(client, "lock-7")
    assert lock["clock_offset_ms"] == -1500 and lock["state"] == "inactive"
    assert lock["points"]["closed"]["quantity"] == "12.5"

    gateway = body(await client.get(f"/v1/gateways/{GATEWAY}", headers=READER))
    assert gateway["status"] == "online" and gateway["last_batch_at"] is not None
    assert gateway["last_heartbeat_at"] is None and gateway["heartbeat"] is None
    assert gateway["last_seq"] == 11 and gateway["event_count"] == 11  # the moved status


async def test_a_refused_batch_leaves_no_twin(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    chain = Chain(Ed25519PrivateKey.generate())  # not the registered key: 401
    events = [event(1, device_id="panel-1", name="armed", kind=A, channel="1")]
    try:
        await chain.send(client, events)
    except AssertionError:
        pass
    else:  # pragma: no cover - the collector must refuse it
        raise AssertionError("a batch signed by another key was accepted")
    assert await twin_rows(db) == (0, 0)
    missing = await client.get("/v1/devices/panel-1/twin", headers=READER)
    assert missing.status_code == 404 and error_code(missing) == "device_twin_not_found"


async def test_twin_shows_the_account_bound_now_and_catalog_devices_never_heard(
    app: FastAPI, client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    now = datetime.now(UTC)
    async with db.transaction(write=True) as session:
        await add_site(session=session, site_id="site-a", name="Site A")
        await devices.create_profile(session=session, profile_id="lock", name="Lock")
        for device_id in ("lock-1", "lock-2"):
            await devices.create_device(
                session=session,
                device_id=device_id,
                name=device_id,
                profile_id="lock",
                site_id="site-a",
            )
        for account_id in ("acme", "globex"):
            await accounts.create_account(
                session=session,
                account_id=account_id,
                name=account_id,
                kind="company",
                currency="EUR",
                time_zone="Europe/Berlin",
            )
        await bindings.create_binding(
            session=session,
            device_id="lock-1",
            account_id="acme",
            valid_from=now - timedelta(days=30),
        )
    await Chain(gateway_key).send(client, [event(1, device_id="lock-1", name="opened", kind=A)])

    shown = await twin(client, "lock-1")
    assert shown["account_id"] == "acme" and shown["site_id"] == "site-a"
    assert shown["profile_id"] == "lock"

    async with db.transaction(write=True) as session:  # moved to another account from now on
        await bindings.create_binding(
            session=session,
            device_id="lock-1",
            account_id="globex",
            valid_from=datetime.now(UTC) - timedelta(seconds=1),
            move=True,
        )
    assert (await twin(client, "lock-1"))["account_id"] == "globex"

    never = await twin(client, "lock-2")
    assert never["heard"] is False and never["last_received_at"] is None
    assert never["account_id"] is None and never["channels"] == {}


async def test_twin_routes_bound_their_input(client: httpx.AsyncClient) -> None:
    long_id = "d" * 129
    response = await client.get(f"/v1/devices/{long_id}/twin", headers=READER)
    assert response.status_code == 422
    for query in ("limit=0", "limit=1001", "state=armed", f"cursor={'c' * 129}", "silent=maybe"):
        answer = await client.get(f"/v1/twins?{query}", headers=READER)
        assert answer.status_code == 422, query
        assert answer.json()["error"]["code"] == "invalid_parameters"
    assert (await client.get("/v1/twins")).status_code == 401


async def test_twin_list_filters_and_keyset_pages(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    now = datetime.now(UTC)
    async with db.transaction(write=True) as session:
        await add_site(session=session, site_id="site-b", name="Site B")
        await devices.create_profile(session=session, profile_id="meter", name="Meter")
        await devices.create_device(
            session=session, device_id="dev-b", name="b", profile_id="meter", site_id="site-b"
        )
        await accounts.create_account(
            session=session,
            account_id="acme",
            name="Acme",
            kind="company",
            currency="EUR",
            time_zone="UTC",
        )
        await bindings.create_binding(
            session=session,
            device_id="dev-b",
            account_id="acme",
            valid_from=now - timedelta(days=1),
        )
    other = Ed25519PrivateKey.generate()
    await register(db, "gw-two", other)
    await Chain(gateway_key).send(
        client,
        [
            event(1, device_id="dev-a", name="on", kind=A),
            event(2, device_id="dev-b", name="off", kind=D),
            event(3, device_id="dev-c", name="tick", kind=ACT, quantity="1"),
        ],
    )
    await Chain(other, gateway_id="gw-two").send(
        client, [event(1, device_id="dev-d", name="on", kind=A)]
    )

    async def ids(query: str) -> list[str]:
        response = await client.get(f"/v1/twins?{query}", headers=READER)
        assert response.status_code == 200, response.text
        return [item["device_id"] for item in body(response)["items"]]

    assert await ids("") == ["dev-a", "dev-b", "dev-c", "dev-d"]
    assert await ids("state=active") == ["dev-a", "dev-d"]
    assert await ids("state=inactive") == ["dev-b"]
    assert await ids("site=site-b") == ["dev-b"]
    assert await ids("account=acme") == ["dev-b"]
    assert await ids("gateway=gw-two") == ["dev-d"]
    assert await ids("silent=false&gateway=gw-two") == ["dev-d"]
    assert await ids("silent=true") == []

    first = body(await client.get("/v1/twins?limit=3", headers=READER))
    assert [t["device_id"] for t in first["items"]] == ["dev-a", "dev-b", "dev-c"]
    assert first["next_cursor"] == "dev-c"
    rest = body(
        await client.get(f"/v1/twins?limit=3&cursor={first['next_cursor']}", headers=READER)
    )
    assert [t["device_id"] for t in rest["items"]] == ["dev-d"] and rest["next_cursor"] is None

    online = body(await client.get("/v1/gateways?status=online", headers=READER))
    assert [g["gateway_id"] for g in online] == ["gw-two", GATEWAY]
    paged = body(await client.get("/v1/gateways?limit=1&cursor=gw-two", headers=READER))
    assert [g["gateway_id"] for g in paged] == [GATEWAY]
    assert (await client.get("/v1/gateways?status=lost", headers=READER)).status_code == 422
