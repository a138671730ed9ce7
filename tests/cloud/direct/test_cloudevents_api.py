"""POST /v1/events over ASGI with the official CloudEvents SDK as the client.

Structured and batch mode, idempotency by `(source, id)`, every refusal with its status and error,
and the data-quality incidents a source's events leave; on SQLite and PostgreSQL.
"""

import contextlib
import gzip
import itertools
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest
from cloudevents.core.bindings.http import to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy import select

from cloud.auth.service import IssuedKey, revoke_api_key
from cloud.db import Database
from cloud.incidents.models import Incident
from cloud.settings import Limits, Settings
from shared.chain import verify_chain
from shared.events import GENESIS_HASH, UsageEvent
from tests.cloud.catalog.conftest import seed_devices
from tests.cloud.conftest import READER, error_code, http_client, running_app
from tests.cloud.direct.conftest import (
    CE_SOURCE,
    EVENT_TYPE,
    MAPPING,
    SOURCE_ID,
    bearer,
    create_source,
    make_admin_key,
    quantity_reason,
)

GATEWAY_ID = f"source:{SOURCE_ID}"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
MISSING = "required attribute is missing"


# -- helpers --------------------------------------------------------------------------------------


def cloud_event(
    event_id: str,
    *,
    subject: str = "bin-1",
    data: Any = None,
    event_type: str = EVENT_TYPE,
    source: str = CE_SOURCE,
    time: datetime | None = None,
) -> CloudEvent:
    """An SDK event of the test source: a pour of 12.5 kg five minutes ago unless told."""
    attributes = {
        "type": event_type,
        "source": source,
        "id": event_id,
        "subject": subject,
        "time": time or datetime.now(UTC) - timedelta(minutes=5),
    }
    return CloudEvent(attributes=attributes, data={"kg": "12.5"} if data is None else data)


def document(event: CloudEvent, *, without: str | None = None) -> dict[str, Any]:
    """The JSON document the SDK writes for `event`, optionally with one attribute removed."""
    written: dict[str, Any] = json.loads(JSONFormat().write(event))
    if without is not None:
        del written[without]
    return written


def batch_body(items: Sequence[CloudEvent | object]) -> bytes:
    """A batch-mode body: SDK events as the SDK writes them, anything else as plain JSON."""
    parts = [
        JSONFormat().write(item) if isinstance(item, CloudEvent) else json.dumps(item).encode()
        for item in items
    ]
    return b"[" + b",".join(parts) + b"]"


async def send(client: httpx.AsyncClient, key: str, event: CloudEvent) -> httpx.Response:
    """POST one event in structured mode, as the SDK's HTTP binding builds it."""
    message = to_structured(event, JSONFormat())
    return await client.post(
        "/v1/events", content=message.body, headers={**message.headers, **bearer(key)}
    )


async def send_batch(
    client: httpx.AsyncClient, key: str, items: Sequence[CloudEvent | object]
) -> httpx.Response:
    """POST a batch-mode body."""
    headers = {"Content-Type": BATCH, **bearer(key)}
    return await client.post("/v1/events", content=batch_body(items), headers=headers)


async def send_raw(
    client: httpx.AsyncClient, key: str, body: bytes, content_type: str | None
) -> httpx.Response:
    """POST `body` with `content_type` (no Content-Type header when None)."""
    headers = bearer(key) if content_type is None else {"Content-Type": content_type, **bearer(key)}
    return await client.post("/v1/events", content=body, headers=headers)


async def stored(client: httpx.AsyncClient, gateway_id: str = GATEWAY_ID) -> list[dict[str, Any]]:
    """The stored events of a source's gateway, in seq order."""
    response = await client.get(
        "/v1/events", headers=READER, params={"gateway_id": gateway_id, "limit": 1000}
    )
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


async def source_view(admin: httpx.AsyncClient, source_id: str = SOURCE_ID) -> dict[str, Any]:
    """GET /v1/sources/{id}."""
    response = await admin.get(f"/v1/sources/{source_id}")
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


