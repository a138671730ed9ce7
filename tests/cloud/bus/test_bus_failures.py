"""What goes wrong on the log's path: a refusal at the sink, the database away, the log away."""

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nats.js.errors import KeyNotFoundError
from sqlalchemy import select

from cloud.bus.log import KIND, MSG_ID, partition_of, refusal_key
from cloud.incidents.models import Incident
from tests.cloud.bus.conftest import BusApp
from tests.cloud.bus.test_bus_ingest import stored_seqs
from tests.cloud.conftest import GATEWAY, counts, error_code, incident_kinds, make_events, post
from tests.support.waiting import eventually


async def refusal_recorded(bus_app: BusApp) -> bool:
    bus_app.check_sinks()
    try:
        await bus_app.bus.refusals.get(refusal_key(GATEWAY))
    except KeyNotFoundError:
        return False
    return True


async def test_a_refusal_at_the_sink_is_an_incident_and_the_gateways_next_batch_learns_it(
    bus_app: BusApp, gateway_key: Ed25519PrivateKey
) -> None:
    bus_app.start_sink("a")
    assert (await post(bus_app.client, make_events(1, 10), gateway_key)).status_code == 202
    await bus_app.wait_events(10)
    # Internally a sound chain (the collector takes it), but it does not link to stored seq 10.
    stray = make_events(11, 15, prev_hash="ab" * 32)
    assert (await post(bus_app.client, stray, gateway_key)).status_code == 202
    await eventually(lambda: refusal_recorded(bus_app), what="the sink's refusal recorded")

    async with bus_app.db.transaction() as session:
        incident = await session.scalar(select(Incident).where(Incident.kind == "chain_broken"))
    assert incident is not None
    assert (incident.gateway_id, incident.first_seq, incident.last_seq) == (GATEWAY, 11, 15)

    good = make_events(1, 20)
    told = await post(bus_app.client, good[10:15], gateway_key)
    assert told.status_code == 409
    assert error_code(told) == "chain_broken"
    detail = told.json()["error"]["detail"]
    assert detail["at"] == "sink"
    assert (detail["refused_first_seq"], detail["refused_last_seq"]) == (11, 15)
    assert detail["this_batch"] == "queued"
    assert "11..15" in told.json()["error"]["message"]
    # Once: the record is cleared, the next batch is plainly queued; both are stored.
    assert not await refusal_recorded(bus_app)
    assert (await post(bus_app.client, good[15:], gateway_key)).status_code == 202
    await bus_app.wait_events(20)
    assert await stored_seqs(bus_app) == list(range(1, 21))
    assert await incident_kinds(bus_app.db) == ["chain_broken"]


async def test_the_sink_waits_out_a_database_that_is_away_and_loses_nothing(
    bus_app: BusApp, gateway_key: Ed25519PrivateKey, postgres_admin_dsn: str
) -> None:
    events = make_events(1, 30)
    for start in range(0, 30, 10):
        assert (
            await post(bus_app.client, events[start : start + 10], gateway_key)
        ).status_code == 202
    name = bus_app.db.engine.url.database
    admin = await asyncpg.connect(postgres_admin_dsn)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        sink = bus_app.start_sink("a")
        await eventually(lambda: sink.retries >= 2, what="the sink retrying the database")
        assert sink.handled == 0
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()

    await bus_app.wait_events(30)
    assert await stored_seqs(bus_app) == list(range(1, 31))
    assert await counts(bus_app.db) == {"batches": 3, "events": 30, "incidents": 0}


async def test_a_log_that_cannot_take_the_batch_is_a_503_with_the_error_body(
    bus_app: BusApp, gateway_key: Ed25519PrivateKey
) -> None:
    await bus_app.bus.js.delete_stream(bus_app.bus.config.stream)

    response = await post(bus_app.client, make_events(1, 5), gateway_key)

    assert response.status_code == 503
    body = response.json()
    assert body["error"]["code"] == "bus_unavailable"
    assert set(body["error"]) == {"id", "code", "message", "detail"}
    assert await counts(bus_app.db) == {"batches": 0, "events": 0, "incidents": 0}


async def test_refusals_of_the_collector_are_answered_before_the_log(
    bus_app: BusApp, gateway_key: Ed25519PrivateKey
) -> None:
    stranger = Ed25519PrivateKey.generate()
    forged = await post(bus_app.client, make_events(1, 5), stranger)
    broken = make_events(1, 5)
    broken[2] = broken[2].model_copy(update={"prev_hash": "cd" * 32})
    unlinked = await post(bus_app.client, broken, gateway_key)

    assert (forged.status_code, error_code(forged)) == (401, "invalid_signature")
    assert (unlinked.status_code, error_code(unlinked)) == (409, "chain_broken")
    info = await bus_app.bus.js.stream_info(bus_app.bus.config.stream)
    assert info.state.messages == 0
    assert await incident_kinds(bus_app.db) == ["chain_broken"]  # filed as in one process


async def test_a_message_that_is_no_batch_is_dropped_and_does_not_block_its_partition(
    bus_app: BusApp, gateway_key: Ed25519PrivateKey
) -> None:
    partition = partition_of(GATEWAY, bus_app.bus.config.partitions)
    for payload, headers in (
        (b'{"not": "a batch"}', {KIND: "batch", MSG_ID: "junk-1"}),
        (b"{}", {MSG_ID: "junk-2"}),  # not of ours at all
    ):
        await bus_app.bus.js.publish(bus_app.bus.subject(partition), payload, headers=headers)
    assert (await post(bus_app.client, make_events(1, 5), gateway_key)).status_code == 202

    bus_app.start_sink("a")

    await bus_app.wait_events(5)
    assert await counts(bus_app.db) == {"batches": 1, "events": 5, "incidents": 0}
