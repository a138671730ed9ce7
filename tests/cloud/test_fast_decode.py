"""msgspec's batch decoder returns only what pydantic returns, equal, and covers what gateways send.

`decode_batch` may leave any batch to pydantic (None); whenever it returns one, pydantic must
accept the same body and make an equal batch: the same values of the same types (Decimal with
the same digits, UTC datetimes), fields in the same order. Random valid batches and random
one-field mutations of them (lax forms pydantic accepts, values it refuses) are tried.
"""

from datetime import UTC
from decimal import Decimal
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cloud.errors import InvalidBatch
from cloud.ingest.fast_decode import decode_batch
from cloud.ingest.service import parse_batch, parse_header
from shared.chain import seal
from shared.events import GENESIS_HASH, Batch, BatchHeader, EventDraft
from tests.shared.strategies import DRAFTS, PLAIN_DRAFTS
from tests.support.batches import batch_document, chain_events, draft

KEY = Ed25519PrivateKey.generate()

# Values pydantic accepts in a lax form, refuses, or that sit on a bound, per event field.
HOSTILE: dict[str, list[Any]] = {
    "seq": [0, -1, "1", 1.0, 2.0, 2**62 + 1, 2**64, None, True],
    "gateway_id": ["other", "", None, 1],
    "device_id": [
        "",
        "a" * 128,
        "a" * 129,
        "-x",
        "é",
        "dév",
        "a\n",
        "a b",
        5,
        None,
        "panel_1:a/b.c",
    ],
    "channel": [None, "", "x" * 64, "x" * 65, "a\u0000", "\ud800", 1, "é✓", "a\nb"],
    "name": ["", "n" * 64, "n" * 65, None, "x\\y", "\u00e9", 0],
    "kind": ["ACTIVITY", "activity ", "", None, 1, "measurement"],
    "quantity": [
        None,
        0,
        -0,
        1,
        -5,
        10**29,
        10**30,
        2**64,
        1.5,
        1.0,
        True,
        "",
        "0",
        "-0",
        "0.0",
        "1.50",
        "1e3",
        "1E-2",
        "007",
        ".5",
        "5.",
        "+1",
        " 1",
        "1_000",
        "\u0661",
        "0." + "0" * 29 + "1",
        "0." + "0" * 30 + "1",
        "9" * 30,
        "9" * 31,
        "-" + "9" * 30 + "." + "9" * 30,
        "NaN",
        "inf",
        {"x": 1},
        [1],
    ],
    "unit": [None, "", "u" * 65, "kWh", 3],
    "occurred_at": [
        "2026-11-01T08:00:01Z",
        "2026-11-01T08:00:01.5Z",
        "2026-11-01T08:00:01.1234567Z",
        "2026-11-01T08:00:01+00:00",
        "2026-11-01T09:00:01+01:00",
        "2026-11-01T08:00:01",
        "2026-11-01 08:00:01Z",
        "2026-11-01t08:00:01z",
        "2026-11-01",
        "2026-02-30T08:00:00Z",
        "2026-11-01T24:00:00Z",
        "2026-11-01T23:59:60Z",
        "1969-12-31T23:59:59.999999Z",
        "1970-01-01T00:00:00.000000Z",
        "8999-12-31T23:59:59.999999Z",
        "9000-01-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        1_700_000_000,
        1.7e9,
        "1700000000",
        None,
        "",
        "2026-W44-7T08:00:00Z",
        "2026-11-01T08:00:01,5Z",
        "\uff12\uff10\uff12\uff16-11-01T08:00:01Z",
    ],
    "clock": ["synced", "SYNCED", "", None, 0],
    "attrs": [
        {},
        None,
        [],
        {"": 1},
        {"k" * 64: 1},
        {"k" * 65: 1},
        {"a": 1.0},
        {"a": 1.5},
        {"a": 2**63},
        {"a": 2**63 - 1},
        {"a": -(2**63)},
        {"a": -(2**63) - 1},
        {"a": "x" * 1024},
        {"a": "x" * 1025},
        {"a": [1]},
        {"a": {"b": 1}},
        {"a": True},
        {"a": None},
        {"a": "\u0000"},
        {f"k{n}": n for n in range(64)},
        {f"k{n}": n for n in range(65)},
        {"é": "✓"},
    ],
    "prev_hash": ["0" * 63, "0" * 65, "A" * 64, "g" * 64, None, 0],
    "hash": ["f" * 64, "F" * 64, "0" * 63 + "\n", " " + "0" * 63],
}
ABSENT = object()  # a mutation that removes the field


def equal_batches(fast: Batch, slow: Batch) -> None:
    """The same batch: values, their types and Decimal digits, field order of every event."""
    assert fast.model_dump() == slow.model_dump()
    assert list(fast.__dict__) == list(slow.__dict__)
    for mine, theirs in zip(fast.events, slow.events, strict=True):
        assert list(mine.__dict__) == list(theirs.__dict__)
        for name, value in theirs.__dict__.items():
            assert type(mine.__dict__[name]) is type(value), name
            if isinstance(value, Decimal):
                assert mine.__dict__[name].as_tuple() == value.as_tuple()
        assert (
            mine.occurred_at.tzinfo is UTC and theirs.occurred_at.utcoffset().total_seconds() == 0
        )