def receipt(
    *,
    received: int,
    stored: int,
    duplicates: int = 0,
    rejected: Sequence[dict[str, Any]] = (),
    first_seq: int | None = None,
    last_seq: int | None = None,
) -> dict[str, Any]:
    """The exact receipt body expected from the test source."""
    return {
        "source": SOURCE_ID,
        "gateway_id": GATEWAY_ID,
        "received": received,
        "stored": stored,
        "duplicates": duplicates,
        "rejected": list(rejected),
        "first_seq": first_seq,
        "last_seq": last_seq,
    }


def assert_refused(response: httpx.Response, status: int, code: str, message: str) -> None:
    """The response is our error body with this status, code and message."""
    assert response.status_code == status, response.text
    assert error_code(response) == code
    assert response.json()["error"]["message"] == message


@pytest.fixture
async def sender(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the real app without credentials (each request sends its own key)."""
    async with http_client(app) as http:
        yield http


# -- storing --------------------------------------------------------------------------------------


async def test_structured_event_is_stored_with_its_origin(
    sender: httpx.AsyncClient, ingest_key: str
) -> None:
    """One structured event becomes seq 1 with origin attrs, exact quantity and rule fields."""
    occurred = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    response = await send(sender, ingest_key, cloud_event("e-1", time=occurred))
    assert response.status_code == 200, response.text
    assert response.json() == receipt(received=1, stored=1, first_seq=1, last_seq=1)
    [event] = await stored(sender)
    assert event["seq"] == 1
    assert event["device_id"] == "bin-1"
    assert (event["name"], event["kind"], event["unit"]) == ("pour", "measurement", "kg")
    assert event["quantity"] == "12.5"
    assert Decimal(event["quantity"]) == Decimal("12.5")
    assert datetime.fromisoformat(event["occurred_at"]) == occurred
    assert event["attrs"] == {
        "origin": "cloudevents",
        "origin_id": "e-1",
        "ce_source": CE_SOURCE,
        "ce_type": EVENT_TYPE,
    }
    assert event["prev_hash"] == GENESIS_HASH


async def test_type_rule_decides_name_kind_and_unit(
    sender: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    """With two type rules each event takes the name, kind, unit and quantity field of its type."""
    mapping = {
        "ce_sources": ["urn:plant:line-1"],
        "types": [
            {"type": "com.plant.energy", "name": "energy", "kind": "measurement",
             "quantity": "reading.kwh", "unit": "kWh"},
            {"type": "com.plant.start", "name": "start", "kind": "activation"},
        ],
    }  # fmt: skip
    key = await create_source(admin, "plant", mapping)
    energy = cloud_event(
        "x-1",
        source="urn:plant:line-1",
        event_type="com.plant.energy",
        subject="press-3",
        data={"reading": {"kwh": "7.25"}},
    )
    start = cloud_event(
        "x-2", source="urn:plant:line-1", event_type="com.plant.start", subject="press-3", data={}
    )
    response = await send_batch(sender, key, [start, energy])
    assert response.status_code == 200, response.text
    assert (response.json()["stored"], response.json()["rejected"]) == (2, [])
    events = await stored(sender, "source:plant")
    fields = [(e["name"], e["kind"], e["unit"], e["quantity"], e["device_id"]) for e in events]
    assert fields == [
        ("start", "activation", None, None, "press-3"),
        ("energy", "measurement", "kWh", "7.25", "press-3"),
    ]
    assert [e["attrs"]["ce_type"] for e in events] == ["com.plant.start", "com.plant.energy"]


async def test_batches_are_sealed_into_one_chain(
    sender: httpx.AsyncClient, ingest_key: str
) -> None:
    """Two batches become seqs 1..5 of the source's chain, every hash linking to the one before."""
    first = await send_batch(sender, ingest_key, [cloud_event(f"b-{n}") for n in range(3)])
    assert first.json() == receipt(received=3, stored=3, first_seq=1, last_seq=3)
    second = await send_batch(sender, ingest_key, [cloud_event(f"b-{n}") for n in range(3, 5)])
    assert second.json() == receipt(received=2, stored=2, first_seq=4, last_seq=5)
    events = await stored(sender)
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert [e["attrs"]["origin_id"] for e in events] == ["b-0", "b-1", "b-2", "b-3", "b-4"]
    assert events[0]["prev_hash"] == GENESIS_HASH
    for before, after in itertools.pairwise(events):
        assert after["prev_hash"] == before["hash"]
    chain = [UsageEvent.model_validate(e) for e in events]
    assert verify_chain(chain, prev_hash=GENESIS_HASH) == events[-1]["hash"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"12.5", "12.5"),
        (b"0.1", "0.1"),
        (b"0.30000000000000004", "0.30000000000000004"),
        (b"123456789012345678.000000001", "123456789012345678.000000001"),
        (b"40", "40"),
        (b'"12.50"', "12.5"),
    ],
)
async def test_json_numbers_are_kept_exactly(
    sender: httpx.AsyncClient, ingest_key: str, raw: bytes, expected: str
) -> None:
    """A number in `data` is stored digit for digit, never through a binary float."""
    written = JSONFormat().write(cloud_event("n-1", data={"kg": "PLACEHOLDER"}))
    body = written.replace(b'"PLACEHOLDER"', raw)
    response = await send_raw(sender, ingest_key, body, STRUCTURED)
    assert response.status_code == 200, response.text
    [event] = await stored(sender)
    assert event["quantity"] == expected
    assert Decimal(event["quantity"]) == Decimal(expected)


