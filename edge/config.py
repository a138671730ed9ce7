"""The site config: TOML validated by pydantic, with errors that name file, line, device and field.

See DESIGN.md "Site config". Durations are strings such as "250ms", "5s", "2m", "1h".
"""

import ipaddress
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from edge.codecs.registers import (
    FLOAT_TYPES,
    INTEGER_TYPES,
    REGISTER_TYPES,
    PointType,
    RegisterType,
    register_count,
    value_range,
)
from edge.config_ble import BleConfig, BleLockDeviceConfig
from edge.config_mqtt import MqttConfig, MqttDeviceConfig, check_mqtt_devices
from edge.config_types import (
    DecimalValue,
    Duration,
    Name,
    PauseDuration,
    Section,
)
from edge.enrollment import ENROLLMENT_FILE, read_enrollment
from edge.errors import ConfigError


def _check_http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")
    return url.rstrip("/")


class GatewayConfig(Section):
    """Identity of the gateway, where it sends, where it keeps its state.

    `id` may be left out: an enrolled gateway reads the id the cloud assigned it from
    `data_dir/enrollment.json` (`tollgate-edge enroll`). When both are there they must agree.
    """

    declared_id: Annotated[
        str | None,
        Field(alias="id", min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][\w.:/-]*$"),
    ] = None
    cloud_url: Annotated[str, AfterValidator(_check_http_url)]
    data_dir: Path
    outbox_budget_mb: Annotated[float, Field(gt=0)] = 512
    key_file: Path | None = None
    _enrolled_id: str | None = PrivateAttr(default=None)

    @property
    def id(self) -> str:
        """The gateway id: from the config, else from the enrollment; `ConfigError` if neither."""
        if self.declared_id is not None:
            return self.declared_id
        if self._enrolled_id is None:
            self._enrolled_id = resolve_gateway_id(self)
        return self._enrolled_id

    @property
    def private_key_path(self) -> Path:
        """The gateway's Ed25519 key (mode 0600), `data_dir/gateway.key` unless configured."""
        return self.key_file or self.data_dir / "gateway.key"

    @property
    def outbox_path(self) -> Path:
        """The outbox database file."""
        return self.data_dir / "outbox.sqlite"


class ForwarderConfig(Section):
    """Batching and retry policy of the forwarder."""

    batch_max_events: Annotated[int, Field(ge=1, le=10_000)] = 2500
    batch_max_wait: Duration = 1.0
    request_timeout: Duration = 10.0
    retry_initial: Duration = 0.5
    retry_max: Duration = 30.0
    max_server_errors: Annotated[int, Field(ge=1, le=1000)] = 5
    """500 answers for one batch before it is dead-lettered (other 5xx are retried forever)."""


