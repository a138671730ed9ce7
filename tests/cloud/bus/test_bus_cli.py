"""`tollgate-cloud sink` and `bus status` as processes: the stream made at start, a clean stop."""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import nats
import orjson
import pytest

from cloud.db import Database
from cloud.schema import migrate

WAIT = 60.0  # a generous limit for a process to come up, not a speed check


async def _migrate(url: str) -> None:
    async with Database(url) as db:
        await migrate(db.engine)


async def _delete_streams(url: str, *names: str) -> None:
    connection = await nats.connect(url)
    for name in names:
        with contextlib.suppress(Exception):
            await connection.jetstream().delete_stream(name)
    await connection.close()


async def _wait_consumers(url: str, stream: str, count: int, sink: "subprocess.Popen[str]") -> None:
    connection = await nats.connect(url)
    js = connection.jetstream()
    deadline = time.monotonic() + WAIT
    try:
        while True:
            assert sink.poll() is None, sink.stderr.read() if sink.stderr else ""
            assert time.monotonic() < deadline, "the sink made no consumers"
            with contextlib.suppress(Exception):
                if len(await js.consumers_info(stream)) == count:
                    return
            await asyncio.sleep(0.1)
    finally:
        await connection.close()


@pytest.fixture
def bus_env(nats_url: str) -> Iterator[dict[str, str]]:
    stream = f"TEST_{uuid.uuid4().hex[:12].upper()}"
    env = {
        **os.environ,
        "TOLLGATE_BUS_STREAM": stream,
        "TOLLGATE_BUS_REPLICAS": "1",
        "TOLLGATE_BUS_PARTITIONS": "2",
        "TOLLGATE_BACKGROUND_JOBS": "off",
    }
    yield env
    asyncio.run(_delete_streams(nats_url, stream, f"KV_{stream}_REFUSALS"))


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloud.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )


def test_a_sink_creates_the_stream_reports_in_bus_status_and_stops_cleanly_on_sigterm(
    nats_url: str, postgres_url: str, bus_env: dict[str, str]
) -> None:
    asyncio.run(_migrate(postgres_url))
    before = cli("bus", "status", "--bus", nats_url, env=bus_env)
    assert before.returncode == 2
    assert "no stream" in before.stderr
    sink = subprocess.Popen(
        [sys.executable, "-m", "cloud.cli", "sink", "--bus", nats_url, "--db", postgres_url],
        env=bus_env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        asyncio.run(_wait_consumers(nats_url, bus_env["TOLLGATE_BUS_STREAM"], 2, sink))
        status = cli("bus", "status", "--bus", nats_url, env=bus_env)
        assert status.returncode == 0, status.stderr
        shown = orjson.loads(status.stdout)
        assert (shown["stream"], shown["replicas"], shown["partitions"]) == (
            bus_env["TOLLGATE_BUS_STREAM"],
            1,
            2,
        )
        assert shown["lag"] == 0
        assert [c["consumer"] for c in shown["consumers"]] == ["sink-0", "sink-1"]
    finally:
        sink.send_signal(signal.SIGTERM)
        _, errors = sink.communicate(timeout=WAIT)
    assert sink.returncode == 0, errors
    assert "stopped after 0 messages" in errors


def test_a_sink_without_a_bus_is_refused(postgres_url: str) -> None:
    env = {key: value for key, value in os.environ.items() if key != "TOLLGATE_BUS"}
    asyncio.run(_migrate(postgres_url))
    result = cli("sink", "--db", postgres_url, env=env)
    assert result.returncode == 2
    assert "no ingest log" in result.stderr