async def test_sdk_float_data_is_exact(sender: httpx.AsyncClient, ingest_key: str) -> None:
    """The SDK writes Python floats 12.5 and 0.1 as JSON numbers; both are stored exactly."""
    events = [cloud_event("f-1", data={"kg": 12.5}), cloud_event("f-2", data={"kg": 0.1})]
    response = await send_batch(sender, ingest_key, events)
    assert response.json()["stored"] == 2
    assert [e["quantity"] for e in await stored(sender)] == ["12.5", "0.1"]


async def test_time_with_an_offset_is_stored_in_utc(
    sender: httpx.AsyncClient, ingest_key: str
) -> None:
    """A `time` with a UTC offset is the same instant, stored in UTC."""
    local = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    written = document(cloud_event("t-1"))
    written["time"] = local.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()
    response = await send_raw(sender, ingest_key, json.dumps(written).encode(), STRUCTURED)
    assert response.json()["stored"] == 1, response.text
    [event] = await stored(sender)
    assert event["occurred_at"] == local.strftime("%Y-%m-%dT%H:%M:%S.000000Z")


async def test_gzipped_batch_is_stored(sender: httpx.AsyncClient, ingest_key: str) -> None:
    """A batch sent with Content-Encoding gzip is inflated and stored."""
    body = gzip.compress(batch_body([cloud_event("z-1"), cloud_event("z-2")]))
    headers = {"Content-Type": BATCH, "Content-Encoding": "gzip", **bearer(ingest_key)}
    response = await sender.post("/v1/events", content=body, headers=headers)
    assert response.json() == receipt(received=2, stored=2, first_seq=1, last_seq=2)
    assert [e["attrs"]["origin_id"] for e in await stored(sender)] == ["z-1", "z-2"]


async def test_empty_batch_stores_nothing(sender: httpx.AsyncClient, ingest_key: str) -> None:
    """An empty batch is a valid request that stores nothing."""
    response = await send_batch(sender, ingest_key, [])
    assert response.json() == receipt(received=0, stored=0)
    assert await stored(sender) == []


@pytest.mark.parametrize(
    "quantity", ["1e1000000", "1e99999", "1e-1000000", "0.0000000000000000000000000000001"]
)
async def test_quantity_out_of_range_rejects_that_event_only(
    sender: httpx.AsyncClient, ingest_key: str, quantity: str
) -> None:
    """A quantity too large or too small to store exactly rejects its own event only, with the
    contract's reason (`shared.bounds.parse_quantity`)."""
    huge = {**document(cloud_event("h-1")), "data": {"kg": quantity}}
    response = await send_batch(sender, ingest_key, [cloud_event("g-0"), huge])
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    [rejected] = response.json()["rejected"]
    assert (rejected["position"], rejected["field"]) == (1, "kg")
    assert rejected["reason"] == quantity_reason(quantity)
    assert [e["attrs"]["origin_id"] for e in await stored(sender)] == ["g-0"]


async def test_tiny_quantity_is_refused_not_stored_as_zero(
    sender: httpx.AsyncClient, ingest_key: str
) -> None:
    """A non-zero quantity is never stored as 0: a JSON number 1e-1000000 is refused."""
    written = (
        JSONFormat().write(cloud_event("t-1", data={"kg": "X"})).replace(b'"X"', b"1e-1000000")
    )
    response = await send_raw(sender, ingest_key, written, STRUCTURED)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["detail"]["field"] == "kg"
    assert await stored(sender) == []


