"""The bounded contract at draft construction: the edge never seals what the collector refuses."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from shared.bounds import MAX_SEQ, parse_quantity
from shared.chain import seal
from shared.errors import InvalidSignature
from shared.events import GENESIS_HASH, Batch, BatchHeader, ClockState, EventDraft, EventKind
from shared.signing import verify_header
from tests.support.batches import batch_document, chain_events, draft

AT = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def make_draft(**changes: Any) -> EventDraft:
    """A valid draft with `changes` applied."""
    fields: dict[str, Any] = {
        "device_id": "panel-1",
        "channel": "1",
        "name": "door_open",
        "kind": EventKind.ACTIVITY,
        "quantity": Decimal(1),
        "unit": "count",
        "occurred_at": AT,
        "observed_at": AT,
        "clock": ClockState.SYNCED,
        "attrs": {"register": 0},
    }
    return EventDraft(**{**fields, **changes})


@pytest.mark.parametrize(
    "text",
    [
        "123456789012345678901234567890.123456789012345678901234567890",
        "-999999999999999999999999999999",
        "0.000000000000000000000000000001",
        "1E+29",
    ],
)
def test_thirty_digits_each_side_are_taken_exactly(text: str) -> None:
    assert make_draft(quantity=text).quantity == Decimal(text)
    assert make_draft(quantity=Decimal(text)).quantity == Decimal(text)


@pytest.mark.parametrize(
    ("quantity", "reason"),
    [
        ("1" * 31, "more than 30 digits before the point"),
        (Decimal("1" * 31), "more than 30 digits before the point"),
        (10**30, "more than 30 digits before the point"),
        ("0." + "0" * 30 + "1", "more than 30 digits after the point"),
        (Decimal("1e-31"), "more than 30 digits after the point"),
        ("1e999990", "more than 30 digits before the point"),
        ("1_000", "ASCII digits"),
        ("\u0661\u0662\u0663", "ASCII digits"),  # Arabic-Indic digits, which Decimal() takes
        (" 1", "ASCII digits"),
        ("9" * 81, "longer than 80 characters"),
        (1.5, "not a float"),
    ],
)
def test_out_of_bound_quantities_are_refused_at_draft_construction(
    quantity: object, reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason):
        make_draft(quantity=quantity)


@pytest.mark.parametrize("field", ["channel", "name", "unit"])
@pytest.mark.parametrize("bad", ["a\x00b", "\ud800", "x\udfff"])
def test_nul_and_lone_surrogates_are_refused_in_every_label(field: str, bad: str) -> None:
    with pytest.raises(ValidationError, match=field):
        make_draft(**{field: bad})


@pytest.mark.parametrize("bad", ["panel\x00", "\ud800"])
def test_nul_and_lone_surrogates_are_refused_in_the_device_id(bad: str) -> None:
    with pytest.raises(ValidationError, match="device_id"):
        make_draft(device_id=bad)


@pytest.mark.parametrize(
    ("attrs", "reason"),
    [
        ({"k\x00": 1}, "U\\+0000"),
        ({"k": "v\x00"}, "U\\+0000"),
        ({"k": "\ud800"}, "U\\+D800"),
        ({"k": "x" * 1025}, "longer than 1024"),
        ({"k": 2**63}, "signed 64-bit"),
        ({"k": -(2**63) - 1}, "signed 64-bit"),
        ({"k": 1.0}, "valid integer"),  # lax mode turned 1.0 into true
        ({f"k{n}": n for n in range(65)}, "at most 64 attrs"),
    ],
)
def test_attrs_are_bounded(attrs: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        make_draft(attrs=attrs)


def test_attrs_at_their_bounds_are_kept_exactly() -> None:
    attrs = {"low": -(2**63), "high": 2**63 - 1, "text": "ä" * 1024, "flag": True, "none": None}
    assert make_draft(attrs=attrs).attrs == attrs


@pytest.mark.parametrize(
    "moment",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1969-12-31T23:59:59Z"],
)
def test_times_outside_the_range_are_refused_not_overflowed(moment: str) -> None:
    with pytest.raises(ValidationError, match="occurred_at"):
        make_draft(occurred_at=moment)


def test_seq_is_bounded_so_that_seq_plus_one_fits_a_bigint() -> None:
    event = seal(make_draft(), gateway_id="gw-1", seq=MAX_SEQ, prev_hash=GENESIS_HASH)
    wire = event.to_wire()
    assert type(event).model_validate(wire).seq == MAX_SEQ
    with pytest.raises(ValidationError, match="less than or equal to"):
        type(event).model_validate({**wire, "seq": 2**63 - 1})
    header = {k: v for k, v in batch_document([event], Ed25519PrivateKey.generate()).items()}
    with pytest.raises(ValidationError, match="first_seq"):
        BatchHeader.model_validate({**header, "first_seq": 2**63 - 1, "last_seq": 2**63 - 1})


def test_header_signature_is_checked_without_the_events() -> None:
    key = Ed25519PrivateKey.generate()
    document = batch_document(chain_events([draft(1), draft(2)], gateway_id="gw-1"), key)
    header = BatchHeader.model_validate({k: v for k, v in document.items() if k != "events"})

    verify_header(header, key.public_key())
    with pytest.raises(InvalidSignature):
        verify_header(header, Ed25519PrivateKey.generate().public_key())
    assert Batch.model_validate(document).last_hash == header.last_hash


def test_parse_quantity_is_the_draft_rule() -> None:
    assert parse_quantity("2.50") == Decimal("2.5")
    assert str(parse_quantity("1E+3")) == "1000"
