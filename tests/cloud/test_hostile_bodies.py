"""Hostile bodies on POST /v1/batches: each is a 4xx whose JSON error names the bound it broke,
stores nothing, files no incident, and leaves the gateway able to send its next good batch.

The bodies are built once per module. A "signed" body carries the real gateway's header and
signature (what a replay or a buggy gateway can send): it passes the signature check, so its
events are validated and the bound is named. An unsigned body is refused before its events are
read at all.
"""

import functools
import gzip
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.db import Database
from shared.chain import link_hash
from shared.events import GENESIS_HASH
from shared.signing import batch_header, sign
from tests.cloud.conftest import GATEWAY, JSON, READER, counts, make_events, post
from tests.support.batches import batch_document

MIB = 1024 * 1024

NOTHING = {"batches": 0, "events": 0, "incidents": 0}
GZIP = {**JSON, "Content-Encoding": "gzip"}
FORGER = Ed25519PrivateKey.generate()


@dataclass(frozen=True)
class Attack:
    """One hostile request and what the collector must answer."""

    body: bytes
    status: int
    code: str
    bound: str  # a phrase the error message must hold: the bound that was broken
    headers: dict[str, str]


def signed(key: Ed25519PrivateKey, change: Callable[[list[dict[str, Any]]], None]) -> bytes:
    """A real signed 3-event batch of GATEWAY whose wire events `change` then edits."""
    document = batch_document(make_events(1, 3), key)
    change(document["events"])
    return orjson.dumps(document)


def set_field(name: str, value: Any, *, index: int = 1) -> Callable[[list[dict[str, Any]]], None]:
    """An edit of one event's field."""

    def change(events: list[dict[str, Any]]) -> None:
        events[index][name] = value

    return change


def chained(key: Ed25519PrivateKey, contents: list[dict[str, Any]]) -> bytes:
    """A correctly chained and signed batch of raw event contents (no model checks them)."""
    prev_hash, wire = GENESIS_HASH, []
    for content in contents:
        hash_ = link_hash(prev_hash, content)
        wire.append({**content, "prev_hash": prev_hash, "hash": hash_})
        prev_hash = hash_
    first, last = contents[0]["seq"], contents[-1]["seq"]
    header = batch_header(
        gateway_id=GATEWAY,
        first_seq=first,
        last_seq=last,
        prev_hash=GENESIS_HASH,
        last_hash=prev_hash,
    )
    document = {
        "gateway_id": GATEWAY,
        "first_seq": first,
        "last_seq": last,
        "prev_hash": GENESIS_HASH,
        "last_hash": prev_hash,
        "signature": sign(key, header),
        "events": wire,
    }
    return orjson.dumps(document)


def huge_quantity_contents() -> list[dict[str, Any]]:
    """One event whose quantity is 10**131072 written out (PostgreSQL stored it as 0)."""
    content = make_events(1, 1)[0].content()
    content["quantity"] = "1" + "0" * 131072
    return [content]


def empty_events_gzip(count: int) -> bytes:
    """`count` empty events under a real gateway's name, no valid signature, gzip-compressed."""
    events = b",".join([b"{}"] * count)
    document = (
        b'{"gateway_id":"' + GATEWAY.encode() + b'","first_seq":1,"last_seq":' + str(count).encode()
    )
    document += b',"prev_hash":"' + GENESIS_HASH.encode() + b'","last_hash":"' + b"a" * 64
    document += b'","signature":"AAAA","events":[' + events + b"]}"
    return gzip.compress(document, 6)


def deep_attrs(key: Ed25519PrivateKey, depth: int) -> bytes:
    """A signed batch with an attr holding a list nested `depth` deep (written as bytes)."""
    body = signed(key, set_field("attrs", {"deep": "DEEP"}, index=0))
    return body.replace(b'"DEEP"', b"[" * depth + b"]" * depth, 1)


def many_attrs(events: list[dict[str, Any]]) -> None:
    """65 attrs on one event (the bound is 64)."""
    events[0]["attrs"] = {f"a{n}": n for n in range(65)}


def unsigned_copy(key: Ed25519PrivateKey) -> bytes:
    """A valid-looking 500-event batch whose signature is another key's."""
    return orjson.dumps(batch_document(make_events(1, 500), FORGER))


def big_exponents(key: Ed25519PrivateKey) -> bytes:
    """500 events whose quantity is 1e999990 (9 ms each to write out), signed by another key."""
    document = orjson.loads(unsigned_copy(key))
    for event in document["events"]:
        event["quantity"] = "1e999990"
    return orjson.dumps(document)


def surrogate(key: Ed25519PrivateKey) -> bytes:
    """A signed batch whose event name is a lone surrogate (a JSON escape UTF-8 cannot encode)."""
    return signed(key, set_field("name", "x")).replace(b'"name":"x"', b'"name":"\\ud800"', 1)