# -- idempotency ----------------------------------------------------------------------------------


async def test_resent_event_is_a_duplicate(
    sender: httpx.AsyncClient, admin: httpx.AsyncClient, ingest_key: str
) -> None:
    """The same event sent again stores nothing, counts one duplicate and records an incident."""
    event = cloud_event("e-1")
    assert (await send(sender, ingest_key, event)).json()["stored"] == 1
    again = await send(sender, ingest_key, event)
    assert again.status_code == 200, again.text
    assert again.json() == receipt(received=1, stored=0, duplicates=1)
    assert len(await stored(sender)) == 1
    view = await source_view(admin)
    assert (view["events_stored"], view["last_seq"]) == (1, 1)
    assert view["incidents"] == {"duplicate_delivery": 1, "unknown_device": 1}


async def test_resent_batch_stores_only_new_events(
    sender: httpx.AsyncClient, ingest_key: str
) -> None:
    """A batch re-sent with one new event stores that one only, right after the chain's end."""
    await send_batch(sender, ingest_key, [cloud_event("a"), cloud_event("b")])
    response = await send_batch(
        sender, ingest_key, [cloud_event("a"), cloud_event("b"), cloud_event("c")]
    )
    assert response.json() == receipt(received=3, stored=1, duplicates=2, first_seq=3, last_seq=3)
    assert [e["attrs"]["origin_id"] for e in await stored(sender)] == ["a", "b", "c"]


async def test_same_id_twice_in_one_batch_is_stored_once(
    sender: httpx.AsyncClient, ingest_key: str, db: Database
) -> None:
    """Within one batch the first event of an id is stored and the second is a duplicate."""
    items = [
        cloud_event("d-1", data={"kg": "1"}),
        cloud_event("d-1", data={"kg": "2"}),
        cloud_event("d-2", data={"kg": "3"}),
    ]
    response = await send_batch(sender, ingest_key, items)
    assert response.json() == receipt(received=3, stored=2, duplicates=1, first_seq=1, last_seq=2)
    events = await stored(sender)
    assert [(e["attrs"]["origin_id"], e["quantity"]) for e in events] == [
        ("d-1", "1"),
        ("d-2", "3"),
    ]
    async with db.transaction() as session:
        details = list(
            await session.scalars(
                select(Incident.detail).where(Incident.kind == "duplicate_delivery")
            )
        )
    assert details == ["1 of 3 events already stored (same source and id)"]


async def test_same_id_from_another_uri_is_another_event(
    sender: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    """Idempotency is by (source URI, id): one id under two URIs of a source is two events."""
    mapping = {**MAPPING, "ce_sources": ["urn:acme:north", "urn:acme:south"]}
    key = await create_source(admin, "twin", mapping)
    north = cloud_event("same", source="urn:acme:north")
    south = cloud_event("same", source="urn:acme:south")
    assert (await send(sender, key, north)).json()["stored"] == 1
    second = await send(sender, key, south)
    assert (second.json()["stored"], second.json()["duplicates"]) == (1, 0)
    events = await stored(sender, "source:twin")
    assert [(e["attrs"]["ce_source"], e["attrs"]["origin_id"]) for e in events] == [
        ("urn:acme:north", "same"),
        ("urn:acme:south", "same"),
    ]
    assert (await send(sender, key, south)).json()["duplicates"] == 1


# -- refused requests -----------------------------------------------------------------------------


async def test_binary_mode_is_refused_with_a_hint(
    sender: httpx.AsyncClient, ingest_key: str
) -> None:
    """Binary content mode (data as application/json, attributes in ce- headers) gets 415."""
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": "e-1",
        "ce-source": CE_SOURCE,
        "ce-type": EVENT_TYPE,
        "ce-subject": "bin-1",
        "ce-time": "2026-11-20T10:00:00Z",
        **bearer(ingest_key),
    }
    response = await sender.post("/v1/events", content=b'{"kg": "12.5"}', headers=headers)
    assert_refused(
        response,
        415,
        "unsupported_media_type",
        "Content-Type 'application/json' is not accepted: "
        "binary content mode is not accepted: send the event in structured mode",
    )
    assert response.json()["error"]["detail"] == {"accepted": [STRUCTURED, BATCH]}
    assert await stored(sender) == []


