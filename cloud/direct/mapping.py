"""A direct source's mapping, and applying it to one record: pure, no I/O.

A record is what one source event carries: the `data` object of a CloudEvent, or one row of an
imported file. The mapping says which `type` becomes which event (name, kind, unit) and which
record fields hold the quantity and the channel; for files it also names the columns that hold the
device, the time, the type and the row's own id. Applying it gives an `EventDraft` (the same
contract a gateway's normalizer produces) or a `RowError` naming the source field and the reason.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.events import ClockState, EventDraft, EventKind, Label

IMPORT_ORIGIN_PREFIX = "import:"  # + source id: the idempotency origin of imported rows
MAX_SHOWN = 40  # characters of a refused value quoted back in a reason
SourceText = Annotated[str, Field(min_length=1, max_length=255)]
FieldPath = Annotated[str, Field(min_length=1, max_length=200)]


class RowError(Exception):
    """One record cannot become an event: which source field, and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def shown(value: Any) -> str:
    """`value` quoted for a reason, cut to `MAX_SHOWN` characters (a reason is stored and sent)."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


class AmbiguousTimes(StrEnum):
    """What a local time the clocks show twice (the repeated hour of a fall-back) means."""

    REFUSE = "refuse"  # reject the row, naming both readings
    EARLIER = "earlier"  # the first time the clocks showed it (summer time, before the change)
    LATER = "later"  # the second time (winter time, after the change)


class MissingTimes(StrEnum):
    """What a local time the clocks skip (the lost hour of a spring-forward) means."""

    REFUSE = "refuse"  # reject the row
    SHIFT_FORWARD = "shift_forward"  # read with the offset before the change: 02:30 is 03:30


class TypeRule(BaseModel):
    """How records of one `type` become events."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: SourceText
    name: Label
    kind: EventKind
    quantity: FieldPath | None = None  # record field holding the quantity (dotted for nesting)
    unit: Label | None = None
    channel: FieldPath | None = None  # record field holding the channel


class FileColumns(BaseModel):
    """Which columns of an imported file hold what (JSON Lines: which keys)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device: FieldPath
    time: FieldPath
    type: FieldPath | None = None  # without it, the mapping's single type rule applies to all rows
    id: FieldPath | None = None  # without it, a row's id is the SHA-256 of its mapped content
    time_zone: str | None = None  # for timestamps without an offset (legacy local time)
    ambiguous_times: AmbiguousTimes = AmbiguousTimes.REFUSE  # a local time shown twice
    missing_times: MissingTimes = MissingTimes.REFUSE  # a local time the clocks skip

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _zone_for_local_rules(self) -> Self:
        local_rules = (self.ambiguous_times, self.missing_times)
        if self.time_zone is None and local_rules != (AmbiguousTimes.REFUSE, MissingTimes.REFUSE):
            raise ValueError("ambiguous_times and missing_times apply only with a time_zone")
        return self


class SourceMapping(BaseModel):
    """Everything a direct source needs to turn its records into events."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ce_sources: tuple[SourceText, ...] = ()  # CloudEvents `source` URIs this source owns
    clock: ClockState = ClockState.DEVICE  # how far the sender's time can be trusted
    files: FileColumns | None = None
    types: tuple[TypeRule, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [rule.type for rule in self.types]
        if len(set(names)) != len(names):
            raise ValueError("each type may have one rule only")
        if len(set(self.ce_sources)) != len(self.ce_sources):
            raise ValueError("ce_sources lists a URI twice")
        if any(uri.startswith(IMPORT_ORIGIN_PREFIX) for uri in self.ce_sources):
            raise ValueError(f"a CloudEvents source may not start with {IMPORT_ORIGIN_PREFIX!r}")
        if self.files is not None and self.files.type is None and len(self.types) != 1:
            raise ValueError("files.type is required when there is more than one type rule")
        return self

    def rule_for(self, event_type: str | None) -> TypeRule:
        """The rule for `event_type` (None: a file without a type column); `RowError` if none."""
        if event_type is None:
            return self.types[0]
        for rule in self.types:
            if rule.type == event_type:
                return rule
        raise RowError("type", f"no mapping for type {shown(event_type)}")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record came from, kept in its event's attrs."""

    kind: str  # "cloudevents" or "import"
    event_id: str
    detail: Mapping[str, str | int]


def lookup(record: Mapping[str, Any], path: str) -> Any:
    """The value at `path` in `record`: an exact key first, else a dotted path into objects."""
    if path in record:
        return record[path]
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


_DRAFT_FIELDS = {"device_id": "device", "occurred_at": "time"}


def make_draft(
    *,
    rule: TypeRule,
    record: Mapping[str, Any],
    device_id: Any,
    occurred_at: datetime,
    observed_at: datetime,
    clock: ClockState,
    origin: Origin,
    device_field: str,
) -> EventDraft:
    """The event a record becomes under `rule`; `RowError` naming the source field otherwise.

    The quantity is read by the event contract's own `Quantity` (`shared.bounds.parse_quantity`:
    ASCII decimal text or an integer within 30 + 30 digits), once; its refusal names the field.
    """
    quantity = None
    if rule.quantity is not None:
        quantity = lookup(record, rule.quantity)
        if quantity is None or quantity == "":
            raise RowError(rule.quantity, "a quantity is required for type " + repr(rule.type))
    channel = None if rule.channel is None else lookup(record, rule.channel)
    if channel is not None and not isinstance(channel, str):
        channel = str(channel)
    attrs: dict[str, str | int] = {"origin": origin.kind, "origin_id": origin.event_id}
    attrs.update(origin.detail)
    fields = {
        "device_id": device_id,
        "channel": channel or None,
        "name": rule.name,
        "kind": rule.kind,
        "quantity": quantity,
        "unit": rule.unit,
        "occurred_at": occurred_at,
        "observed_at": observed_at,
        "clock": clock,
        "attrs": attrs,
    }
    try:
        return EventDraft.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_context=False, include_input=False)[0]
        where = str(error["loc"][0]) if error["loc"] else "record"
        source_field = {
            "device_id": device_field,
            "quantity": rule.quantity or "quantity",
            "channel": rule.channel or "channel",
        }.get(where, _DRAFT_FIELDS.get(where, where))
        raise RowError(source_field, error["msg"].removeprefix("Value error, ")) from None
