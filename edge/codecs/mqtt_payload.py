"""MQTT messages -> usage events by a device's message rules (pure: no I/O, no clock).

`TopicRouter` finds the device a topic belongs to; its `MessageMapper` parses the JSON payload
and maps it by the first rule whose topic filter and `match` values fit. JSON numbers are read
as `Decimal` (never float), so `12.50` stays exactly 12.50; quantities may also be decimal
strings. Each mapped message gets a dedupe key: `mqtt:<device>:id:<id>` from the rule's
`id_field`, else `mqtt:<device>:sha256:<hash of topic and payload bytes>`, so a broker's
redelivery after a crash is stored once.

Anything that cannot become a valid event raises `PayloadRejected` with a `reason`:
"too_large", "malformed_json", "not_an_object", "no_rule", "missing_field", "bad_field",
"bad_kind", "bad_quantity", "bad_time", "invalid_event".
"""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Literal

from pydantic import ValidationError

from edge.codecs.mqtt_topic import topic_matches
from edge.config_mqtt import MessageRule, MqttDeviceConfig
from edge.errors import FrameError
from shared.canonical import format_decimal
from shared.events import AttrValue, ClockState, EventDraft, EventKind

PayloadReason = Literal[
    "too_large",
    "malformed_json",
    "not_an_object",
    "no_rule",
    "missing_field",
    "bad_field",
    "bad_kind",
    "bad_quantity",
    "bad_time",
    "invalid_event",
]
DEFAULT_MAX_PAYLOAD = 64 * 1024
MAX_QUANTITY = Decimal(10) ** 18  # exclusive: far beyond any metered amount
MAX_QUANTITY_PLACES = 18
MAX_ID_LENGTH = 128
MAX_ATTR_TEXT = 1024
INT64 = 2**63
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MISSING = object()


class PayloadRejected(FrameError):
    """A message that cannot become an event; `reason` says why, the message says where."""

    def __init__(self, message: str, *, reason: PayloadReason, topic: str) -> None:
        super().__init__(f"{message} (topic {topic!r})")
        self.reason: PayloadReason = reason
        self.topic = topic
        self.detail = message


@dataclass(frozen=True, slots=True)
class MappedMessage:
    """The event a message makes and the key that recognizes its redelivery."""

    draft: EventDraft
    key: str