@pytest.mark.parametrize(
    ("content_type", "shown"), [("text/plain", "'text/plain'"), (None, "'(none)'")]
)
async def test_other_content_types_are_refused(
    sender: httpx.AsyncClient, ingest_key: str, content_type: str | None, shown: str
) -> None:
    """A body that is not declared as CloudEvents JSON gets 415 naming the accepted types."""
    body = JSONFormat().write(cloud_event("e-1"))
    response = await send_raw(sender, ingest_key, body, content_type)
    assert_refused(
        response,
        415,
        "unsupported_media_type",
        f"Content-Type {shown} is not accepted: send {STRUCTURED} (one event) or {BATCH} "
        "(a JSON array of events)",
    )
    assert await stored(sender) == []


@pytest.mark.parametrize("content_type", [STRUCTURED, BATCH])
async def test_body_that_is_not_json_is_refused(
    sender: httpx.AsyncClient, ingest_key: str, content_type: str
) -> None:
    """A body that does not parse as JSON gets 400 malformed_json."""
    response = await send_raw(sender, ingest_key, b'{"id": "e-1",', content_type)
    assert response.status_code == 400, response.text
    assert error_code(response) == "malformed_json"
    assert response.json()["error"]["message"].startswith("body is not valid JSON: ")
    assert await stored(sender) == []


async def test_batch_that_is_not_an_array_is_refused(
    sender: httpx.AsyncClient, ingest_key: str
) -> None:
    """A batch-mode body holding a single event object (not an array) gets 400."""
    body = JSONFormat().write(cloud_event("e-1"))
    response = await send_raw(sender, ingest_key, body, BATCH)
    assert_refused(response, 400, "malformed_json", f"{BATCH} must be a JSON array of events")
    assert await stored(sender) == []


@pytest.mark.parametrize(
    ("attribute", "reason"),
    [
        ("id", MISSING),
        ("source", MISSING),
        ("type", MISSING),
        ("specversion", MISSING),
        ("subject", "required: the subject names the device"),
        ("time", "a time is required"),
    ],
)
async def test_structured_event_without_a_required_attribute(
    sender: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    ingest_key: str,
    attribute: str,
    reason: str,
) -> None:
    """A structured event missing an attribute gets 422 invalid_event naming it; nothing stored."""
    body = json.dumps(document(cloud_event("e-1"), without=attribute)).encode()
    response = await send_raw(sender, ingest_key, body, STRUCTURED)
    assert_refused(response, 422, "invalid_event", f"event cannot be stored: {attribute}: {reason}")
    assert response.json()["error"]["detail"] == {
        "field": attribute,
        "reason": reason,
        "id": None if attribute == "id" else "e-1",
    }
    assert await stored(sender) == []
    assert (await source_view(admin))["incidents"] == {"rejected_event": 1}


@pytest.mark.parametrize(
    ("event", "field", "reason"),
    [
        (
            cloud_event("e-1", event_type="com.acme.spill"),
            "type",
            "no mapping for type 'com.acme.spill'",
        ),
        (
            CloudEvent(
                attributes={
                    "type": EVENT_TYPE,
                    "source": CE_SOURCE,
                    "id": "e-1",
                    "subject": "bin-1",
                    "time": datetime(2026, 11, 20, 10, tzinfo=UTC),
                    "datacontenttype": "application/octet-stream",
                },
                data=b"\x00\x01",
            ),
            "data_base64",
            "binary data is not accepted: send JSON data",
        ),
        (
            cloud_event("e-1", source="urn:other:meters"),
            "source",
            "'urn:other:meters' is not a source this key may send",
        ),
        (
            cloud_event("e-1", data={"litres": "3"}),
            "kg",
            "a quantity is required for type 'com.acme.pour'",
        ),
    ],
    ids=["unknown-type", "data-base64", "foreign-source", "no-quantity"],
)
async def test_structured_event_that_cannot_be_mapped(
    sender: httpx.AsyncClient, ingest_key: str, event: CloudEvent, field: str, reason: str
) -> None:
    """An event the mapping cannot take gets 422 invalid_event naming the field; nothing stored."""
    response = await send(sender, ingest_key, event)
    assert_refused(response, 422, "invalid_event", f"event cannot be stored: {field}: {reason}")
    assert response.json()["error"]["detail"] == {"field": field, "reason": reason, "id": "e-1"}
    assert await stored(sender) == []


