"""Known answers for the event contract, and tamper detection on signed batches."""

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from shared.canonical import format_decimal, format_time
from shared.chain import canonical_bytes, seal, verify_chain
from shared.errors import ChainBroken, InvalidSignature
from shared.events import GENESIS_HASH, Batch, ClockState, EventDraft, EventKind, UsageEvent
from shared.signing import load_public_key, public_key_pem, verify_batch
from tests.support.batches import batch_document, chain_events, draft

KNOWN_CANONICAL = (
    b'{"attrs":{"note":"\xc3\xa4","register":7,"reset":false,"table":"input"},"channel":"1",'
    b'"clock":"synced","device_id":"panel-1","gateway_id":"site-042-gw1","kind":"activity",'
    b'"name":"door_open","observed_at":"2026-11-21T09:30:01.000000Z",'
    b'"occurred_at":"2026-11-21T09:30:00.123456Z","quantity":"2.5","seq":1,"unit":"count"}'
)
KNOWN_HASH = "b62d9fa92703fbef6957d9f76caba3179f5b54bb3bbfe0ea3965ecf5ca0b1b78"


def known_draft() -> EventDraft:
    return EventDraft(
        device_id="panel-1",
        channel="1",
        name="door_open",
        kind=EventKind.ACTIVITY,
        quantity=Decimal("2.50"),
        unit="count",
        # The same instant given with an offset must canonicalize to UTC.
        occurred_at=datetime(2026, 11, 21, 10, 30, 0, 123456, tzinfo=timezone(timedelta(hours=1))),
        observed_at=datetime(2026, 11, 21, 9, 30, 1, tzinfo=UTC),
        clock=ClockState.SYNCED,
        attrs={"table": "input", "register": 7, "reset": False, "note": "ä"},
    )


def test_known_event_has_known_canonical_bytes_and_hash() -> None:
    event = seal(known_draft(), gateway_id="site-042-gw1", seq=1, prev_hash=GENESIS_HASH)
    assert canonical_bytes(event) == KNOWN_CANONICAL
    assert event.hash == hashlib.sha256(bytes(32) + KNOWN_CANONICAL).hexdigest() == KNOWN_HASH


def test_wire_form_round_trips_to_the_same_hash() -> None:
    event = seal(known_draft(), gateway_id="site-042-gw1", seq=1, prev_hash=GENESIS_HASH)
    again = Batch.model_validate_json(
        orjson.dumps(
            {
                "gateway_id": "site-042-gw1",
                "first_seq": 1,
                "last_seq": 1,
                "prev_hash": GENESIS_HASH,
                "last_hash": event.hash,
                "signature": "x",
                "events": [event.to_wire()],
            }
        )
    ).events[0]
    assert canonical_bytes(again) == KNOWN_CANONICAL
    assert verify_chain([again], prev_hash=GENESIS_HASH) == KNOWN_HASH


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("2.50"), "2.5"),
        (Decimal("100"), "100"),
        (Decimal("1E+3"), "1000"),
        (Decimal("-0.0"), "0"),
        (Decimal("0.000001"), "0.000001"),
        (Decimal("-12.340"), "-12.34"),
        (Decimal("7"), "7"),
        (Decimal("-0"), "0"),
        (
            Decimal("1234567890123456789012345678901234567890.5000"),
            "1234567890123456789012345678901234567890.5",
        ),
        (
            Decimal("0.10000000000000000000000000000000000001"),
            "0.10000000000000000000000000000000000001",
        ),
    ],
)
def test_decimals_are_canonical(value: Decimal, text: str) -> None:
    assert format_decimal(value) == text


def test_times_are_utc_with_microseconds() -> None:
    assert format_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000000Z"
    plus_two = timezone(timedelta(hours=2))
    assert format_time(datetime(2026, 1, 1, 1, 0, 0, 7, tzinfo=plus_two)) == (
        "2025-12-31T23:00:00.000007Z"
    )
    with pytest.raises(ValueError, match="naive"):
        format_time(datetime(2026, 1, 2))


@pytest.mark.parametrize("bad", [1.5, "abc", "NaN", "Infinity", True])
def test_quantity_refuses_floats_and_non_numbers(bad: object) -> None:
    with pytest.raises(ValidationError, match="quantity"):
        draft_with_quantity(bad)