class CloudConfig(Section):
    """What the gateway tells the collector besides its batches: the signed heartbeat.

    A heartbeat goes out after a batch is delivered once `heartbeat_interval` has passed since
    the last one, and on its own every `heartbeat_interval` when no batch is going out.
    """

    heartbeat_interval: Annotated[Duration, Field(ge=0.1, le=3600.0)] = 60.0
    """Between "100ms" (tests) and "1h"; the collector's offline threshold should be a few."""


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
_LISTEN_EXAMPLE = '"127.0.0.1:8080", "0.0.0.0:8080" or "[::1]:8080"'


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` (IPv6 in brackets, `[::1]:8080`) -> (host, port); ValueError otherwise.

    Port 0 asks the system for a free port (the bound address is logged; tests use it).
    """
    host, sep, port = listen.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host
    if not sep or not host or not port.isascii() or not port.isdigit():
        raise ValueError(
            f"{listen!r} is not host:port like {_LISTEN_EXAMPLE}; "
            "to turn the page off, set enabled = false"
        )
    if int(port) > 65535:
        raise ValueError(f"{listen!r}: port {int(port)} is not 1..65535 (or 0: any free port)")
    if bracketed and not (_is_ip(host) and ":" in host):
        raise ValueError(f"{listen!r}: only an IPv6 address goes in brackets, like [::1]:8080")
    if ":" in host and not bracketed:
        raise ValueError(f"{listen!r}: write an IPv6 address in brackets, like [::1]:8080")
    if not bracketed and not (_is_ip(host) or _HOSTNAME.match(host)):
        raise ValueError(f"{listen!r}: {host!r} is not an IP address or host name")
    return host, int(port)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _check_listen(listen: str) -> str:
    parse_listen(listen)
    return listen


class DiagnosticsConfig(Section):
    """The local diagnostics page: `listen` is host:port; `enabled = false` turns it off."""

    enabled: bool = True
    listen: Annotated[str, AfterValidator(_check_listen)] = "127.0.0.1:8080"


_BIT_TABLES = frozenset({"coil", "discrete"})
_POINT_KINDS = ("counter", "state", "gauge")
_STATE_FIELDS = ("activation", "deactivation")
_GAUGE_FIELDS = ("deadband", "report_every")


def _parse_on_value(value: object) -> int:
    if isinstance(value, bool):
        return int(value)
    if not isinstance(value, int):
        raise ValueError(f"on_value must be an integer or true/false, not {value!r}")
    return value


class PointConfig(Section):
    """One point of a Modbus device: where it is, how it is encoded and what it means.

    `coil` and `discrete` points are `bool` (the default there); `holding` and `input` points
    have a register type. `kind` defaults to `state` for bits and `counter` for registers.
    A `counter` needs an integer type and bills its deltas times `scale`; a `state` makes its
    `activation` / `deactivation` events when the raw value becomes / stops being `on_value`; a
    `gauge` reports `value * scale + offset` as a measurement when it moves more than
    `deadband` or every `report_every` polls.
    """

    name: Name
    table: Literal["coil", "discrete", "holding", "input"]
    address: Annotated[int, Field(ge=0, le=65535)]
    type: Annotated[PointType | None, Field(validate_default=True)] = None
    byte_order: Literal["big", "little"] = "big"
    word_order: Literal["big", "little"] = "big"
    kind: Annotated[Literal["counter", "state", "gauge"] | None, Field(validate_default=True)] = (
        None
    )
    scale: DecimalValue = Decimal(1)
    offset: DecimalValue = Decimal(0)
    unit: Annotated[str, Field(min_length=1, max_length=16)] = "count"
    activation: Name | None = None
    deactivation: Name | None = None
    on_value: Annotated[int, BeforeValidator(_parse_on_value)] = 1
    deadband: Annotated[DecimalValue, Field(ge=0)] = Decimal(0)
    report_every: Annotated[int, Field(ge=1)] | None = None

    @field_validator("type")
    @classmethod
    def _type_fits_table(cls, value: PointType | None, info: ValidationInfo) -> PointType | None:
        table = info.data.get("table")
        if table is None:
            return value
        if table in _BIT_TABLES:
            if value not in (None, "bool"):
                raise ValueError(f"a {table} point is a single bit: type must be 'bool'")
            return "bool"
        if value is None:
            raise ValueError(f"a {table} point needs a type: one of {sorted(REGISTER_TYPES)}")
        if value == "bool":
            raise ValueError(
                f"'bool' is for coil and discrete points; a {table} point needs a register "
                f"type: one of {sorted(REGISTER_TYPES)}"
            )
        return value

    @field_validator("kind")
    @classmethod
    def _kind_fits_type(
        cls, value: Literal["counter", "state", "gauge"] | None, info: ValidationInfo
    ) -> Literal["counter", "state", "gauge"] | None:
        type_ = info.data.get("type")
        if type_ is None:
            return value
        if value is None:
            return "state" if type_ == "bool" else "counter"
        if value == "counter" and type_ not in INTEGER_TYPES:
            raise ValueError(f"a counter needs an integer type, not {type_!r}")
        if value == "state" and type_ in FLOAT_TYPES:
            raise ValueError(f"a state needs a bool or integer type, not {type_!r}")
        return value

    @field_validator("scale")
    @classmethod
    def _scale_is_used(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        if value == 0:
            raise ValueError("scale must not be 0")
        if value != 1 and info.data.get("kind") == "state":
            raise ValueError("a state compares the raw value with on_value: scale does not apply")
        return value

    @field_validator("offset")
    @classmethod
    def _offset_is_used(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        kind = info.data.get("kind")
        if value != 0 and kind in ("counter", "state"):
            raise ValueError(f"offset applies to gauges only, not to a {kind}")
        return value

    @field_validator("activation", "deactivation", "deadband", "report_every")
    @classmethod
    def _only_for_its_kind(cls, value: object, info: ValidationInfo) -> object:
        kind = info.data.get("kind")
        wanted = "state" if info.field_name in _STATE_FIELDS else "gauge"
        if kind is not None and kind != wanted and value not in (None, 0):
            raise ValueError(f"{info.field_name} is for {wanted} points, not a {kind}")
        return value

    @field_validator("on_value")
    @classmethod
    def _on_value_fits(cls, value: int, info: ValidationInfo) -> int:
        type_ = info.data.get("type")
        if type_ == "bool" and value not in (0, 1):
            raise ValueError(f"on_value of a bit must be true/false (or 1/0), not {value}")
        if type_ in INTEGER_TYPES:
            low, high = value_range(type_)
            if not low <= value <= high:
                raise ValueError(f"on_value {value} does not fit a {type_} ({low}..{high})")
        return value

    def model_post_init(self, context: Any, /) -> None:
        """A state needs an activation event name (its deactivation is optional)."""
        if self.kind == "state" and self.activation is None:
            raise ValueError(
                f"point {self.name!r}: a state point needs `activation` (the event name when it "
                "turns on), and usually `deactivation`"
            )

    @property
    def is_bit(self) -> bool:
        """Whether the point lives in a bit table (coil or discrete input)."""
        return self.table in _BIT_TABLES

    @property
    def register_type(self) -> RegisterType:
        """The register type of a holding/input point."""
        if self.type is None or self.type == "bool":
            raise ValueError(f"point {self.name!r} is a bit, it has no register type")
        return self.type

    @property
    def register_count(self) -> int:
        """How many table entries the point spans: 16-bit registers, or 1 for a bit."""
        if self.is_bit:
            return 1
        return register_count(self.register_type)

    @property
    def bits(self) -> int:
        """Width of the counter, for wrap-around."""
        return 16 * self.register_count


def _check_modbus_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "tcp":
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None or parts.path not in ("", "/") or parts.query:
            raise ValueError(f"{url!r} is not a Modbus URL like tcp://192.168.1.20:502")
        return url
    if parts.scheme == "rtu":
        parse_serial_url(url)
        return url
    raise ValueError(
        f"{url!r} is not a Modbus URL like tcp://192.168.1.20:502 or "
        "rtu:///dev/ttyUSB0?baudrate=9600&parity=N&stopbits=1&bytesize=8"
    )


@dataclass(frozen=True, slots=True)
class SerialLine:
    """The serial settings of an `rtu://` URL: one RS-485 line, shared by the units on it."""

    port: str
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: int = 1
    bytesize: int = 8


