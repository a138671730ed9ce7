"""Every bad batch gets a clear error and stores nothing; it is filed as an incident of its gateway
only when its signature verified (a forger or a junk body cannot write on a gateway's record)."""

import gzip
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.db import Database
from cloud.settings import MIB, Limits, Settings
from tests.cloud.conftest import (
    GATEWAY,
    JSON,
    READER,
    counts,
    error_code,
    http_client,
    incident_kinds,
    make_events,
    post,
    running_app,
)
from tests.support.batches import batch_document, chain_events, draft

NOTHING = {"batches": 0, "events": 0, "incidents": 0}
OTHER_CHAIN = "ab" * 32


async def post_document(client: httpx.AsyncClient, document: dict[str, Any]) -> httpx.Response:
    """POST a batch document as JSON bytes."""
    return await client.post("/v1/batches", content=orjson.dumps(document), headers=JSON)


async def test_batch_signed_by_another_key_is_refused_and_only_logged(
    client: httpx.AsyncClient, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    forger = Ed25519PrivateKey.generate()

    response = await post(client, make_events(1, 10), forger)

    assert response.status_code == 401
    assert error_code(response) == "invalid_signature"
    assert await counts(db) == NOTHING
    [record] = [r for r in caplog.records if r.name == "cloud.ingest.service"]
    assert (record.reason, record.claimed_gateway_id, record.filed) == (  # type: ignore[attr-defined]
        "invalid_signature",
        GATEWAY,
        False,
    )


async def test_event_changed_after_signing_breaks_the_chain_and_is_filed(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    document = batch_document(make_events(1, 10), gateway_key)
    document["events"][3]["quantity"] = "500"

    response = await post_document(client, document)

    assert response.status_code == 409
    assert error_code(response) == "chain_broken"
    assert response.json()["error"]["detail"] == {"seq": 4}
    assert await counts(db) == {**NOTHING, "incidents": 1}
    assert await incident_kinds(db) == ["chain_broken"]


async def test_event_rehashed_after_signing_fails_the_signature(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    events = make_events(1, 3)
    tampered = chain_events([draft(1), draft(2), draft(3, quantity="9")], gateway_id=GATEWAY)
    document = batch_document(events, gateway_key)
    document["events"] = [event.to_wire() for event in tampered]
    document["last_hash"] = tampered[-1].hash

    response = await post_document(client, document)

    assert response.status_code == 401
    assert error_code(response) == "invalid_signature"
    assert await counts(db) == NOTHING


async def test_batch_not_linking_to_the_stored_chain_is_refused(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    await post(client, make_events(1, 10), gateway_key)
    elsewhere = make_events(11, 20, prev_hash=OTHER_CHAIN)

    response = await post(client, elsewhere, gateway_key)

    assert response.status_code == 409
    assert error_code(response) == "chain_broken"
    assert response.json()["error"]["detail"] == {"seq": 11}
    assert await counts(db) == {"batches": 1, "events": 10, "incidents": 1}
    assert await incident_kinds(db) == ["chain_broken"]


async def test_first_event_must_link_to_genesis(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    response = await post(client, make_events(1, 5, prev_hash=OTHER_CHAIN), gateway_key)

    assert response.status_code == 409
    assert error_code(response) == "chain_broken"
    assert await counts(db) == {**NOTHING, "incidents": 1}


async def test_filling_a_gap_must_link_to_the_event_after_it(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    chain = make_events(1, 30)
    await post(client, chain[:10], gateway_key)
    await post(client, chain[20:], gateway_key)
    forked = chain_events(
        [draft(n, device_id="other") for n in range(11, 21)],
        gateway_id=GATEWAY,
        first_seq=11,
        prev_hash=chain[9].hash,
    )

    response = await post(client, forked, gateway_key)

    assert response.status_code == 409
    assert error_code(response) == "chain_broken"
    assert response.json()["error"]["detail"] == {"seq": 20}
    assert await counts(db) == {"batches": 2, "events": 20, "incidents": 2}
    assert await incident_kinds(db) == ["seq_gap", "chain_broken"]  # 11..20 stays missing


async def test_stored_seq_with_another_hash_is_a_conflict(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    original = make_events(1, 10)
    await post(client, original, gateway_key)
    rewritten = chain_events([draft(n, quantity="2") for n in range(1, 11)], gateway_id=GATEWAY)

    response = await post(client, rewritten, gateway_key)

    assert response.status_code == 409
    assert error_code(response) == "seq_conflict"
    assert response.json()["error"]["detail"]["seqs"][:3] == [1, 2, 3]
    assert await counts(db) == {"batches": 1, "events": 10, "incidents": 1}
    assert await incident_kinds(db) == ["seq_conflict"]
    listed = (await client.get("/v1/events", headers=READER)).json()["events"]
    assert [event["hash"] for event in listed] == [event.hash for event in original]


async def test_unknown_gateway_is_refused_and_only_logged(
    client: httpx.AsyncClient, db: Database
) -> None:
    stranger = Ed25519PrivateKey.generate()

    response = await post(client, make_events(1, 3, gateway_id="ghost-gw"), stranger)

    assert response.status_code == 403
    assert error_code(response) == "unknown_gateway"
    assert await counts(db) == NOTHING


async def test_malformed_json_is_a_400(client: httpx.AsyncClient, db: Database) -> None:
    response = await client.post(
        "/v1/batches", content=b'{"gateway_id": "site-042-gw1", ', headers=JSON
    )

    assert response.status_code == 400
    assert error_code(response) == "malformed_json"
    assert await counts(db) == NOTHING


async def test_invalid_batch_names_the_location(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    document = batch_document(make_events(1, 3), gateway_key)
    del document["signature"]

    response = await post_document(client, document)

    assert response.status_code == 422
    body = response.json()["error"]
    assert body["code"] == "invalid_batch"
    assert ["signature"] in [error["loc"] for error in body["detail"]["errors"]]
    assert await counts(db) == NOTHING


async def test_float_quantity_is_refused(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    document = batch_document(make_events(1, 3), gateway_key)
    document["events"][1]["quantity"] = 1.5

    response = await post_document(client, document)

    assert response.status_code == 422
    errors = response.json()["error"]["detail"]["errors"]
    assert errors[0]["loc"] == ["events", 1, "quantity"]
    assert "float" in errors[0]["msg"]
    assert await counts(db) == NOTHING


async def test_body_over_the_limit_is_refused_from_its_length(
    client: httpx.AsyncClient, db: Database
) -> None:
    response = await client.post("/v1/batches", content=b" " * (8 * MIB + 1), headers=JSON)

    assert response.status_code == 413
    assert error_code(response) == "body_too_large"
    assert response.json()["error"]["detail"]["size_bytes"] == 8 * MIB + 1
    assert await counts(db) == NOTHING


async def test_chunked_body_is_cut_off_at_the_limit(
    client: httpx.AsyncClient, db: Database
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(9):
            yield b" " * MIB

    response = await client.post("/v1/batches", content=chunks(), headers=JSON)

    assert response.status_code == 413
    assert error_code(response) == "body_too_large"
    assert await counts(db) == NOTHING


async def test_gzip_bomb_is_stopped(client: httpx.AsyncClient, db: Database) -> None:
    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = b"".join(deflater.compress(b"\0" * MIB) for _ in range(65)) + deflater.flush()
    assert len(bomb) < MIB

    response = await client.post(
        "/v1/batches", content=bomb, headers={**JSON, "Content-Encoding": "gzip"}
    )

    assert response.status_code == 413
    assert error_code(response) == "body_too_large"
    assert await counts(db) == NOTHING


async def test_broken_gzip_and_unknown_encoding_are_400(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    truncated = gzip.compress(orjson.dumps(batch_document(make_events(1, 3), gateway_key)))[:-9]
    responses = [
        await client.post(
            "/v1/batches", content=b"not gzip at all", headers={**JSON, "Content-Encoding": "gzip"}
        ),
        await client.post(
            "/v1/batches", content=truncated, headers={**JSON, "Content-Encoding": "gzip"}
        ),
        await client.post("/v1/batches", content=b"{}", headers={**JSON, "Content-Encoding": "br"}),
    ]

    assert [(r.status_code, error_code(r)) for r in responses] == [(400, "malformed_body")] * 3
    assert await counts(db) == NOTHING


async def test_batch_with_more_events_than_allowed_is_refused(
    db_url: str, gateway_key: Ed25519PrivateKey
) -> None:
    settings = Settings(db_url=db_url, limits=Limits(max_batch_events=5))
    async with running_app(settings, gateway_key) as app, http_client(app) as client:
        response = await post(client, make_events(1, 6), gateway_key)
        totals = await counts(app.state.db)

    assert response.status_code == 413
    assert error_code(response) == "body_too_large"
    assert response.json()["error"]["detail"] == {"events": 6, "limit_events": 5}
    assert totals == NOTHING


async def test_rewriting_the_middle_of_the_chain_is_a_conflict(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    chain = make_events(1, 30)
    await post(client, chain, gateway_key)
    rewritten = chain_events(
        [draft(n, quantity="3") for n in range(11, 21)],
        gateway_id=GATEWAY,
        first_seq=11,
        prev_hash=chain[9].hash,
    )

    response = await post(client, rewritten, gateway_key)

    assert response.status_code == 409
    assert error_code(response) == "seq_conflict"
    assert await counts(db) == {"batches": 1, "events": 30, "incidents": 1}
