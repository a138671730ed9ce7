"""Bus fixtures: the machine's single-node JetStream (replicas 1), a stream per test, PostgreSQL."""

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import nats
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from cloud.bus.connection import Bus, BusConfig, open_bus
from cloud.bus.direct import store_direct_message
from cloud.bus.sink import Sink
from cloud.db import Database
from cloud.settings import Settings
from tests.cloud.conftest import http_client, running_app

NATS_URL = os.environ.get("TOLLGATE_TEST_NATS", "nats://127.0.0.1:4222")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _nats_available() -> bool:
    async def probe() -> None:
        connection = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
        try:
            await connection.jetstream().account_info()
        finally:
            await connection.close()

    try:
        asyncio.run(probe())
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The machine's JetStream server; a failure under CI=true, a skip elsewhere."""
    if not _nats_available():
        if IN_CI:
            pytest.fail(f"NATS JetStream is required under CI=true but {NATS_URL} is down")
        pytest.skip(f"NATS JetStream not reachable at {NATS_URL}")
    return NATS_URL


@pytest.fixture
async def bus_settings(nats_url: str, postgres_url: str) -> AsyncIterator[Settings]:
    """Settings with a fresh database and a stream of this test's own, deleted afterwards."""
    stream = f"TEST_{uuid.uuid4().hex[:12].upper()}"
    settings = Settings(
        db_url=postgres_url, bus_url=nats_url, bus_partitions=4, bus_replicas=1, bus_stream=stream
    )
    yield settings
    connection = await nats.connect(nats_url)
    js = connection.jetstream()
    for name in (stream, f"KV_{stream}_REFUSALS"):
        with contextlib.suppress(Exception):
            await js.delete_stream(name)
    await connection.close()


@dataclass
class BusApp:
    """A collector on the bus, its database, the bus, and a way to run sinks."""

    app: FastAPI
    db: Database
    bus: Bus
    client: httpx.AsyncClient
    start_sink: Callable[[str], Sink]
    tasks: list["asyncio.Task[None]"]
    sinks: list[Sink]

    def check_sinks(self) -> None:
        """Raise a sink task's failure at once (instead of waiting out a limit)."""
        for task in self.tasks:
            if task.done():
                task.result()
                raise AssertionError("a sink stopped on its own")

    async def wait_events(self, expected: int) -> None:
        """Wait until `expected` events are stored (a sink's failure fails at once)."""
        from tests.cloud.conftest import counts
        from tests.support.waiting import eventually

        async def stored() -> bool:
            self.check_sinks()
            return (await counts(self.db))["events"] >= expected

        await eventually(stored, what=f"{expected} events stored")


@pytest.fixture
async def bus_app(bus_settings: Settings, gateway_key: Ed25519PrivateKey) -> AsyncIterator[BusApp]:
    """`serve --bus` in process (ASGI) and `start_sink(name)` for sink tasks on its database."""
    sinks: list[Sink] = []
    tasks: list[asyncio.Task[None]] = []
    async with (
        running_app(bus_settings, gateway_key) as app,
        open_bus(BusConfig.of(bus_settings)) as bus,
        http_client(app) as client,
    ):
        db: Database = app.state.db

        def start_sink(name: str) -> Sink:
            sink = Sink(bus=bus, db=db, name=name, direct=store_direct_message)
            sinks.append(sink)
            tasks.append(asyncio.create_task(sink.run()))
            return sink

        try:
            yield BusApp(
                app=app,
                db=db,
                bus=bus,
                client=client,
                start_sink=start_sink,
                tasks=tasks,
                sinks=sinks,
            )
        finally:
            for sink in sinks:
                sink.stop()
            await asyncio.gather(*tasks)