BUILDERS: dict[str, Callable[[Ed25519PrivateKey], Attack]] = {
    "big_exponents_unsigned": lambda key: Attack(
        big_exponents(key), 401, "invalid_signature", "does not verify", JSON
    ),
    "big_exponent_signed": lambda key: Attack(
        signed(key, set_field("quantity", "1e999990")),
        422,
        "invalid_batch",
        "more than 30 digits before the point",
        JSON,
    ),
    "31_digit_quantity_signed": lambda key: Attack(
        signed(key, set_field("quantity", "1" * 31)),
        422,
        "invalid_batch",
        "more than 30 digits before the point",
        JSON,
    ),
    "31_fraction_digits_signed": lambda key: Attack(
        signed(key, set_field("quantity", "0." + "1" * 31)),
        422,
        "invalid_batch",
        "more than 30 digits after the point",
        JSON,
    ),
    "underscore_quantity_signed": lambda key: Attack(
        signed(key, set_field("quantity", "1_000")),
        422,
        "invalid_batch",
        "ASCII digits",
        JSON,
    ),
    "arabic_indic_quantity_signed": lambda key: Attack(
        signed(key, set_field("quantity", "\u0661\u0662")),
        422,
        "invalid_batch",
        "ASCII digits",
        JSON,
    ),
    "huge_quantity_chained_and_signed": lambda key: Attack(
        chained(key, huge_quantity_contents()),
        422,
        "invalid_batch",
        "at most 30 digits before the point",
        JSON,
    ),
    "300k_empty_events_gzip": lambda key: Attack(
        empty_events_gzip(300_000), 413, "body_too_large", "objects or arrays", GZIP
    ),
    "10001_empty_events_gzip": lambda key: Attack(
        empty_events_gzip(10_001), 413, "body_too_large", "at most 10000 are accepted", GZIP
    ),
    "1m_empty_events_gzip": lambda key: Attack(
        empty_events_gzip(1_000_000), 413, "body_too_large", "JSON values", GZIP
    ),
    "attrs_int_2_64": lambda key: Attack(
        signed(key, set_field("attrs", {"register": 0})).replace(
            b'"register":0', b'"register":18446744073709551616', 1
        ),
        422,
        "invalid_batch",
        "signed 64-bit",
        JSON,
    ),
    "attrs_int_2_63": lambda key: Attack(
        signed(key, set_field("attrs", {"register": 2**63})),
        422,
        "invalid_batch",
        "signed 64-bit",
        JSON,
    ),
    "attrs_long_string": lambda key: Attack(
        signed(key, set_field("attrs", {"note": "x" * 1025})),
        422,
        "invalid_batch",
        "longer than 1024",
        JSON,
    ),
    "attrs_65": lambda key: Attack(
        signed(key, many_attrs), 422, "invalid_batch", "at most 64 attrs", JSON
    ),
    "attrs_deep_list": lambda key: Attack(
        deep_attrs(key, 100), 422, "invalid_batch", "valid string", JSON
    ),
    "attrs_deeper_than_pydantic": lambda key: Attack(
        deep_attrs(key, 500), 400, "malformed_json", "recursion limit", JSON
    ),
    "attrs_deeper_than_json": lambda key: Attack(
        deep_attrs(key, 5000), 400, "malformed_json", "depth", JSON
    ),
    "nul_in_name": lambda key: Attack(
        signed(key, set_field("name", "door\x00open")), 422, "invalid_batch", "U+0000", JSON
    ),
    "nul_in_channel": lambda key: Attack(
        signed(key, set_field("channel", "1\x00")), 422, "invalid_batch", "U+0000", JSON
    ),
    "nul_in_unit": lambda key: Attack(
        signed(key, set_field("unit", "\x00")), 422, "invalid_batch", "U+0000", JSON
    ),
    "nul_in_device_id": lambda key: Attack(
        signed(key, set_field("device_id", "panel\x00")), 422, "invalid_batch", "pattern", JSON
    ),
    "nul_in_attr_key": lambda key: Attack(
        signed(key, set_field("attrs", {"k\x00": 1})), 422, "invalid_batch", "U+0000", JSON
    ),
    "nul_in_attr_value": lambda key: Attack(
        signed(key, set_field("attrs", {"k": "v\x00"})), 422, "invalid_batch", "U+0000", JSON
    ),
    "lone_surrogate": lambda key: Attack(surrogate(key), 400, "malformed_json", "surrogate", JSON),
    "time_offset_below_year_1": lambda key: Attack(
        signed(key, set_field("occurred_at", "0001-01-01T00:00:00+01:00")),
        422,
        "invalid_batch",
        "outside the supported range",
        JSON,
    ),
    "time_offset_above_year_9999": lambda key: Attack(
        signed(key, set_field("observed_at", "9999-12-31T23:59:59-01:00")),
        422,
        "invalid_batch",
        "outside the supported range",
        JSON,
    ),
    "time_before_1970": lambda key: Attack(
        signed(key, set_field("occurred_at", "1969-12-31T23:59:59Z")),
        422,
        "invalid_batch",
        "[1970, 9000)",
        JSON,
    ),
    "seq_int64_max": lambda key: Attack(
        orjson.dumps(
            {**orjson.loads(signed(key, set_field("seq", 2**63 - 1))), "first_seq": 2**63 - 1}
        ),
        422,
        "invalid_batch",
        "less than or equal to 4611686018427387904",
        JSON,
    ),
    "junk_bytes": lambda key: Attack(
        b"\x8b\x00junk{" * 100, 400, "malformed_json", "not valid JSON", JSON
    ),
    "json_array": lambda key: Attack(
        b"[1, 2, 3]", 422, "invalid_batch", "a batch is a JSON object", JSON
    ),
    "events_not_an_array": lambda key: Attack(
        b'{"gateway_id": "site-042-gw1", "events": {}}',
        422,
        "invalid_batch",
        "array of events",
        JSON,
    ),
    "forged_signature": lambda key: Attack(
        unsigned_copy(key), 401, "invalid_signature", "signature", JSON
    ),
    "unknown_gateway": lambda key: Attack(
        orjson.dumps(batch_document(make_events(1, 3, gateway_id="ghost-gw"), FORGER)),
        403,
        "unknown_gateway",
        "not registered",
        JSON,
    ),
    "no_content_type": lambda key: Attack(
        signed(key, set_field("quantity", "1")), 415, "unsupported_media_type", "(none)", {}
    ),
    "text_plain": lambda key: Attack(
        signed(key, set_field("quantity", "1")),
        415,
        "unsupported_media_type",
        "send a batch as application/json",
        {"Content-Type": "text/plain"},
    ),
}


