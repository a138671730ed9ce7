"""UsageEvent and Batch: what every driver's output becomes and what a gateway sends.

An `EventDraft` is what the normalizer makes; the outbox seals it into a `UsageEvent` by giving it
the gateway id, the next `seq` and its place in the SHA-256 chain (see `shared.chain`).
"""

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

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


def _parse_quantity(value: object) -> Decimal:
    # Floats are refused: a binary float cannot carry a billed quantity exactly.
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError("quantity must be a decimal string or an integer, not a float")
    try:
        number = Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"quantity {value!r} is not a decimal number") from exc
    if not number.is_finite():
        raise ValueError("quantity must be finite")
    return Decimal(format_decimal(number))


def _require_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("time must carry a time zone (RFC 3339 with Z or an offset)")
    return moment.astimezone(UTC)


def _check_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    if len(attrs) > MAX_ATTRS:
        raise ValueError(f"at most {MAX_ATTRS} attrs, got {len(attrs)}")
    return attrs


Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][\w.:/-]*$")]
Label = Annotated[str, Field(min_length=1, max_length=64)]
Quantity = Annotated[Decimal, BeforeValidator(_parse_quantity)]
UtcTime = Annotated[datetime, AfterValidator(_require_utc)]
HexDigest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
AttrValue = Annotated[str, Field(max_length=1024)] | bool | int | None
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
    seq: int = Field(ge=1, le=2**63 - 1)
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


class Batch(BaseModel):
    """A contiguous, signed run of one gateway's events (`first_seq..last_seq`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gateway_id: Identifier
    first_seq: int = Field(ge=1)
    last_seq: int = Field(ge=1)
    prev_hash: HexDigest
    last_hash: HexDigest
    signature: str = Field(min_length=1, max_length=256)
    events: tuple[UsageEvent, ...] = Field(min_length=1)

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
