"""UsageEvent and Batch: what every driver's output becomes and what a gateway sends.

An `EventDraft` is what the normalizer makes; the outbox seals it into a `UsageEvent` by giving it
the gateway id, the next `seq` and its place in the SHA-256 chain (see `shared.chain`).
"""

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    model_validator,
)

from shared.bounds import (
    MAX_EVENTS_PER_BATCH,
    MAX_SEQ,
    MAX_TEXT,
    check_int64,
    check_text,
    check_time,
    parse_quantity,
)
from shared.canonical import format_decimal, format_time

GENESIS_HASH = "0" * 64
MAX_ATTRS = 64


class EventKind(StrEnum):
    """What an event means for sessions and rating."""

    ACTIVATION = "activation"
    DEACTIVATION = "deactivation"
    ACTIVITY = "activity"
    MEASUREMENT = "measurement"


class ClockState(StrEnum):
    """How far `occurred_at` can be trusted."""

    SYNCED = "synced"
    UNSYNCED = "unsynced"
    DEVICE = "device"


def _check_attr_value(value: str | bool | int | None) -> str | bool | int | None:
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise ValueError(f"text is longer than {MAX_TEXT} characters")
        return check_text(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return check_int64(value)
    return value


def _check_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    if len(attrs) > MAX_ATTRS:
        raise ValueError(f"at most {MAX_ATTRS} attrs, got {len(attrs)}")
    return attrs


# Every string of an event refuses NUL and lone surrogates (`check_text`): PostgreSQL cannot store
# a NUL and UTF-8 cannot encode a lone surrogate, so either would fail only at insert time.
# (An identifier's pattern already admits neither.)
Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][\w.:/-]*$")]
Label = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(check_text)]
Quantity = Annotated[Decimal, BeforeValidator(parse_quantity)]
UtcTime = Annotated[datetime, AfterValidator(check_time)]
HexDigest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Seq = Annotated[int, Field(ge=1, le=MAX_SEQ)]
# Strict: an attr is stored and hashed exactly as sent (lax mode would turn 1.0 into true).
AttrValue = Annotated[
    Annotated[str, Strict()] | Annotated[bool, Strict()] | Annotated[int, Strict()] | None,
    AfterValidator(_check_attr_value),
]
Attrs = Annotated[dict[Label, AttrValue], AfterValidator(_check_attrs)]


class EventDraft(BaseModel):
    """A normalized event before the outbox gives it a seq and a place in the chain."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device_id: Identifier
    channel: Label | None = None
    name: Label
    kind: EventKind
    quantity: Quantity | None = None
    unit: Label | None = None
    occurred_at: UtcTime
    observed_at: UtcTime
    clock: ClockState
    attrs: Attrs = Field(default_factory=dict)


class UsageEvent(EventDraft):
    """A sealed event: one link of a gateway's hash chain."""

    gateway_id: Identifier
    seq: Seq
    prev_hash: HexDigest
    hash: HexDigest

    def content(self) -> dict[str, Any]:
        """The fields covered by the hash, in canonical types (see `shared.canonical`)."""
        return event_content(self, gateway_id=self.gateway_id, seq=self.seq)

    def to_wire(self) -> dict[str, Any]:
        """The event as it travels in a batch: its content plus both chain hashes."""
        return {**self.content(), "prev_hash": self.prev_hash, "hash": self.hash}


def event_content(draft: EventDraft, *, gateway_id: str, seq: int) -> dict[str, Any]:
    """Canonical-typed content of a draft placed at `seq` in `gateway_id`'s chain."""
    return {
        "gateway_id": gateway_id,
        "seq": seq,
        "device_id": draft.device_id,
        "channel": draft.channel,
        "name": draft.name,
        "kind": draft.kind.value,
        "quantity": None if draft.quantity is None else format_decimal(draft.quantity),
        "unit": draft.unit,
        "occurred_at": format_time(draft.occurred_at),
        "observed_at": format_time(draft.observed_at),
        "clock": draft.clock.value,
        "attrs": draft.attrs,
    }


class BatchHeader(BaseModel):
    """What a batch's signature covers (and the signature): the run and the chain around it.

    The collector checks the header and its signature before it validates a single event, so a
    forged batch costs one Ed25519 verification, not the validation of its events.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    gateway_id: Identifier
    first_seq: Seq
    last_seq: Seq
    prev_hash: HexDigest
    last_hash: HexDigest
    signature: str = Field(min_length=1, max_length=256)

    @model_validator(mode="after")
    def _check_seqs(self) -> Self:
        if self.last_seq < self.first_seq:
            raise ValueError(f"last_seq {self.last_seq} is before first_seq {self.first_seq}")
        return self


HEADER_FIELDS = tuple(BatchHeader.model_fields)


class Batch(BatchHeader):
    """A contiguous, signed run of one gateway's events (`first_seq..last_seq`)."""

    # fail_fast: the first invalid event ends validation, so a bad batch costs one event's errors.
    events: tuple[UsageEvent, ...] = Field(
        min_length=1, max_length=MAX_EVENTS_PER_BATCH, fail_fast=True
    )

    @model_validator(mode="after")
    def _check_run(self) -> Self:
        expected = self.last_seq - self.first_seq + 1
        if len(self.events) != expected:
            raise ValueError(
                f"batch declares seq {self.first_seq}..{self.last_seq} ({expected} events) "
                f"but carries {len(self.events)}"
            )
        for offset, event in enumerate(self.events):
            if event.seq != self.first_seq + offset:
                raise ValueError(
                    f"event {offset} has seq {event.seq}, expected "
                    f"{self.first_seq + offset}: a batch is a contiguous run"
                )
            if event.gateway_id != self.gateway_id:
                raise ValueError(
                    f"event seq {event.seq} belongs to gateway {event.gateway_id!r}, "
                    f"not {self.gateway_id!r}"
                )
        return self
