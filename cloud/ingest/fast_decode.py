"""The batch decoder of the common case: msgspec, for a subset of what pydantic accepts.

`decode_batch(body, header)` returns the `Batch` pydantic would make of `body`, with the same
values (the same `Decimal`s, UTC datetimes, strings, attrs), or None when it cannot be sure;
the caller then validates with pydantic, which accepts or builds the error answer. So the
accepted set is pydantic's by construction, and what this module must guarantee is only that
whatever it returns pydantic returns too, equal (tests/cloud/test_fast_decode.py checks it over
random valid and invalid batches).

It is sure only of the forms a gateway sends (`orjson` of `UsageEvent.to_wire()`), checked in
C by msgspec's constraints or by one cheap test per value, each at most as permissive as the
pydantic field:

- a body without a backslash: no string holds an escape, so none holds NUL, a lone surrogate
  or a newline (which `shared.bounds.check_text` and the patterns' `$` would have to look for);
- identifiers in ASCII (`[A-Za-z0-9][A-Za-z0-9_.:/-]*`, 1-128), where pydantic's `\\w` is
  Unicode;
- times as `YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z` (UTC, no other offset), parsed by
  `datetime.fromisoformat` and bounded like `check_time`;
- quantities as an integer (through `shared.bounds.parse_quantity` itself) or as text in the
  canonical notation (`format_decimal`'s: no exponent, no trailing zeros, at most 30 digits on
  either side), whose `parse_quantity` is `Decimal(text)`;
- integers, labels, enums, hashes and attrs with pydantic's own bounds (msgspec `Meta`), no
  field unknown, none missing; the batch's run checked like `Batch._check_run`; the header
  fields equal to the (pydantic-validated) header.

About twice as fast as `Batch.model_validate_json` (bench/collector_ingest.py prints both).
"""

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

import msgspec
from msgspec import Meta, Struct

from shared.bounds import (
    INT64_MAX,
    INT64_MIN,
    MAX_EVENTS_PER_BATCH,
    MAX_SEQ,
    MAX_TEXT,
    MAX_TIME,
    MIN_TIME,
    parse_quantity,
)
from shared.events import (
    HEADER_FIELDS,
    MAX_ATTRS,
    Batch,
    BatchHeader,
    ClockState,
    EventKind,
    UsageEvent,
)

Identifier = Annotated[str, Meta(min_length=1, max_length=128)]  # and _IDENTIFIER
Label = Annotated[str, Meta(min_length=1, max_length=64)]
Hex = Annotated[str, Meta(min_length=64, max_length=64)]  # and _HEX
SeqNumber = Annotated[int, Meta(ge=1, le=MAX_SEQ)]
AttrValue = (
    Annotated[str, Meta(max_length=MAX_TEXT)]
    | bool
    | Annotated[int, Meta(ge=INT64_MIN, le=INT64_MAX)]
    | None
)
Attrs = Annotated[dict[Label, AttrValue], Meta(max_length=MAX_ATTRS)]

# The patterns run once per batch over the values joined by newlines (no string holds one: the
# body has no backslash), in C, instead of once per value. `$` is then the end of the text.
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]*")
_HEX_DIGITS = "0123456789abcdef"
_UTC_TIMES = re.compile(
    r"(?:[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z\n)*"
)
# Plain notation without trailing zeros (`format_decimal`'s), at most 30 digits on either side:
# `parse_quantity` of such a text is `Decimal(text)`. Any other quantity text is pydantic's.
_CANONICAL_QUANTITIES = re.compile(
    r"(?:(?:0|-?(?:0\.[0-9]{0,29}[1-9]|[1-9][0-9]{0,29}(?:\.[0-9]{0,29}[1-9])?))\n)*"
)
_FIELDS_SET = frozenset(UsageEvent.model_fields)
_BATCH_FIELDS = frozenset(Batch.model_fields)


class WireEvent(Struct, forbid_unknown_fields=True):
    """An event as a gateway writes it (the values still to be checked are plain text)."""

    gateway_id: str  # equal to the header's, which pydantic validated
    seq: SeqNumber
    device_id: Identifier
    name: Label
    kind: EventKind
    occurred_at: str  # and _UTC_TIMES
    observed_at: str
    clock: ClockState
    prev_hash: Hex
    hash: Hex
    channel: Label | None = None
    quantity: str | int | None = None  # a text also _CANONICAL_QUANTITIES
    unit: Label | None = None
    attrs: Attrs = {}


