"""The fixtures themselves: an R3 stream survives kill -9 of a node; the private PostgreSQL stops
and starts without touching the machine's shared server."""

import asyncio
import contextlib

import asyncpg
import nats
import pytest
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import StreamConfig
from nats.js.errors import NoStreamResponseError

from tests.support.nats_cluster import NatsCluster
from tests.support.private_postgres import PrivatePostgres
from tests.support.waiting import eventually

STREAM = "FIXTURE_R3"


async def test_an_r3_stream_keeps_acking_publishes_after_kill_9_of_its_leader(
    nats_cluster: NatsCluster,
) -> None:
    client = await nats.connect(servers=nats_cluster.urls)
    try:
        js = client.jetstream()
        await js.add_stream(StreamConfig(name=STREAM, subjects=["fixture.>"], num_replicas=3))
        for n in range(50):
            await js.publish("fixture.a", str(n).encode(), headers={"Nats-Msg-Id": f"m{n}"})
        info = await js.stream_info(STREAM)
        assert info.cluster is not None and len(info.cluster.replicas or []) == 2
        leader = [node.name for node in nats_cluster.nodes].index(info.cluster.leader)

        nats_cluster.kill9(leader)
        for n in range(50, 100):  # each publish retried until acked, as the collector does
            while True:
                with contextlib.suppress(NatsTimeout, NoStreamResponseError):
                    ack = await js.publish(
                        "fixture.a", str(n).encode(), headers={"Nats-Msg-Id": f"m{n}"}, timeout=1
                    )
                    break
                await asyncio.sleep(0.05)
            assert ack.seq is not None
        info = await js.stream_info(STREAM)
        assert info.state.messages == 100  # message ids: a retried publish is stored once
        assert info.cluster is not None and info.cluster.leader != nats_cluster.nodes[leader].name

        await asyncio.to_thread(nats_cluster.restart, leader)
        await asyncio.to_thread(nats_cluster.wait_stream_current, STREAM)
        replicas = nats_cluster.stream_replicas(STREAM)
        assert {name: r["last_seq"] for name, r in replicas.items()} == {
            "n1": 100, "n2": 100, "n3": 100,
        }  # fmt: skip
    finally:
        await client.close()


async def test_the_private_postgres_stops_and_starts_with_its_data(
    private_postgres: PrivatePostgres, postgres_admin_dsn: str
) -> None:
    connection = await asyncpg.connect(private_postgres.dsn)
    await connection.execute("CREATE TABLE kept (n int)")
    await connection.execute("INSERT INTO kept VALUES (1), (2)")
    await connection.close()

    await asyncio.to_thread(private_postgres.stop)
    with pytest.raises(OSError):
        await asyncpg.connect(private_postgres.dsn, timeout=3)
    shared = await asyncpg.connect(postgres_admin_dsn, timeout=3)  # the machine's stays up
    await shared.close()

    await asyncio.to_thread(private_postgres.start)

    async def back() -> bool:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            again = await asyncpg.connect(private_postgres.dsn, timeout=3)
            try:
                return await again.fetchval("SELECT sum(n) FROM kept") == 3
            finally:
                await again.close()
        return False

    await eventually(back, what="the private PostgreSQL back with its rows")
