"""The `[mqtt]` broker section and `driver = "mqtt"` devices of the site config.

    [mqtt]
    url = "mqtts://broker.example.com:8883"     # mqtt:// (1883) or mqtts:// (TLS, 8883)
    client_id = "site-042-gw1"                  # the persistent session lives under this id
    username = "site-042"
    password_file = "/etc/tollgate/mqtt.password"
    ca_file = "/etc/tollgate/broker-ca.pem"     # else the system's trusted CAs

    [[device]]
    id = "camera-7"
    driver = "mqtt"
    topic = "site42/camera-7/#"                 # subscribed with QoS 1

    [[device.message]]                          # rules, tried in order; the first that fits maps
    topic = "site42/camera-7/stream"            # a filter within the device's topic
    match = { event = "stop" }                  # payload fields that must hold these values
    name = "stream_stop"                        # or name_field
    kind = "deactivation"                       # or kind_field; default "activity"
    quantity_field = "minutes"                  # a JSON number or a decimal string
    unit = "min"                                # or unit_field
    time_field = "ts"                           # RFC 3339 or epoch seconds (epoch_unit = "ms")
    id_field = "id"                             # the message's own id: dedupe across redelivery
    channel_field = "stream"                    # or channel, or channel_level (topic level)
    attrs = ["resolution"]                      # payload fields kept in the event's attrs

Field names are JSON keys; `a.b` reaches into nested objects. docs/mqtt.md has the whole story.
"""

from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edge.codecs.mqtt_topic import check_filter, filters_overlap
from edge.config_types import Duration, Name, Section
from shared.events import Label

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
RESERVED_ATTRS = frozenset({"topic", "message_id"})
MAX_RULE_ATTRS = 60  # an event holds at most 64 attrs; `topic` and `message_id` are ours


def _check_broker_url(url: str) -> str:
    parts = urlsplit(url)
    example = "mqtt://192.168.1.5:1883 or mqtts://broker.example.com:8883"
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{url!r} is not a broker URL like {example}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"{url!r}: credentials do not go in the URL; use username and password_file"
        )
    try:
        parts.port  # noqa: B018 (parsing the port is the check)
    except ValueError:
        raise ValueError(f"{url!r}: the port is not a number from 1 to 65535") from None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{url!r} has a path or query; a broker URL is like {example}")
    return url


def _check_keepalive(seconds: float) -> float:
    if not 1 <= seconds <= 65535:
        raise ValueError("keepalive must be between 1s and 65535s (MQTT keeps it in 16 bits)")
    return seconds


TopicFilter = Annotated[str, AfterValidator(check_filter)]
FieldPath = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^.\s]+(\.[^.\s]+)*$")]
"""A JSON key of the payload; dots reach into nested objects (`data.minutes`)."""
KindName = Literal["activation", "deactivation", "activity", "measurement"]
MatchValue = StrictStr | StrictInt | StrictBool


class MqttConfig(Section):
    """How the gateway reaches its MQTT broker (one connection for every MQTT device).

    The session is persistent (`clean_session = false`): while the gateway is away the broker
    keeps its subscriptions, the messages published meanwhile and those not yet acknowledged.
    Secrets are never inline: the password is read from `password_file`.
    """

    url: Annotated[str, AfterValidator(_check_broker_url)]
    client_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
    clean_session: bool = False
    keepalive: Annotated[Duration, AfterValidator(_check_keepalive)] = 30.0
    timeout: Duration = 10.0
    reconnect_initial: Duration = 1.0
    reconnect_max: Duration = 60.0
    username: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    max_payload_bytes: Annotated[int, Field(ge=64, le=16 * 1024 * 1024)] = 64 * 1024

    @model_validator(mode="before")
    @classmethod
    def _no_inline_password(cls, data: Any) -> Any:
        if isinstance(data, dict) and "password" in data:
            raise ValueError(
                "the password does not go in the site config: write it to a file only the "
                "agent can read and name that file with password_file"
            )
        return data

    @model_validator(mode="after")
    def _settings_agree(self) -> Self:
        if self.password_file is not None and self.username is None:
            raise ValueError("password_file needs a username")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a client certificate needs both cert_file and key_file")
        tls_files = [self.ca_file, self.cert_file, self.key_file]
        if not self.tls and any(path is not None for path in tls_files):
            raise ValueError("ca_file, cert_file and key_file need an mqtts:// url")
        return self

    @property
    def host(self) -> str:
        """The broker's host name or address."""
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        """The broker's port (1883, or 8883 for mqtts://, unless given)."""
        parts = urlsplit(self.url)
        return parts.port or DEFAULT_PORTS[parts.scheme]

    @property
    def tls(self) -> bool:
        """Whether the connection uses TLS (an mqtts:// url)."""
        return urlsplit(self.url).scheme == "mqtts"


