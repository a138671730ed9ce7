"""`tollgate-cloud device show ID` and `gateway show` with the twin; failures exit 2."""

import asyncio
from datetime import UTC, datetime

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.cli import main
from cloud.db import Database
from cloud.fleet.heartbeats import store_heartbeat
from cloud.schema import migrate
from tests.cloud.conftest import register
from tests.cloud.fleet.conftest import device_report, heartbeat
from tests.cloud.test_cli import plain_url


async def _heard(db_url: str) -> None:
    """A migrated database where gateway gw-1 sent a heartbeat reporting lock-1."""
    async with Database(db_url) as db:
        await migrate(db.engine)
        await register(db, "gw-1", Ed25519PrivateKey.generate())
        beat = heartbeat(gateway_id="gw-1", devices=[device_report("lock-1", battery=9)])
        await db.run_write(
            lambda session: store_heartbeat(
                session, beat, received_at=datetime.now(UTC), low_battery=20
            )
        )


async def test_device_show_prints_the_twin(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    await _heard(db_url)
    url = plain_url(db_url)

    assert await _run(["device", "show", "lock-1", "--db", url]) == 0
    shown = orjson.loads(capsys.readouterr().out)
    assert shown["device_id"] == "lock-1" and shown["battery"] == 9
    assert shown["low_battery"] is True
    assert [i["kind"] for i in shown["open_incidents"]] == ["low_battery"]

    assert await _run(["gateway", "show", "--id", "gw-1", "--db", url]) == 0
    gateway = orjson.loads(capsys.readouterr().out)
    assert gateway["status"] == "online" and gateway["heartbeat"]["gateway_id"] == "gw-1"


async def test_device_show_of_an_unknown_device_exits_2(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await _heard(db_url)

    assert await _run(["device", "show", "nobody", "--db", plain_url(db_url)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tollgate-cloud: error: ") and "nobody" in err
    assert len(err.strip().splitlines()) == 1


async def _run(argv: list[str]) -> int:
    """`main(argv)` in a worker thread (it runs its own event loop)."""
    return await asyncio.to_thread(main, argv)