_SERIAL_KEYS = ("baudrate", "parity", "stopbits", "bytesize")


def parse_serial_url(url: str) -> SerialLine:
    """Split `rtu:///dev/ttyUSB0?baudrate=9600&parity=N&stopbits=1&bytesize=8` (checked)."""
    parts = urlsplit(url)
    example = "rtu:///dev/ttyUSB0?baudrate=9600&parity=N&stopbits=1&bytesize=8"
    if parts.scheme != "rtu" or parts.netloc or not parts.path.startswith("/"):
        raise ValueError(f"{url!r} is not a serial Modbus URL like {example}")
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ValueError(f"{url!r}: the query is not key=value pairs, like {example}") from None
    unknown = sorted(set(query) - set(_SERIAL_KEYS))
    if unknown:
        raise ValueError(f"{url!r}: unknown setting(s) {unknown}; expected {list(_SERIAL_KEYS)}")
    twice = sorted(key for key, values in query.items() if len(values) > 1)
    if twice:
        raise ValueError(f"{url!r}: setting(s) {twice} given twice")
    settings = {key: values[0] for key, values in query.items()}
    return SerialLine(
        port=parts.path,
        baudrate=_serial_int(url, settings, "baudrate", 9600, lambda v: v > 0, "> 0"),
        parity=_serial_parity(url, settings.get("parity", "N")),
        stopbits=_serial_int(url, settings, "stopbits", 1, lambda v: v in (1, 2), "1 or 2"),
        bytesize=_serial_int(url, settings, "bytesize", 8, lambda v: v in (7, 8), "7 or 8"),
    )