class MessageRule(Section):
    """How one kind of message of a device becomes an event.

    A message fits a rule when its topic matches `topic` and its payload holds every value in
    `match`. Each event field comes from a constant (`name`, `kind`, `unit`, `channel`) or from
    a payload field (`name_field`, ...). Without `time_field` the event happened when the
    gateway received it (clock: the gateway's); with it, at the device's time (clock: device).
    Without `id_field` a redelivered message is recognized by its bytes (see docs/mqtt.md).
    """

    topic: TopicFilter = "#"
    match: dict[FieldPath, MatchValue] = Field(default_factory=dict)
    name: Label | None = None
    name_field: FieldPath | None = None
    kind: KindName | None = None
    kind_field: FieldPath | None = None
    quantity_field: FieldPath | None = None
    unit: Label | None = None
    unit_field: FieldPath | None = None
    time_field: FieldPath | None = None
    epoch_unit: Literal["s", "ms"] = "s"
    id_field: FieldPath | None = None
    channel: Label | None = None
    channel_field: FieldPath | None = None
    channel_level: int | None = None
    attrs: Annotated[list[FieldPath], Field(max_length=MAX_RULE_ATTRS)] = Field(
        default_factory=list
    )

    @field_validator("attrs")
    @classmethod
    def _attrs_are_distinct(cls, attrs: list[str]) -> list[str]:
        if len(set(attrs)) != len(attrs):
            raise ValueError("an attrs field is listed twice")
        reserved = sorted(RESERVED_ATTRS.intersection(attrs))
        if reserved:
            raise ValueError(f"attrs {reserved} are set by the driver itself")
        return attrs

    @model_validator(mode="after")
    def _one_source_per_field(self) -> Self:
        _at_most_one(self, "name", "name_field", required=True)
        _at_most_one(self, "kind", "kind_field")
        _at_most_one(self, "unit", "unit_field")
        _at_most_one(self, "channel", "channel_field", "channel_level")
        has_unit = self.unit is not None or self.unit_field is not None
        if self.quantity_field is not None and not has_unit:
            raise ValueError("quantity_field needs unit or unit_field")
        if self.quantity_field is None and has_unit:
            raise ValueError("unit and unit_field go with a quantity_field")
        if "epoch_unit" in self.model_fields_set and self.time_field is None:
            raise ValueError("epoch_unit goes with a time_field")
        return self

    @property
    def event_kind(self) -> KindName:
        """The constant kind (`activity` unless configured)."""
        return self.kind or "activity"


def _at_most_one(rule: MessageRule, *names: str, required: bool = False) -> None:
    given = [name for name in names if getattr(rule, name) is not None]
    if len(given) > 1:
        raise ValueError(f"give only one of {', '.join(names)} (got {', '.join(given)})")
    if required and not given:
        raise ValueError(f"give one of {', '.join(names)}")


class MqttDeviceConfig(Section):
    """One MQTT device: the topics it publishes on and how its payloads become events."""

    id: Name
    driver: Literal["mqtt"]
    topic: TopicFilter
    message: Annotated[list[MessageRule], Field(min_length=1)]

    @field_validator("message")
    @classmethod
    def _rules_fit_the_device(
        cls, rules: list[MessageRule], info: ValidationInfo
    ) -> list[MessageRule]:
        topic = info.data.get("topic")
        if topic is None:
            return rules
        for number, rule in enumerate(rules, start=1):
            if not filters_overlap(topic, rule.topic):
                raise ValueError(
                    f"message rule #{number}: topic {rule.topic!r} can never match a topic of "
                    f"the device ({topic!r})"
                )
        return rules

    @property
    def address(self) -> str:
        """Where the device is, for logs and the diagnostics page."""
        return self.topic


def check_mqtt_devices(devices: list[MqttDeviceConfig]) -> None:
    """Two devices must not share a topic: every message belongs to exactly one device."""
    for index, device in enumerate(devices):
        for other in devices[index + 1 :]:
            if filters_overlap(device.topic, other.topic):
                raise ValueError(
                    f"mqtt devices {device.id!r} ({device.topic!r}) and {other.id!r} "
                    f"({other.topic!r}) subscribe to overlapping topics: a message must belong "
                    "to one device"
                )