async def test_uri_of_another_source_is_refused(
    sender: httpx.AsyncClient, admin: httpx.AsyncClient, ingest_key: str
) -> None:
    """A key may not send events under a URI another source owns; neither source stores it."""
    other_key = await create_source(admin, "other", {**MAPPING, "ce_sources": ["urn:other:x"]})
    response = await send(sender, ingest_key, cloud_event("e-1", source="urn:other:x"))
    assert_refused(
        response,
        422,
        "invalid_event",
        "event cannot be stored: source: 'urn:other:x' is not a source this key may send",
    )
    assert await stored(sender) == []
    assert await stored(sender, "source:other") == []
    own = await send(sender, other_key, cloud_event("e-1", source="urn:other:x"))
    assert own.json()["stored"] == 1


async def test_batch_stores_good_events_and_lists_bad_ones(
    sender: httpx.AsyncClient, admin: httpx.AsyncClient, ingest_key: str
) -> None:
    """In a batch the good events are stored and each bad one is listed by position, id, field."""
    items: list[CloudEvent | object] = [
        cloud_event("g-0"),
        document(cloud_event("bad-1"), without="subject"),
        cloud_event("bad-2", event_type="com.acme.spill"),
        cloud_event("g-3"),
        document(cloud_event("bad-4"), without="id"),
        "not an event",
        cloud_event("bad-6", source="urn:other:meters"),
        {**document(cloud_event("bad-7")), "specversion": "0.3"},
        cloud_event("g-8"),
        {**document(cloud_event("bad-9")), "time": "yesterday"},
    ]
    response = await send_batch(sender, ingest_key, items)
    assert response.status_code == 200, response.text
    rejected: list[dict[str, Any]] = [
        {"position": 1, "id": "bad-1", "field": "subject",
         "reason": "required: the subject names the device"},
        {"position": 2, "id": "bad-2", "field": "type",
         "reason": "no mapping for type 'com.acme.spill'"},
        {"position": 4, "id": None, "field": "id", "reason": MISSING},
        {"position": 5, "id": None, "field": "event", "reason": "an event must be a JSON object"},
        {"position": 6, "id": "bad-6", "field": "source",
         "reason": "'urn:other:meters' is not a source this key may send"},
        {"position": 7, "id": "bad-7", "field": "specversion", "reason": "Input should be '1.0'"},
        {"position": 9, "id": "bad-9", "field": "time",
         "reason": "'yesterday' is not an RFC 3339 time "
                   "(YYYY-MM-DDTHH:MM:SS[.fraction] then Z or ±HH:MM)"},
    ]  # fmt: skip
    assert response.json() == receipt(
        received=10, stored=3, rejected=rejected, first_seq=1, last_seq=3
    )
    assert [e["attrs"]["origin_id"] for e in await stored(sender)] == ["g-0", "g-3", "g-8"]
    assert (await source_view(admin))["incidents"] == {"rejected_event": 1, "unknown_device": 1}