def _serial_int(
    url: str,
    settings: dict[str, str],
    key: str,
    default: int,
    valid: Callable[[int], bool],
    expected: str,
) -> int:
    text = settings.get(key)
    if text is None:
        return default
    if not text.isdigit() or not valid(int(text)):
        raise ValueError(f"{url!r}: {key}={text!r} is not valid, expected {expected}")
    return int(text)


def _serial_parity(url: str, text: str) -> Literal["N", "E", "O"]:
    if text not in ("N", "E", "O"):
        raise ValueError(f"{url!r}: parity={text!r} is not valid, expected N, E or O")
    return text  # type: ignore[return-value]  # checked just above


class ModbusDeviceConfig(Section):
    """A Modbus TCP or RTU device and the points polled from it.

    Several devices (unit ids) may share one `rtu://` port: their requests take turns on the
    line with `request_gap` between them, and their serial settings must be equal.
    """

    id: Name
    driver: Literal["modbus"]
    url: Annotated[str, AfterValidator(_check_modbus_url)]
    unit: Annotated[int, Field(ge=0, le=247)] = 1
    poll_interval: Duration = 5.0
    timeout: Duration = 1.0
    retries: Annotated[int, Field(ge=0, le=10)] = 1
    reconnect_initial: Duration = 1.0
    reconnect_max: Duration = 30.0
    request_gap: PauseDuration = 0.0
    max_coalesce: Annotated[int, Field(ge=1, le=125)] = 64
    point: Annotated[list[PointConfig], Field(min_length=1)]

    @field_validator("point")
    @classmethod
    def _point_names_are_unique(cls, points: list[PointConfig]) -> list[PointConfig]:
        seen: set[str] = set()
        for point in points:
            if point.name in seen:
                raise ValueError(f"point name {point.name!r} is used twice")
            seen.add(point.name)
        return points

    def model_post_init(self, context: Any, /) -> None:
        """Unit 0 is the RTU broadcast address: no device answers it."""
        if self.transport == "rtu" and self.unit == 0:
            raise ValueError(f"device {self.id!r}: unit 0 is the RTU broadcast address, use 1..247")

    @property
    def transport(self) -> Literal["tcp", "rtu"]:
        """`tcp` (Modbus TCP) or `rtu` (Modbus RTU on a serial line)."""
        return "rtu" if self.url.startswith("rtu:") else "tcp"

    @property
    def serial(self) -> SerialLine:
        """The serial line of an `rtu://` device."""
        if self.transport != "rtu":
            raise ValueError(f"device {self.id!r} is not on a serial line: {self.url}")
        return parse_serial_url(self.url)

    @property
    def address(self) -> str:
        """Where the device is, for logs and the diagnostics page."""
        return self.url

    @property
    def host(self) -> str:
        """Host part of the URL ("" for a serial device)."""
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        """Port part of the URL (502 unless given)."""
        return urlsplit(self.url).port or 502


def check_shared_lines(devices: list[ModbusDeviceConfig]) -> None:
    """Devices on one serial port must agree on its settings and not repeat a unit id."""
    lines: dict[str, tuple[SerialLine, set[int]]] = {}
    for device in devices:
        if device.transport != "rtu":
            continue
        line = device.serial
        known, units = lines.setdefault(line.port, (line, set()))
        if known != line:
            raise ValueError(
                f"device {device.id!r}: serial port {line.port} is configured with different "
                f"settings by another device ({known} vs {line})"
            )
        if device.unit in units:
            raise ValueError(
                f"device {device.id!r}: unit {device.unit} is used twice on {line.port}"
            )
        units.add(device.unit)


