"""CloudEvents through the ingest log: the collector maps and appends, the sink seals and stores."""

import httpx
from sqlalchemy import select

from cloud.incidents.models import Incident
from shared.chain import verify_chain
from shared.events import GENESIS_HASH, UsageEvent
from tests.cloud.bus.conftest import BusApp
from tests.cloud.conftest import http_client
from tests.cloud.direct.conftest import bearer, create_source, make_admin_key
from tests.cloud.direct.test_cloudevents_api import (
    GATEWAY_ID,
    SOURCE_ID,
    cloud_event,
    send_batch,
    stored,
)
from tests.support.waiting import eventually


async def test_cloudevents_are_queued_then_sealed_and_stored_once(bus_app: BusApp) -> None:
    admin_key = await make_admin_key(bus_app.db)
    async with http_client(bus_app.app) as admin:
        admin.headers.update(bearer(admin_key.secret))
        key = await create_source(admin)
    sender: httpx.AsyncClient = bus_app.client
    events = [cloud_event(f"e-{n}") for n in range(1, 6)]

    first = await send_batch(sender, key, [*events, {"id": "bad"}])
    again = await send_batch(sender, key, events)  # the same request: appended once
    later = await send_batch(sender, key, [*events[3:], cloud_event("e-6")])  # 2 of 3 known

    assert first.status_code == 202, first.text
    body = first.json()
    assert (body["queued"], body["received"], body["stored"], len(body["rejected"])) == (
        True,
        6,
        0,
        1,
    )
    assert body["gateway_id"] == GATEWAY_ID and body["source"] == SOURCE_ID
    assert again.status_code == 202 and later.status_code == 202
    bus_app.start_sink("a")
    await bus_app.wait_events(6)

    wire = await stored(sender)
    assert [e["attrs"]["origin_id"] for e in wire] == [f"e-{n}" for n in range(1, 7)]
    verify_chain([UsageEvent.model_validate(e) for e in wire], prev_hash=GENESIS_HASH)
    async with bus_app.db.transaction() as session:
        kinds = sorted(await session.scalars(select(Incident.kind)))
    assert kinds == ["duplicate_delivery", "rejected_event", "unknown_device"]
    async with bus_app.db.transaction() as session:
        kinds = sorted(await session.scalars(select(Incident.kind)))
    # As in one process: the rejected record, the unknown device (no catalog here), and one
    # duplicate note, of the third request (the second was dropped by the duplicate window).
    assert kinds == ["duplicate_delivery", "rejected_event", "unknown_device"]


async def test_a_file_import_is_queued_then_stored_once(bus_app: BusApp) -> None:
    admin_key = await make_admin_key(bus_app.db)
    async with http_client(bus_app.app) as admin:
        admin.headers.update(bearer(admin_key.secret))
        key = await create_source(admin)
    sender: httpx.AsyncClient = bus_app.client
    sender.headers.update(bearer(key))
    csv = b"txn,meter,ts,kg\nt1,bin-1,2026-11-02T08:00:00Z,1.5\nt2,bin-1,not-a-time,2\n"
    csv += b"t3,bin-2,2026-11-02T08:30:00Z,10\n"
    query = {"source": SOURCE_ID, "filename": "pours.csv"}

    first = await sender.post("/v1/imports", params=query, content=csv)
    again = await sender.post("/v1/imports", params=query, content=csv)  # duplicates at the sink
    dry = await sender.post("/v1/imports", params={**query, "dry_run": "true"}, content=csv)

    assert first.status_code == 202, first.text
    report = first.json()
    assert (report["queued"], report["rows"], report["stored"], report["rejected"]) == (
        True,
        3,
        0,
        1,
    )
    assert report["errors"][0]["position"] == 3 and report["errors"][0]["field"] == "ts"
    assert again.status_code == 202
    assert dry.status_code == 200 and dry.json()["queued"] is False  # a dry run stays here
    sink = bus_app.start_sink("a")
    await bus_app.wait_events(2)
    # both imports' messages handled (the second stores nothing: wait for it, not for events)
    await eventually(lambda: sink.handled >= 2, what="both import messages handled")

    wire = await stored(sender)
    assert [e["attrs"]["origin_id"] for e in wire] == ["t1", "t3"]
    assert [e["quantity"] for e in wire] == ["1.5", "10"]
    verify_chain([UsageEvent.model_validate(e) for e in wire], prev_hash=GENESIS_HASH)
    async with bus_app.db.transaction() as session:
        kinds = sorted(await session.scalars(select(Incident.kind)))
    # as in one process: the second import's duplicates, rows of a month ago, the bad row and
    # the devices no catalog knows here
    assert kinds == ["duplicate_delivery", "late_arrival", "rejected_event", "unknown_device"]