@contextlib.asynccontextmanager
async def limited_app(
    db_url: str, key: Ed25519PrivateKey, limits: Limits
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A collector with `limits`, the test source created: a client and an ingest key secret."""
    async with running_app(Settings(db_url=db_url, limits=limits), key) as application:
        admin_key = await make_admin_key(application.state.db)
        async with http_client(application) as http:
            http.headers.update(bearer(admin_key.secret))
            secret = await create_source(http, SOURCE_ID)
            del http.headers["Authorization"]
            yield http, secret


async def test_batch_over_the_event_limit_is_refused_whole(
    db_url: str, gateway_key: Ed25519PrivateKey
) -> None:
    """A batch of more events than max_batch_events gets 413 and stores none; the limit passes."""
    async with limited_app(db_url, gateway_key, Limits(max_batch_events=3)) as (http, key):
        response = await send_batch(http, key, [cloud_event(f"e-{n}") for n in range(4)])
        assert_refused(
            response, 413, "body_too_large", "batch carries 4 events, at most 3 are accepted"
        )
        assert response.json()["error"]["detail"] == {"events": 4, "limit_events": 3}
        assert await stored(http) == []
        at_limit = await send_batch(http, key, [cloud_event(f"e-{n}") for n in range(3)])
        assert at_limit.json()["stored"] == 3


async def test_body_over_the_byte_limit_is_refused(
    db_url: str, gateway_key: Ed25519PrivateKey
) -> None:
    """A body larger than max_body_bytes gets 413 and stores nothing; a smaller one is stored."""
    async with limited_app(db_url, gateway_key, Limits(max_body_bytes=1000)) as (http, key):
        events = [cloud_event(f"e-{n}") for n in range(8)]
        assert len(batch_body(events)) > 1000
        response = await send_batch(http, key, events)
        assert_refused(response, 413, "body_too_large", "body is larger than 1000 bytes")
        assert await stored(http) == []
        assert (await send(http, key, events[0])).json()["stored"] == 1


# -- keys -----------------------------------------------------------------------------------------


async def test_request_without_a_key_is_refused(sender: httpx.AsyncClient, ingest_key: str) -> None:
    """No Authorization header: 401, nothing stored."""
    message = to_structured(cloud_event("e-1"), JSONFormat())
    response = await sender.post("/v1/events", content=message.body, headers=message.headers)
    assert_refused(
        response,
        401,
        "unauthorized",
        "an API key is required: send 'Authorization: Bearer <key>'",
    )
    assert await stored(sender) == []


async def test_unknown_key_is_refused(sender: httpx.AsyncClient, ingest_key: str) -> None:
    """A key the collector never issued: 401, nothing stored."""
    response = await send(sender, ingest_key + "x", cloud_event("e-1"))
    assert_refused(response, 401, "unauthorized", "unknown API key")
    assert await stored(sender) == []


async def test_revoked_key_is_refused(
    sender: httpx.AsyncClient, admin: httpx.AsyncClient, db: Database
) -> None:
    """A key that worked is refused once revoked (401); the source's other key still works."""
    kept = await create_source(admin)
    issued = await admin.post(f"/v1/sources/{SOURCE_ID}/keys", json={"name": "doomed"})
    doomed, prefix = issued.json()["secret"], issued.json()["prefix"]
    assert (await send(sender, doomed, cloud_event("e-1"))).json()["stored"] == 1
    async with db.transaction(write=True) as session:
        assert await revoke_api_key(session=session, prefix=prefix) == 1
    response = await send(sender, doomed, cloud_event("e-2"))
    assert response.status_code == 401, response.text
    assert error_code(response) == "unauthorized"
    assert response.json()["error"]["message"].startswith(f"API key {prefix}… was revoked at ")
    assert (await send(sender, kept, cloud_event("e-3"))).json()["stored"] == 1
    assert [e["attrs"]["origin_id"] for e in await stored(sender)] == ["e-1", "e-3"]


async def test_admin_key_cannot_send_events(
    sender: httpx.AsyncClient, admin_key: IssuedKey, ingest_key: str
) -> None:
    """An admin key is not an ingest key: 403, nothing stored."""
    response = await send(sender, admin_key.secret, cloud_event("e-1"))
    assert_refused(
        response,
        403,
        "forbidden",
        f"API key {admin_key.prefix}… has role 'admin'; POST /v1/events needs an ingest key",
    )
    assert await stored(sender) == []


async def test_key_sends_for_its_own_source_only(
    sender: httpx.AsyncClient, admin: httpx.AsyncClient, ingest_key: str
) -> None:
    """Another source's key sending this source's URI is refused; its event lands nowhere."""
    other_key = await create_source(admin, "other", {**MAPPING, "ce_sources": ["urn:other:x"]})
    response = await send(sender, other_key, cloud_event("e-1"))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["detail"] == {
        "field": "source",
        "reason": f"{CE_SOURCE!r} is not a source this key may send",
        "id": "e-1",
    }
    assert await stored(sender) == []
    assert await stored(sender, "source:other") == []


# -- data quality ---------------------------------------------------------------------------------


async def test_data_quality_incidents_show_on_the_source(
    sender: httpx.AsyncClient, admin: httpx.AsyncClient, ingest_key: str, db: Database
) -> None:
    """Late arrivals, devices not in the catalog and rejected events are counted on the source
    (and detection on ingest adds that bin-1, in the catalog but bound to no account, is
    unbound usage)."""
    await seed_devices(admin, "bin-1")
    now = datetime.now(UTC)
    items: list[CloudEvent | object] = [
        cloud_event("on-time", time=now - timedelta(hours=23)),
        cloud_event("stranger", subject="bin-9"),
        cloud_event("late", time=now - timedelta(hours=25)),
        document(cloud_event("no-subject"), without="subject"),
    ]
    response = await send_batch(sender, ingest_key, items)
    assert (response.json()["stored"], len(response.json()["rejected"])) == (3, 1)
    view = await source_view(admin)
    assert (view["events_stored"], view["last_seq"]) == (3, 3)
    assert view["incidents"] == {
        "late_arrival": 1,
        "rejected_event": 1,
        "unbound_usage": 1,
        "unknown_device": 1,
    }
    async with db.transaction() as session:
        rows = (
            await session.execute(
                select(Incident.kind, Incident.first_seq, Incident.last_seq, Incident.detail)
                .where(Incident.gateway_id == GATEWAY_ID)
                .order_by(Incident.kind)
            )
        ).all()
    late, rejected, unbound, unknown = rows
    assert (unbound.first_seq, unbound.last_seq) == (1, 3)
    assert (late.first_seq, late.last_seq) == (3, 3)
    assert late.detail.startswith("1 event(s) arrived more than 1 day, 0:00:00 after they occurred")
    assert rejected.detail == (
        "1 record(s) rejected: #3 subject: required: the subject names the device"
    )
    assert unknown.detail == "1 device(s) not in the catalog, held as unbilled: bin-9"


async def test_clean_events_leave_no_incident(
    sender: httpx.AsyncClient, admin: httpx.AsyncClient, ingest_key: str
) -> None:
    """Recent events of catalog devices, sent once, record no incident of direct ingestion
    (late, unknown, rejected, duplicate); the only one is detection's: bin-1 is bound to no
    account, so its usage is unbound."""
    await seed_devices(admin, "bin-1")
    response = await send_batch(sender, ingest_key, [cloud_event("a"), cloud_event("b")])
    assert response.json()["stored"] == 2
    view = await source_view(admin)
    assert (view["events_stored"], view["incidents"]) == (2, {"unbound_usage": 1})


async def test_a_uri_cannot_shadow_another_sources_imports(
    sender: httpx.AsyncClient, admin: httpx.AsyncClient, ingest_key: str
) -> None:
    """A source may not own a URI in the `import:` key space of imported rows."""
    occurred = datetime.now(UTC) - timedelta(minutes=5)
    csv = f"txn,meter,ts,kg\nt1,bin-1,{occurred.isoformat()},2\n".encode()
    imported = await sender.post(
        "/v1/imports", params={"source": SOURCE_ID, "filename": "a.csv"}, content=csv,
        headers=bearer(ingest_key),
    )  # fmt: skip
    assert imported.json()["stored"] == 1, imported.text
    created = await admin.post(
        "/v1/sources", json={"id": "mimic", "mapping": {**MAPPING, "ce_sources": ["import:acme"]}}
    )
    assert created.status_code == 422, created.text
    assert "may not start with 'import:'" in created.text
    assert (await admin.get("/v1/sources/mimic")).status_code == 404


async def test_time_without_an_offset_is_refused_with_the_rfc_3339_hint(
    sender: httpx.AsyncClient, ingest_key: str
) -> None:
    """A CloudEvent `time` without Z or an offset is refused; the hint is about RFC 3339."""
    naive = {**document(cloud_event("n-1")), "time": "2026-11-01T08:00:00"}
    response = await send_batch(sender, ingest_key, [cloud_event("g-0"), naive])
    assert response.json()["rejected"] == [
        {
            "position": 1,
            "id": "n-1",
            "field": "time",
            "reason": "'2026-11-01T08:00:00' has no UTC offset (RFC 3339 needs Z or an offset)",
        }
    ]
    assert [e["attrs"]["origin_id"] for e in await stored(sender)] == ["g-0"]