def _check_stopbits(value: float) -> float:
    if value not in (1, 1.5, 2):
        raise ValueError("stopbits must be 1, 1.5 or 2")
    return value


class SerialPortConfig(Section):
    """A serial line (RS-232 printer port, IT-100 interface), 9600 8N1 unless configured."""

    port: Annotated[str, Field(min_length=1)]
    baudrate: Annotated[int, Field(gt=0)] = 9600
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: Annotated[float, AfterValidator(_check_stopbits)] = 1
    reconnect_initial: Duration = 1.0
    reconnect_max: Duration = 30.0

    @property
    def address(self) -> str:
        """Where the device is, for logs and the diagnostics page."""
        return self.port


class It100DeviceConfig(SerialPortConfig):
    """A DSC PowerSeries panel behind an IT-100 serial interface."""

    id: Name
    driver: Literal["it100"]
    poll_interval: Duration = 30.0
    status_on_connect: bool = True
    zone_events: bool = False


LINE_FIELDS = frozenset({"name", "kind", "channel", "quantity", "unit", "occurred_at"})


def _check_line_pattern(pattern: str) -> str:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"pattern is not a valid regular expression: {exc}") from exc
    if not compiled.groupindex:
        raise ValueError("pattern needs named groups, e.g. (?P<name>...) (?P<channel>...)")
    return pattern


class LinesDeviceConfig(SerialPortConfig):
    """A printer-port panel read line by line: a regex with named groups maps each line.

    Groups named like event fields (`name`, `kind`, `channel`, `quantity`, `unit`,
    `occurred_at`) fill them; every other named group goes to `attrs`. `name` and `kind` fall
    back to the configured defaults when the pattern has no such group.
    """

    id: Name
    driver: Literal["lines"]
    pattern: Annotated[str, AfterValidator(_check_line_pattern)]
    name: Name | None = None
    kind: Literal["activation", "deactivation", "activity", "measurement"] = "activity"
    encoding: str = "ascii"


DeviceConfig = Annotated[
    ModbusDeviceConfig
    | It100DeviceConfig
    | LinesDeviceConfig
    | MqttDeviceConfig
    | BleLockDeviceConfig,
    Field(discriminator="driver"),
]


DRIVERS = frozenset({"modbus", "it100", "lines", "mqtt", "ble-lock"})


class SiteConfig(Section):
    """Everything one gateway needs to run."""

    gateway: GatewayConfig
    forwarder: ForwarderConfig = ForwarderConfig()
    cloud: CloudConfig = CloudConfig()
    diagnostics: DiagnosticsConfig = DiagnosticsConfig()
    mqtt: MqttConfig | None = None
    ble: BleConfig = BleConfig()
    device: list[DeviceConfig] = Field(default_factory=list)

    def model_post_init(self, context: Any, /) -> None:
        """Device ids must be unique: they name the device in every event."""
        seen: set[str] = set()
        for device in self.device:
            if device.id in seen:
                raise ValueError(f"device id {device.id!r} is used twice")
            seen.add(device.id)
        check_shared_lines([d for d in self.device if isinstance(d, ModbusDeviceConfig)])
        topics = [d for d in self.device if isinstance(d, MqttDeviceConfig)]
        if topics and self.mqtt is None:
            raise ValueError("mqtt devices need an [mqtt] section naming the broker")
        check_mqtt_devices(topics)