class WireBatch(Struct, forbid_unknown_fields=True):
    """A batch as a gateway writes it."""

    gateway_id: str
    first_seq: int
    last_seq: int
    prev_hash: str
    last_hash: str
    signature: str
    events: Annotated[list[WireEvent], Meta(min_length=1, max_length=MAX_EVENTS_PER_BATCH)]


_DECODER = msgspec.json.Decoder(WireBatch)


class NotSure(Exception):
    """The body is outside the forms this decoder vouches for: pydantic decides."""


def decode_batch(body: bytes, *, header: BatchHeader) -> Batch | None:
    """The batch pydantic would make of `body` (whose `header` it validated), or None."""
    if b"\\" in body:
        return None
    try:
        wire = _DECODER.decode(body)
        return _batch(wire, header)
    except (msgspec.ValidationError, msgspec.DecodeError, NotSure, ValueError):
        return None


def _batch(wire: WireBatch, header: BatchHeader) -> Batch:
    for name in HEADER_FIELDS:
        if getattr(wire, name) != getattr(header, name):
            raise NotSure(name)
    gateway_id, first_seq = header.gateway_id, header.first_seq
    events = wire.events
    if len(events) != header.last_seq - first_seq + 1:
        raise NotSure("run")
    _check_patterns(events)
    usage_events: list[UsageEvent] = []
    new = object.__new__
    set_slot = object.__setattr__
    for offset, event in enumerate(events):
        if event.seq != first_seq + offset or event.gateway_id != gateway_id:
            raise NotSure("run")
        quantity = event.quantity
        usage = new(UsageEvent)
        # The model's field order (UsageEvent.model_fields), as pydantic fills `__dict__`.
        set_slot(
            usage,
            "__dict__",
            {
                "device_id": event.device_id,
                "channel": event.channel,
                "name": event.name,
                "kind": event.kind,
                "quantity": _quantity(quantity),
                "unit": event.unit,
                "occurred_at": _time(event.occurred_at),
                "observed_at": _time(event.observed_at),
                "clock": event.clock,
                "attrs": event.attrs,
                "gateway_id": gateway_id,
                "seq": event.seq,
                "prev_hash": event.prev_hash,
                "hash": event.hash,
            },
        )
        set_slot(usage, "__pydantic_fields_set__", set(_FIELDS_SET))
        set_slot(usage, "__pydantic_extra__", None)
        set_slot(usage, "__pydantic_private__", None)
        usage_events.append(usage)
    batch = object.__new__(Batch)
    values = {name: getattr(header, name) for name in HEADER_FIELDS}
    values["events"] = tuple(usage_events)
    object.__setattr__(batch, "__dict__", values)
    object.__setattr__(batch, "__pydantic_fields_set__", set(_BATCH_FIELDS))
    object.__setattr__(batch, "__pydantic_extra__", None)
    object.__setattr__(batch, "__pydantic_private__", None)
    return batch


def _check_patterns(events: list[WireEvent]) -> None:
    """Identifiers, hashes, times and quantity texts in the forms this decoder vouches for."""
    for device_id in {event.device_id for event in events}:
        if not _IDENTIFIER.fullmatch(device_id):
            raise NotSure("device_id")
    hashes = "".join([event.prev_hash + event.hash for event in events])
    if hashes.strip(_HEX_DIGITS):  # anything left is not a lowercase hex digit
        raise NotSure("hash")
    times = "\n".join([event.occurred_at for event in events])
    times += "\n" + "\n".join([event.observed_at for event in events]) + "\n"
    if not _UTC_TIMES.fullmatch(times):
        raise NotSure("time")
    texts = [event.quantity for event in events if type(event.quantity) is str]
    if texts and not _CANONICAL_QUANTITIES.fullmatch("\n".join(texts) + "\n"):
        raise NotSure("quantity")


def _time(text: str) -> datetime:
    """A UTC time in the form gateways write it, bounded like `shared.bounds.check_time`."""
    moment = datetime.fromisoformat(text)  # ValueError (not sure) for a day or hour out of range
    if moment.tzinfo is not UTC or not MIN_TIME <= moment < MAX_TIME:
        raise NotSure("time")
    return moment


def _quantity(value: str | int | None) -> Decimal | None:
    """`parse_quantity(value)`: for a canonical text that is `Decimal(text)` (tests check it)."""
    if value is None:
        return None
    if isinstance(value, str):
        return Decimal(value)
    return parse_quantity(value)