class MessageMapper:
    """Maps the messages of one MQTT device to event drafts."""

    def __init__(
        self, device: MqttDeviceConfig, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD
    ) -> None:
        self.device = device
        self._max_payload = max_payload_bytes

    def map_message(
        self, topic: str, payload: bytes, *, received_at: datetime, clock: ClockState
    ) -> MappedMessage:
        """The event of one message; raises `PayloadRejected`."""
        document = self._parse(topic, payload)
        rule = self._rule_for(topic, document)
        fields = _Fields(document, topic)
        occurred_at = _event_time(fields, rule)
        message_id = _message_id(fields, rule)
        attrs: dict[str, AttrValue] = {"topic": topic, **_attrs(fields, rule)}
        if message_id is not None:
            attrs["message_id"] = message_id
        try:
            draft = EventDraft(
                device_id=self.device.id,
                channel=_channel(fields, rule),
                name=rule.name or fields.text(rule.name_field),
                kind=_kind(fields, rule),
                quantity=_quantity(fields, rule.quantity_field),
                unit=rule.unit or (fields.text(rule.unit_field) if rule.unit_field else None),
                occurred_at=occurred_at or received_at,
                observed_at=received_at,
                clock=ClockState.DEVICE if occurred_at else clock,
                attrs=attrs,
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
                for error in exc.errors()
            )
            raise PayloadRejected(problems, reason="invalid_event", topic=topic) from exc
        return MappedMessage(draft, self._key(topic, payload, message_id))

    def _parse(self, topic: str, payload: bytes) -> dict[str, object]:
        if len(payload) > self._max_payload:
            raise PayloadRejected(
                f"payload of {len(payload)} bytes is over the {self._max_payload} byte limit",
                reason="too_large",
                topic=topic,
            )
        try:
            document = json.loads(payload, parse_float=Decimal, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, NaN
            raise PayloadRejected(
                f"payload is not JSON: {exc}", reason="malformed_json", topic=topic
            ) from None
        if not isinstance(document, dict):
            raise PayloadRejected(
                f"payload is JSON {type(document).__name__}, not an object",
                reason="not_an_object",
                topic=topic,
            )
        return document

    def _rule_for(self, topic: str, document: dict[str, object]) -> MessageRule:
        for rule in self.device.message:
            if topic_matches(rule.topic, topic) and all(
                _same(_lookup(document, path), value) for path, value in rule.match.items()
            ):
                return rule
        raise PayloadRejected(
            f"no message rule of device {self.device.id!r} fits (payload keys: "
            f"{sorted(document)[:20]})",
            reason="no_rule",
            topic=topic,
        )

    def _key(self, topic: str, payload: bytes, message_id: str | None) -> str:
        if message_id is not None:
            return f"mqtt:{self.device.id}:id:{message_id}"
        digest = hashlib.sha256(topic.encode() + b"\x00" + payload).hexdigest()
        return f"mqtt:{self.device.id}:sha256:{digest}"


class TopicRouter:
    """Finds the device a topic belongs to (the first whose filter matches, in config order)."""

    def __init__(
        self, devices: Sequence[MqttDeviceConfig], *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD
    ) -> None:
        self._mappers = [MessageMapper(d, max_payload_bytes=max_payload_bytes) for d in devices]

    def route(self, topic: str) -> MessageMapper | None:
        """The mapper of the device subscribed to `topic`, None for a topic of no device."""
        for mapper in self._mappers:
            if topic_matches(mapper.device.topic, topic):
                return mapper
        return None


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


def _lookup(document: dict[str, object], path: str) -> object:
    value: object = document
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _same(found: object, wanted: object) -> bool:
    # Strict: JSON true is not 1, "1" is not 1 (Python alone would call True == 1).
    if isinstance(wanted, bool) or isinstance(found, bool):
        return found is wanted
    if isinstance(wanted, int):
        return isinstance(found, int | Decimal) and found == wanted
    return found == wanted


class _Fields:
    """Reads typed values from the payload, rejecting missing and mistyped ones clearly."""

    def __init__(self, document: dict[str, object], topic: str) -> None:
        self.document = document
        self.topic = topic

    def get(self, path: str) -> object:
        value = _lookup(self.document, path)
        if value is _MISSING or value is None:
            what = "null" if value is None else "missing"
            raise PayloadRejected(
                f"field {path!r} is {what}", reason="missing_field", topic=self.topic
            )
        return value

    def text(self, path: str | None) -> str:
        assert path is not None  # the rule validated that one source is given
        value = self.get(path)
        if not isinstance(value, str) or not value.strip():
            raise self.mistyped(path, value, "a non-empty string")
        return value

    def mistyped(
        self, path: str, value: object, wanted: str, reason: PayloadReason = "bad_field"
    ) -> PayloadRejected:
        shown = json.dumps(value, default=str)[:80]
        return PayloadRejected(
            f"field {path!r} is {shown}, expected {wanted}", reason=reason, topic=self.topic
        )


def _kind(fields: _Fields, rule: MessageRule) -> EventKind:
    if rule.kind_field is None:
        return EventKind(rule.event_kind)
    value = fields.get(rule.kind_field)
    allowed = ", ".join(kind.value for kind in EventKind)
    if not isinstance(value, str):
        raise fields.mistyped(rule.kind_field, value, f"one of {allowed}", "bad_kind")
    try:
        return EventKind(value.strip().lower())
    except ValueError:
        raise fields.mistyped(rule.kind_field, value, f"one of {allowed}", "bad_kind") from None


def _quantity(fields: _Fields, path: str | None) -> Decimal | None:
    if path is None:
        return None
    value = fields.get(path)
    wanted = "a decimal number (JSON number or string)"
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise fields.mistyped(path, value, wanted, "bad_quantity")
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise fields.mistyped(path, value, wanted, "bad_quantity") from None
    if not number.is_finite():
        raise fields.mistyped(path, value, "a finite decimal number", "bad_quantity")
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if abs(number) >= MAX_QUANTITY or exponent < -MAX_QUANTITY_PLACES:
        raise fields.mistyped(
            path,
            value,
            f"less than 1e18 with at most {MAX_QUANTITY_PLACES} decimal places",
            "bad_quantity",
        )
    return number


def _event_time(fields: _Fields, rule: MessageRule) -> datetime | None:
    path = rule.time_field
    if path is None:
        return None
    value = fields.get(path)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise fields.mistyped(path, value, "RFC 3339 with a time zone", "bad_time")
        return moment.astimezone(UTC)
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        wanted = f"RFC 3339 text or epoch {rule.epoch_unit}"
        raise fields.mistyped(path, value, wanted, "bad_time")
    return _from_epoch(fields, path, Decimal(value), rule.epoch_unit)


def _from_epoch(fields: _Fields, path: str, value: Decimal, unit: str) -> datetime:
    micros = value * (1_000_000 if unit == "s" else 1_000)
    try:
        return EPOCH + timedelta(microseconds=int(micros.to_integral_value(ROUND_HALF_EVEN)))
    except (OverflowError, ValueError, InvalidOperation):
        raise fields.mistyped(path, value, f"epoch {unit} of a real date", "bad_time") from None


def _message_id(fields: _Fields, rule: MessageRule) -> str | None:
    path = rule.id_field
    if path is None:
        return None
    value = fields.get(path)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_LENGTH:
        raise fields.mistyped(path, value, f"a string of 1 to {MAX_ID_LENGTH} characters")
    return value


def _channel(fields: _Fields, rule: MessageRule) -> str | None:
    if rule.channel_field is not None:
        value = fields.get(rule.channel_field)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return fields.text(rule.channel_field)
    if rule.channel_level is not None:
        levels = fields.topic.split("/")
        try:
            level = levels[rule.channel_level]
        except IndexError:
            level = ""
        if not level:
            raise PayloadRejected(
                f"topic has no level {rule.channel_level} to name the channel",
                reason="bad_field",
                topic=fields.topic,
            )
        return level
    return rule.channel


def _attrs(fields: _Fields, rule: MessageRule) -> dict[str, AttrValue]:
    attrs: dict[str, AttrValue] = {}
    for path in rule.attrs:
        value = _lookup(fields.document, path)
        if value is _MISSING:
            continue  # attrs are kept when present, never required
        attrs[path] = _attr_value(fields, path, value)
    return attrs


def _attr_value(fields: _Fields, path: str, value: object) -> AttrValue:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and -INT64 <= value < INT64:
        return value
    if isinstance(value, Decimal) and value.is_finite() and abs(value.adjusted()) < MAX_ATTR_TEXT:
        return format_decimal(value)
    if isinstance(value, str) and len(value) <= MAX_ATTR_TEXT:
        return value
    raise fields.mistyped(
        path, value, f"a string (at most {MAX_ATTR_TEXT} characters), a number, true/false or null"
    )