def draft_with_quantity(quantity: object) -> EventDraft:
    """A draft that differs from a valid one only by its quantity."""
    return EventDraft(
        device_id="d",
        name="n",
        kind="activity",
        quantity=quantity,
        occurred_at=datetime.now(UTC),
        observed_at=datetime.now(UTC),
        clock="synced",
    )


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValidationError, match="time zone"):
        EventDraft(
            device_id="d",
            name="n",
            kind="activity",
            occurred_at=datetime(2026, 1, 1),
            observed_at=datetime.now(UTC),
            clock="synced",
        )


def signed_batch(key: Ed25519PrivateKey) -> dict[str, object]:
    events = chain_events([draft(n) for n in range(5)], gateway_id="gw-1")
    return batch_document(events, key)


def test_signed_batch_verifies() -> None:
    key = Ed25519PrivateKey.generate()
    batch = Batch.model_validate(signed_batch(key))
    verify_batch(batch, load_public_key(public_key_pem(key.public_key()).encode()))


@pytest.mark.parametrize(
    "field",
    [
        "device_id",
        "channel",
        "name",
        "kind",
        "quantity",
        "unit",
        "occurred_at",
        "observed_at",
        "clock",
        "attrs",
    ],
)
def test_changing_any_event_field_fails_verification(field: str) -> None:
    key = Ed25519PrivateKey.generate()
    document = signed_batch(key)
    changed = {
        "device_id": "panel-2",
        "channel": "9",
        "name": "armed",
        "kind": "measurement",
        "quantity": "999",
        "unit": "kg",
        "occurred_at": "2020-01-01T00:00:00.000000Z",
        "observed_at": "2020-01-01T00:00:00.000000Z",
        "clock": "unsynced",
        "attrs": {"register": 8},
    }[field]
    document["events"][2][field] = changed  # type: ignore[index]
    batch = Batch.model_validate(document)
    with pytest.raises(ChainBroken) as caught:
        verify_batch(batch, key.public_key())
    assert caught.value.seq == 3


@pytest.mark.parametrize("field", ["first_seq", "last_seq", "prev_hash", "last_hash", "gateway_id"])
def test_changing_the_header_fails_verification(field: str) -> None:
    key = Ed25519PrivateKey.generate()
    document = signed_batch(key)
    events = document["events"]
    if field == "first_seq":  # drop the first event so the run stays well formed
        document.update(first_seq=2, events=events[1:], prev_hash=events[0]["hash"])  # type: ignore[index]
    elif field == "last_seq":
        document.update(last_seq=4, events=events[:-1], last_hash=events[-2]["hash"])  # type: ignore[index]
    elif field == "gateway_id":
        document["gateway_id"] = "gw-2"
        for event in events:  # type: ignore[attr-defined]
            event["gateway_id"] = "gw-2"
    else:
        document[field] = "ab" * 32
    batch = Batch.model_validate(document)
    with pytest.raises((InvalidSignature, ChainBroken)):
        verify_batch(batch, key.public_key())


def test_signature_from_another_key_is_refused() -> None:
    batch = Batch.model_validate(signed_batch(Ed25519PrivateKey.generate()))
    with pytest.raises(InvalidSignature):
        verify_batch(batch, Ed25519PrivateKey.generate().public_key())


def test_batch_must_be_a_contiguous_run_of_one_gateway() -> None:
    key = Ed25519PrivateKey.generate()
    document = signed_batch(key)
    del document["events"][1]  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match="carries 4"):
        Batch.model_validate(document)


@pytest.mark.parametrize("bad", ["1e1000000", "-1e1000000", "1e-1000000"])
def test_quantity_beyond_the_decimal_context_is_refused_not_crashed_or_zeroed(bad: str) -> None:
    """Too large overflowed (a 500 at ingest) and too small became "0"; both are refused."""
    with pytest.raises(ValueError, match="out of range"):
        format_decimal(Decimal(bad))
    with pytest.raises(ValidationError, match=r"more than 30 digits (before|after) the point"):
        draft_with_quantity(bad)


def test_a_sealed_event_is_the_model_validation_would_build() -> None:
    """seal() builds the event without validation; it equals the validated model in every way."""
    event = seal(known_draft(), gateway_id="site-042-gw1", seq=7, prev_hash=GENESIS_HASH)
    validated = UsageEvent.model_validate(event.model_dump())
    assert event == validated
    assert event.model_dump() == validated.model_dump()
    assert list(event.__dict__) == list(validated.__dict__)
    assert event.model_fields_set == validated.model_fields_set
    assert event.model_copy(update={"seq": 8}).seq == 8
