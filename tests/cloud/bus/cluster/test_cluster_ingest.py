"""The ingest log on a real three-node JetStream cluster (stream replicas 3), under failures.

Every test runs real processes: `cloud.cli serve --bus` collectors, `cloud.cli sink` workers,
nats-server nodes, PostgreSQL; simulated gateways post signed batches over HTTP and resend the
same batch on a 5xx, a timeout or a refused connection until a 2xx, as the edge forwarder does.
The failure happens between two phases of sending, so that batches are posted while it lasts.
Afterwards every event is stored exactly once (the sent hashes, each gateway's seqs 1..N) and no
chain incident (chain_broken, seq_conflict, seq_gap) was filed.
"""

import asyncio
from pathlib import Path

import pytest

from tests.cloud.bus.cluster.deployment import STREAM, Deployment, deployment
from tests.support.ingest_fleet import SimGateway, build_gateways
from tests.support.nats_cluster import NatsCluster
from tests.support.private_postgres import PrivatePostgres

GATEWAYS = 6
BATCH = 50
EVENTS = 12 * BATCH  # per gateway: 12 batches
OUTAGE_SECONDS = 3.0  # how long PostgreSQL stays down (not an assertion)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def gateways() -> list[SimGateway]:
    """The gateways of one test, their signed chains built before anything starts."""
    return build_gateways(GATEWAYS, events=EVENTS, batch_size=BATCH, prefix="cluster-gw")


async def finish(deployed: Deployment, *, stopped_ok: int = 0) -> None:
    """Wait for every event, then check exactly-once and that the three replicas hold no
    unacked message; the sinks still running drain and exit 0 on SIGTERM (`stopped_ok`: how
    many the test killed)."""
    await deployed.wait_stored(deployed.total)
    assert await deployed.problems() == []
    await deployed.wait_log_acked()
    codes = await deployed.close()
    assert sorted(codes)[stopped_ok:] == [0] * (len(codes) - stopped_ok), codes


async def test_kill_9_of_the_stream_leader_in_the_middle_of_ingest(
    nats_cluster: NatsCluster, postgres_url: str, tmp_path: Path, gateways: list[SimGateway]
) -> None:
    async with deployment(nats_cluster, postgres_url, tmp_path, gateways) as deployed:
        await deployed.start(collectors=1, sinks=["a"])
        await deployed.send(slice(0, 4))
        await deployed.wait_stored(1)

        leader = deployed.stream_leader()
        nats_cluster.kill9(leader)
        await deployed.send(slice(4, 8))  # acked by the two remaining replicas
        assert deployed.stream_leader() != leader

        async with asyncio.TaskGroup() as group:
            group.create_task(asyncio.to_thread(nats_cluster.restart, leader))
            group.create_task(deployed.send(slice(8, None)))
        await asyncio.to_thread(nats_cluster.wait_stream_current, STREAM)
        await finish(deployed)


async def test_kill_9_of_a_sink_in_the_middle_of_ingest(
    nats_cluster: NatsCluster, postgres_url: str, tmp_path: Path, gateways: list[SimGateway]
) -> None:
    async with deployment(nats_cluster, postgres_url, tmp_path, gateways) as deployed:
        await deployed.start(collectors=1, sinks=["a", "b"])
        doomed = deployed.sinks[0]
        await deployed.send(slice(0, 6))
        await deployed.wait_stored(1)

        await deployed.kill_sink(doomed)
        await deployed.send(slice(6, 9))
        await deployed.add_sink("c")  # a restarted worker joins the survivor
        await deployed.send(slice(9, None))
        await finish(deployed, stopped_ok=1)


async def test_postgresql_stopped_for_a_while_during_ingest(
    nats_cluster: NatsCluster,
    private_postgres: PrivatePostgres,
    tmp_path: Path,
    gateways: list[SimGateway],
) -> None:
    async with deployment(nats_cluster, private_postgres.url, tmp_path, gateways) as deployed:
        await deployed.start(collectors=1, sinks=["a"])
        await deployed.send(slice(0, 4))
        await deployed.wait_stored(1)

        await asyncio.to_thread(private_postgres.stop)
        async with asyncio.TaskGroup() as group:
            group.create_task(deployed.send(slice(4, None)))
            await asyncio.sleep(OUTAGE_SECONDS)  # the outage lasts this long, sends go on
            await asyncio.to_thread(private_postgres.start)
        deployed.sinks[0].check()  # the sink waited for the database instead of exiting
        await finish(deployed)


async def test_two_collectors_and_two_sinks_at_once(
    nats_cluster: NatsCluster, postgres_url: str, tmp_path: Path, gateways: list[SimGateway]
) -> None:
    async with deployment(nats_cluster, postgres_url, tmp_path, gateways) as deployed:
        await deployed.start(collectors=2, sinks=["a", "b"])
        await deployed.send(slice(0, None))  # gateway i posts to collector i mod 2
        assert all(g.statuses.get(202, 0) == len(g.bodies) for g in gateways)
        await finish(deployed)
        status = await deployed.bus_status()
        assert (status["stream"], status["replicas"], status["partitions"]) == (STREAM, 3, 4)
        assert (status["messages"], status["lag"]) == (0, 0)