def pydantic_batch(body: bytes) -> Batch | None:
    try:
        return Batch.model_validate_json(body)
    except ValidationError:
        return None


def header_of(document: dict[str, Any]) -> BatchHeader | None:
    try:
        return parse_header(document)
    except InvalidBatch:
        return None


def document_of(drafts: list[EventDraft]) -> dict[str, Any]:
    prev_hash = GENESIS_HASH
    events = []
    for seq, item in enumerate(drafts, start=1):
        events.append(seal(item, gateway_id="gw-1", seq=seq, prev_hash=prev_hash))
        prev_hash = events[-1].hash
    return batch_document(events, KEY)


def check(body: bytes, header: BatchHeader) -> Batch | None:
    fast = decode_batch(body, header=header)
    if fast is not None:
        slow = pydantic_batch(body)
        assert slow is not None, "msgspec accepted a batch pydantic refuses"
        equal_batches(fast, slow)
    return fast


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(DRAFTS, min_size=1, max_size=4))
def test_random_valid_batches_decode_as_pydantic_decodes_them(drafts: list[EventDraft]) -> None:
    document = document_of(drafts)
    body = orjson.dumps(document)
    header = header_of(document)
    assert header is not None
    fast = check(body, header)
    assert (fast is None) == (b"\\" in body)  # every valid batch without an escape is decoded


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PLAIN_DRAFTS, min_size=1, max_size=3), st.data())
def test_mutated_batches_are_refused_or_decoded_as_pydantic_decodes_them(
    drafts: list[EventDraft], data: st.DataObject
) -> None:
    document = document_of(drafts)
    header = header_of(document)
    assert header is not None
    assert check(orjson.dumps(document), header) is not None  # unmutated: the fast path
    index = data.draw(st.integers(min_value=0, max_value=len(drafts) - 1))
    field = data.draw(st.sampled_from([*HOSTILE, "extra"]))
    event = document["events"][index]
    if field == "extra":
        event["unknown_field"] = data.draw(st.sampled_from([1, None, "x"]))
    else:
        value = data.draw(st.sampled_from([*HOSTILE[field], ABSENT]))
        if value is ABSENT:
            event.pop(field, None)
        else:
            event[field] = value
    try:
        body = orjson.dumps(document)
    except orjson.JSONEncodeError:  # a lone surrogate: not a body anyone can send
        assume(False)
    check(body, header)


@pytest.mark.parametrize(
    "text",
    [
        '"seq":1,"seq":1',  # duplicate keys: both keep the last
        '"attrs":{"register":0,"register":7}',
    ],
)
def test_duplicate_keys_decode_as_pydantic_decodes_them(text: str) -> None:
    events = chain_events([draft(1)], gateway_id="gw-1")
    document = batch_document(events, KEY)
    body = orjson.dumps(document)
    key = text.split(":", 1)[0]
    start = body.index(key.encode(), body.index(b'"events"'))
    end = body.index(b",", start) if key == '"seq"' else body.index(b"}", start) + 1
    body = body[:start] + text.encode() + body[end:]
    header = header_of(document)
    assert header is not None
    check(body, header)


def test_what_gateways_send_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches as the forwarder writes them (microsecond times, decimal quantities, attrs)."""
    drafts = [draft(n, device_id=f"dev-{n % 7}", quantity=f"{n}.25") for n in range(1, 300)]
    document = document_of(drafts)
    body = orjson.dumps(document)
    header = header_of(document)
    assert header is not None
    assert check(body, header) is not None

    def no_pydantic(*args: object, **kwargs: object) -> None:
        raise AssertionError("pydantic was asked")

    monkeypatch.setattr(Batch, "model_validate_json", no_pydantic)
    assert parse_batch(body, header=header).last_seq == 299


def test_a_backslash_anywhere_leaves_the_batch_to_pydantic() -> None:
    events = chain_events([draft(1)], gateway_id="gw-1")
    document = batch_document(events, KEY)
    document["events"][0]["attrs"] = {"path": "C:\\meter"}
    header = header_of(document)
    assert header is not None
    assert decode_batch(orjson.dumps(document), header=header) is None


def test_every_hostile_value_is_refused_or_decoded_as_pydantic_decodes_it() -> None:
    """Each listed value in each field of a batch as gateways send it, deterministically."""
    drafts = [draft(n, device_id=f"dev-{n}", quantity="2.5") for n in range(1, 4)]
    decoded = 0
    for field, values in HOSTILE.items():
        for value in [*values, ABSENT]:
            document = document_of(drafts)
            header = header_of(document)
            assert header is not None
            if value is ABSENT:
                document["events"][1].pop(field)
            else:
                document["events"][1][field] = value
            try:
                body = orjson.dumps(document)
            except orjson.JSONEncodeError:
                continue
            decoded += check(body, header) is not None
    assert decoded > 20  # the lax and bound values pydantic accepts are decoded here too
