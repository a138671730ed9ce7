"""`GET /metrics` on the real app: the ingest counters move by exactly what was done.

The counters are the process's (one registry per process), so every test reads them before and
after and compares the difference. The sink's `--metrics-port` server is checked on its own.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from cloud.auth.service import create_api_key
from cloud.db import Database
from cloud.metrics import SINK_BATCHES, SINK_CONSUMER_LAG, serve_metrics
from tests.cloud.bus.conftest import BusApp, bus_app, bus_settings, nats_url  # noqa: F401
from tests.cloud.conftest import JSON, READER, http_client, make_events, post
from tests.cloud.direct.conftest import CE_SOURCE, EVENT_TYPE, bearer, create_source
from tests.support.batches import batch_body
from tests.support.waiting import eventually, free_port

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 for a series not exposed yet (a label value never counted)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics", headers=READER)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


BATCHES = "tollgate_ingest_batches_total"
EVENTS = "tollgate_ingest_events_total"
REFUSALS = "tollgate_ingest_refusals_total"
LATENCY = "tollgate_ingest_batch_seconds_count"


async def test_a_stored_batch_and_its_replay_move_the_counters_by_their_events(
    client: httpx.AsyncClient, gateway_key: Ed25519PrivateKey
) -> None:
    events = make_events(1, 3)
    before = await scrape(client)
    first = await post(client, events, gateway_key)
    middle = await scrape(client)
    again = await post(client, events, gateway_key)
    after = await scrape(client)

    assert first.status_code == 200 and again.status_code == 200
    assert moved(before, middle, BATCHES, outcome="stored") == 1
    assert moved(before, middle, EVENTS, outcome="stored") == 3
    assert moved(before, middle, EVENTS, outcome="duplicate") == 0
    assert moved(before, middle, LATENCY) == 1
    assert moved(middle, after, BATCHES, outcome="stored") == 1
    assert moved(middle, after, EVENTS, outcome="stored") == 0
    assert moved(middle, after, EVENTS, outcome="duplicate") == 3
    assert moved(before, after, BATCHES, outcome="refused") == 0
    assert moved(before, after, LATENCY) == 2
    # The histogram's buckets are cumulative up to +Inf, which holds every observation.
    assert moved(before, after, "tollgate_ingest_batch_seconds_bucket", le="+Inf") == 2


async def test_refusals_are_counted_by_their_error_code(
    client: httpx.AsyncClient, gateway_key: Ed25519PrivateKey
) -> None:
    before = await scrape(client)
    forged = await post(client, make_events(1, 2), Ed25519PrivateKey.generate())
    not_json = await client.post("/v1/batches", content=b"{nope", headers=JSON)
    elsewhere = await post(client, make_events(1, 2, prev_hash="ab" * 32), gateway_key)
    after = await scrape(client)

    assert forged.json()["error"]["code"] == "invalid_signature"
    assert not_json.json()["error"]["code"] == "malformed_json"
    assert elsewhere.json()["error"]["code"] == "chain_broken"
    assert moved(before, after, BATCHES, outcome="refused") == 3
    assert moved(before, after, REFUSALS, reason="invalid_signature") == 1
    assert moved(before, after, REFUSALS, reason="malformed_json") == 1
    assert moved(before, after, REFUSALS, reason="chain_broken") == 1
    assert moved(before, after, BATCHES, outcome="stored") == 0
    assert moved(before, after, EVENTS, outcome="stored") == 0
    assert moved(before, after, LATENCY) == 3


async def test_a_body_refused_before_it_is_read_is_counted_too(
    client: httpx.AsyncClient, gateway_key: Ed25519PrivateKey
) -> None:
    before = await scrape(client)
    wrong_type = await client.post(
        "/v1/batches",
        content=batch_body(make_events(1, 1), gateway_key),
        headers={"Content-Type": "text/plain"},
    )
    after = await scrape(client)

    assert wrong_type.status_code == 415
    code = wrong_type.json()["error"]["code"]
    assert moved(before, after, REFUSALS, reason=code) == 1
    assert moved(before, after, BATCHES, outcome="refused") == 1


def cloud_event(event_id: str, kg: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "type": EVENT_TYPE,
        "source": CE_SOURCE,
        "id": event_id,
        "subject": "bin-1",
        "time": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "datacontenttype": "application/json",
        "data": {"kg": kg},
    }


async def test_direct_events_count_stored_duplicate_and_rejected_records(
    app: FastAPI, db: Database
) -> None:
    async with http_client(app) as client:
        async with db.transaction(write=True) as session:
            admin = await create_api_key(session=session, name="metrics-admin")
        client.headers.update(bearer(admin.secret))
        key = await create_source(client)
        batch = [cloud_event("m-1", "12.5"), cloud_event("m-2", "1.5"), cloud_event("m-3", "lots")]
        headers = {"Content-Type": "application/cloudevents-batch+json", **bearer(key)}
        before = await scrape(client)
        first = await client.post("/v1/events", json=batch, headers=headers)
        again = await client.post("/v1/events", json=batch[:1], headers=headers)
        after = await scrape(client)

    assert first.status_code == 200, first.text
    assert (first.json()["stored"], len(first.json()["rejected"])) == (2, 1)
    assert again.json()["duplicates"] == 1
    assert moved(before, after, BATCHES, outcome="stored") == 2
    assert moved(before, after, EVENTS, outcome="stored") == 2
    assert moved(before, after, EVENTS, outcome="duplicate") == 1
    assert moved(before, after, EVENTS, outcome="rejected") == 1
    assert moved(before, after, LATENCY) == 2


async def test_metrics_need_a_reading_key(app: FastAPI, db: Database) -> None:
    async with db.transaction(write=True) as session:
        ingest = await create_api_key(session=session, name="lab", scope="ingest:lab")
    async with http_client(app) as client:
        anonymous = await client.get("/metrics")
        wrong_role = await client.get("/metrics", headers=bearer(ingest.secret))
        reader = await client.get("/metrics", headers=READER)

    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"
    assert wrong_role.status_code == 403 and wrong_role.json()["error"]["code"] == "forbidden"
    assert reader.status_code == 200
    names = {family.name for family in text_string_to_metric_families(reader.text)}
    assert {"tollgate_ingest_batches", "tollgate_sink_consumer_lag"} <= names


def test_the_openapi_declares_the_text_answer() -> None:
    from cloud.app import create_app

    operation = create_app().openapi()["paths"]["/metrics"]["get"]

    assert "text/plain" in operation["responses"]["200"]["content"]
    assert {"401", "403"} <= set(operation["responses"])


async def test_through_the_log_the_collector_counts_queued_and_the_sink_stored(
    bus_app: BusApp,  # noqa: F811 (the bus tests' fixture, imported above)
    gateway_key: Ed25519PrivateKey,
) -> None:
    client = bus_app.client
    before = await scrape(client)
    response = await post(client, make_events(1, 4), gateway_key)
    queued = await scrape(client)
    bus_app.start_sink("metrics")
    await bus_app.wait_events(4)

    async def handled() -> bool:
        return (
            moved(before, await scrape(client), "tollgate_sink_batches_total", outcome="stored") > 0
        )

    await eventually(handled, what="the sink counts its batch")
    after = await scrape(client)

    assert response.status_code == 202
    assert moved(before, queued, BATCHES, outcome="queued") == 1
    assert moved(before, queued, EVENTS, outcome="queued") == 4
    assert moved(before, queued, LATENCY) == 1
    assert moved(before, after, BATCHES, outcome="stored") == 0  # the collector stores nothing
    assert moved(before, after, EVENTS, outcome="stored") == 0
    assert moved(before, after, "tollgate_sink_batches_total", outcome="stored") == 1
    assert moved(before, after, "tollgate_sink_events_total") == 4
    assert moved(before, after, "tollgate_sink_store_seconds_count") == 1


@pytest.fixture
def metrics_server() -> Iterator[str]:
    server, thread = serve_metrics(free_port())
    host, port = server.server_address[:2]
    try:
        yield f"http://{host}:{port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_serve_metrics_answers_the_sinks_metrics_on_loopback(metrics_server: str) -> None:
    before = parse(httpx.get(metrics_server).text)
    SINK_BATCHES.labels("duplicate").inc()
    SINK_CONSUMER_LAG.labels("7").set(42)
    response = httpx.get(metrics_server)
    after = parse(response.text)

    assert metrics_server.startswith("http://127.0.0.1:")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert moved(before, after, "tollgate_sink_batches_total", outcome="duplicate") == 1
    assert value(after, "tollgate_sink_consumer_lag", partition="7") == 42
