"""The sink does not take the log's word: what no collector appended is dropped, nothing stored.

Anything that can publish to the ingest subjects (a misconfigured client, a compromised host on
the NATS network) can put a message on a partition. A batch is stored only if its chain
recomputes and its header verifies under the gateway's keys; a direct message only if it is
signed with its source's key (the collector signs it after checking the ingest key). Each test
publishes such messages before a genuine one on the same partition and checks that only the
genuine one is stored and the partition goes on.
"""

from datetime import UTC, datetime

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from cloud.bus.log import KIND, MSG_ID, SIGNATURE, partition_of
from cloud.ingest.models import StoredEvent
from cloud.metrics import SINK_BATCHES
from shared.signing import sign
from tests.cloud.bus.conftest import BusApp
from tests.cloud.bus.test_bus_ingest import stored_seqs
from tests.cloud.conftest import GATEWAY, counts, http_client, make_events, post
from tests.cloud.direct.conftest import bearer, create_source, make_admin_key
from tests.cloud.direct.test_cloudevents_api import GATEWAY_ID, SOURCE_ID, cloud_event, send_batch
from tests.support.batches import batch_body, batch_document, draft


def refused() -> float:
    """The sink's count of messages it refused so far (this process)."""
    return SINK_BATCHES.labels("refused")._value.get()


async def test_a_batch_no_gateway_signed_is_dropped_and_a_genuine_one_stored(
    bus_app: BusApp, gateway_key: Ed25519PrivateKey
) -> None:
    events = make_events(1, 5)
    forged_key = batch_body(events, Ed25519PrivateKey.generate())  # another key signed it
    tampered = batch_document(events, gateway_key)  # the gateway's signature, an event changed
    tampered["events"][2]["quantity"] = "1000"
    partition = partition_of(GATEWAY, bus_app.bus.config.partitions)
    for n, body in enumerate((forged_key, orjson.dumps(tampered))):
        headers = {KIND: "batch", MSG_ID: f"forged-{n}"}
        await bus_app.bus.js.publish(bus_app.bus.subject(partition), body, headers=headers)
    before = refused()
    assert (await post(bus_app.client, events, gateway_key)).status_code == 202

    bus_app.start_sink("a")

    await bus_app.wait_events(5)
    # had a forged batch been stored, the genuine one would be a seq_conflict incident
    assert await counts(bus_app.db) == {"batches": 1, "events": 5, "incidents": 0}
    assert await stored_seqs(bus_app) == [1, 2, 3, 4, 5]
    async with bus_app.db.transaction() as session:
        quantities = list(await session.scalars(select(StoredEvent.quantity)))
    assert "1000" not in {str(q) for q in quantities}
    assert refused() - before == 2


async def test_a_direct_message_its_source_did_not_sign_is_dropped(bus_app: BusApp) -> None:
    admin_key = await make_admin_key(bus_app.db)
    async with http_client(bus_app.app) as admin:
        admin.headers.update(bearer(admin_key.secret))
        secret = await create_source(admin)
    forged = orjson.dumps(
        {
            "source": SOURCE_ID,
            "received_at": datetime.now(UTC).isoformat(),
            "items": [["forged", "f-1", draft(1).model_dump(mode="json")]],
            "rejected": [],
        }
    )
    partition = partition_of(GATEWAY_ID, bus_app.bus.config.partitions)
    for n, (body, signature) in enumerate(
        (
            (forged, None),  # unsigned
            (forged, sign(Ed25519PrivateKey.generate(), forged)),  # signed by another key
            (b'{"source": 1}', None),  # does not decode
        )
    ):
        headers = {KIND: "direct", MSG_ID: f"forged-direct-{n}"}
        if signature is not None:
            headers[SIGNATURE] = signature
        await bus_app.bus.js.publish(bus_app.bus.subject(partition), body, headers=headers)
    before = refused()
    genuine = await send_batch(bus_app.client, secret, [cloud_event("e-1")])
    assert genuine.status_code == 202, genuine.text

    bus_app.start_sink("a")

    await bus_app.wait_events(1)
    async with bus_app.db.transaction() as session:
        origins = [e.attrs.get("origin_id") for e in await session.scalars(select(StoredEvent))]
    assert origins == ["e-1"]
    assert refused() - before == 3