def load_config(path: Path, *, require_id: bool = True) -> SiteConfig:
    """Read and validate a site config, raising `ConfigError` that names file, line and field.

    With `require_id` the gateway id must be known (configured or enrolled), or `ConfigError`.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from exc
    config = parse_config(text, source=str(path))
    if require_id:
        resolve_gateway_id(config.gateway, source=str(path))
    return config


def resolve_gateway_id(gateway: GatewayConfig, *, source: str = "config") -> str:
    """The configured or enrolled gateway id; `ConfigError` if neither or if they differ."""
    record = read_enrollment(gateway.data_dir)
    if record is None:
        if gateway.declared_id is not None:
            return gateway.declared_id
        raise ConfigError(
            f"{source}: not enrolled: run tollgate-edge enroll (no [gateway] id and no "
            f"{gateway.data_dir / ENROLLMENT_FILE})"
        )
    if gateway.declared_id is not None and gateway.declared_id != record.gateway_id:
        raise ConfigError(
            f"{source}: [gateway] id {gateway.declared_id!r} differs from the enrolled id "
            f"{record.gateway_id!r} in {gateway.data_dir / ENROLLMENT_FILE}: remove `id` "
            "from [gateway] (the cloud assigned the enrolled one)"
        )
    return record.gateway_id


def parse_config(text: str, *, source: str) -> SiteConfig:
    """Validate config text; `source` names it in errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return SiteConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, text=text, raw=raw, source=source)) from exc


def _describe(error: ValidationError, *, text: str, raw: dict[str, Any], source: str) -> str:
    problems = []
    for item in error.errors():
        loc = _without_union_tag(tuple(item["loc"]))
        line = locate_line(text, loc)
        where = f"{source}:{line}" if line else source
        device = _device_name(raw, loc)
        field = ".".join(str(part) for part in loc if not isinstance(part, int)) or "(top level)"
        prefix = (
            f"{where}: device {device!r}, field {field}" if device else f"{where}: field {field}"
        )
        problems.append(f"{prefix}: {item['msg']}")
    return "\n".join(problems)


def _without_union_tag(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # pydantic puts the matched `driver` of the device union into the location; the file has none.
    if len(loc) > 2 and loc[0] == "device" and loc[2] in DRIVERS:
        return (*loc[:2], *loc[3:])
    return loc


def _device_name(raw: dict[str, Any], loc: tuple[Any, ...]) -> str | None:
    if len(loc) < 2 or loc[0] != "device" or not isinstance(loc[1], int):
        return None
    devices = raw.get("device")
    if isinstance(devices, list) and loc[1] < len(devices) and isinstance(devices[loc[1]], dict):
        return str(devices[loc[1]].get("id", f"#{loc[1] + 1}"))
    return f"#{loc[1] + 1}"


_HEADER = re.compile(r"^\s*(\[\[?)\s*([\w.-]+)\s*\]\]?")
_KEY = re.compile(r"^\s*([\w-]+)\s*=")


def locate_line(text: str, loc: tuple[Any, ...]) -> int | None:
    """Best line number (1-based) for a validation error at `loc`, from the table headers."""
    table_path: tuple[Any, ...] = ()
    counts: dict[tuple[Any, ...], int] = {}
    best: int | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table_path = _table_path(
                header.group(2).split("."),
                table_path,
                is_array=header.group(1) == "[[",
                counts=counts,
            )
            if loc[: len(table_path)] == table_path:
                best = number
            continue
        key = _KEY.match(line)
        if key and (*table_path, key.group(1)) == loc[: len(table_path) + 1]:
            return number
    return best


def _table_path(
    names: list[str],
    current: tuple[Any, ...],
    *,
    is_array: bool,
    counts: dict[tuple[Any, ...], int],
) -> tuple[Any, ...]:
    path: tuple[Any, ...] = ()
    for depth, name in enumerate(names):
        path = (*path, name)
        last = depth == len(names) - 1
        if last and is_array:
            index = counts.get(path, -1) + 1
            counts[path] = index
            # A new element of an array resets the counters of the tables nested in it.
            for key in [k for k in counts if len(k) > len(path) and k[: len(path)] == path]:
                del counts[key]
            path = (*path, index)
        elif (
            not last
            and path == tuple(current[: len(path)])
            and len(current) > len(path)
            and isinstance(current[len(path)], int)
        ):
            path = (*path, current[len(path)])
    return path