@functools.cache
def attack(key: Ed25519PrivateKey, name: str) -> Attack:
    """The attack `name`, built once for the session's gateway key."""
    return BUILDERS[name](key)


ATTACKS = sorted(BUILDERS)


@pytest.mark.parametrize("name", ATTACKS)
async def test_hostile_body_is_refused_naming_the_bound_and_costs_nothing(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey, name: str
) -> None:
    hostile = attack(gateway_key, name)

    response = await client.post("/v1/batches", content=hostile.body, headers=hostile.headers)

    assert response.status_code == hostile.status, response.text
    error = response.json()["error"]
    assert error["code"] == hostile.code
    assert hostile.bound in error["message"]
    assert isinstance(error["detail"], dict)
    assert await counts(db) == NOTHING
    good = await post(client, make_events(1, 3), gateway_key)
    assert good.status_code == 200 and good.json()["stored"] == 3


async def test_junk_naming_a_gateway_writes_nothing_on_its_record(
    client: httpx.AsyncClient, db: Database
) -> None:
    """100 junk bodies naming the gateway used to give it `malformed_batch: 100`."""
    junk = orjson.dumps({"gateway_id": GATEWAY, "first_seq": 1, "last_seq": 1, "events": [{}]})

    for _ in range(100):
        response = await client.post("/v1/batches", content=junk, headers=JSON)
        assert response.status_code == 422

    assert await counts(db) == NOTHING
    status = (await client.get(f"/v1/gateways/{GATEWAY}", headers=READER)).json()
    assert status["incidents"] == {}


@pytest.mark.parametrize(
    "since", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1969-01-01T00:00:00Z"]
)
async def test_events_query_with_a_time_out_of_range_is_422(
    client: httpx.AsyncClient, since: str
) -> None:
    response = await client.get("/v1/events", headers=READER, params={"since": since})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_parameters"
    assert ["query", "since"] in [item["loc"] for item in error["detail"]["errors"]]


async def test_a_gzip_bomb_is_refused_after_the_first_steps_of_inflation(
    client: httpx.AsyncClient, db: Database
) -> None:
    # 60 MiB of empty objects in about 60 KiB: refused once what came out passes the batch's
    # budget of objects, not after inflating all of it (21 million objects).
    inflated = b'{"gateway_id":"' + GATEWAY.encode() + b'","events":[' + b"{}," * (20 * MIB)
    body = gzip.compress(inflated + b"{}]}", compresslevel=9)

    response = await client.post(
        "/v1/batches", content=body, headers={**JSON, "Content-Encoding": "gzip"}
    )

    assert response.status_code == 413
    detail = response.json()["error"]["detail"]
    assert detail["json_containers"] > detail["limit_json_containers"]
    assert detail["json_containers"] < 2 * detail["limit_json_containers"] + 1024 * 1024
    assert await counts(db) == {"batches": 0, "events": 0, "incidents": 0}
