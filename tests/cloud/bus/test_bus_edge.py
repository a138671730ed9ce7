"""End to end with the edge's own outbox and forwarder: what a gateway sees of a sink refusal."""

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nats.js.errors import KeyNotFoundError

from cloud.bus.log import refusal_key
from edge.config import ForwarderConfig
from edge.forwarder import Forwarder
from edge.outbox import Outbox
from edge.status import format_status, status_document
from tests.cloud.bus.conftest import BusApp
from tests.cloud.bus.test_bus_ingest import stored_seqs
from tests.cloud.conftest import GATEWAY, incident_kinds, make_events, post
from tests.support.batches import draft
from tests.support.waiting import eventually

CONFIG = ForwarderConfig.model_validate(
    {"batch_max_events": 3, "retry_initial": "10ms", "retry_max": "50ms", "request_timeout": "10s"}
)


async def test_the_gateway_learns_of_a_sink_refusal_and_delivers_the_batch_that_brings_it(
    bus_app: BusApp, gateway_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    bus_app.start_sink("a")
    async with Outbox(tmp_path / "outbox.sqlite", gateway_id=GATEWAY, budget_bytes=10**8) as outbox:
        forwarder = Forwarder(
            outbox=outbox,
            client=bus_app.client,
            gateway_id=GATEWAY,
            key=gateway_key,
            config=CONFIG,
        )
        await outbox.append([draft(n) for n in range(1, 7)])
        await forwarder.forward_pending()  # 1..3, 4..6: 202 queued, delivered
        await bus_app.wait_events(6)

        # Something signed by this gateway that does not fit the stored chain (say, a copy of
        # the gateway restored from an old backup) reaches the log and is refused at the sink.
        stray = make_events(7, 9, prev_hash="ab" * 32)
        assert (await post(bus_app.client, stray, gateway_key)).status_code == 202

        async def recorded() -> bool:
            bus_app.check_sinks()
            try:
                await bus_app.bus.refusals.get(refusal_key(GATEWAY))
            except KeyNotFoundError:
                return False
            return True

        await eventually(recorded, what="the sink's refusal recorded")

        await outbox.append([draft(n) for n in range(7, 13)])
        await forwarder.forward_pending()  # 7..9 learns of the refusal (409), 10..12 goes

        letters = await outbox.dead_letters()
        assert await outbox.lease(10) is None  # nothing left to send
        shown = format_status(
            status_document(
                gateway_id=GATEWAY,
                state="running",
                outbox=await outbox.stats(),
                outbox_full=False,
                link=forwarder.health,
                devices={},
            )
        )
    # The batch that carried the news was queued: delivered, not dead-lettered.
    assert letters == []
    assert forwarder.health.dead_lettered == 0
    assert forwarder.health.batches_sent == 4
    assert forwarder.health.sink_refusals == 1
    assert forwarder.health.last_sink_refusal == "seq 7..9: chain_broken"
    assert "0 dead letters" in shown
    assert "refused when stored: 1 earlier batches" in shown and "seq 7..9: chain_broken" in shown
    # The cloud has the gateway's whole chain; the stray batch is the one incident.
    await bus_app.wait_events(12)
    assert await stored_seqs(bus_app) == list(range(1, 13))
    assert await incident_kinds(bus_app.db) == ["chain_broken"]
