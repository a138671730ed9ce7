"""The site config: TOML validated by pydantic, with errors that name file, line, device and field.

See DESIGN.md "Site config". Durations are strings such as "250ms", "5s", "2m", "1h".
"""

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from edge.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> float:
    """Turn "250ms", "5s", "2m", "1h" into seconds; bare numbers are refused to avoid unit slips."""
    if not isinstance(value, str):
        raise ValueError('durations are strings with a unit, for example "5s" or "250ms"')
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f'{value!r} is not a duration like "250ms", "5s", "2m" or "1h"')
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _check_tcp_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "tcp" or not parts.hostname or parts.port is None:
        raise ValueError(f"{url!r} is not a Modbus URL like tcp://192.168.1.20:502")
    return url


def _check_http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")
    return url.rstrip("/")


Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][\w.-]*$")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewayConfig(_Section):
    """Identity of the gateway, where it sends, where it keeps its state."""

    id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][\w.:/-]*$")]
    cloud_url: Annotated[str, AfterValidator(_check_http_url)]
    data_dir: Path
    outbox_budget_mb: Annotated[float, Field(gt=0)] = 512
    key_file: Path | None = None

    @property
    def private_key_path(self) -> Path:
        """The gateway's Ed25519 key (mode 0600), `data_dir/gateway.key` unless configured."""
        return self.key_file or self.data_dir / "gateway.key"

    @property
    def outbox_path(self) -> Path:
        """The outbox database file."""
        return self.data_dir / "outbox.sqlite"


class ForwarderConfig(_Section):
    """Batching and retry policy of the forwarder."""

    batch_max_events: Annotated[int, Field(ge=1, le=10_000)] = 2500
    batch_max_wait: Duration = 1.0
    request_timeout: Duration = 10.0
    retry_initial: Duration = 0.5
    retry_max: Duration = 30.0


class DiagnosticsConfig(_Section):
    """The local diagnostics page."""

    listen: str = "127.0.0.1:8080"


class PointConfig(_Section):
    """One register point of a Modbus device."""

    name: Name
    table: Literal["holding", "input"]
    address: Annotated[int, Field(ge=0, le=65535)]
    type: Literal["uint16", "uint32"]
    word_order: Literal["big", "little"] = "big"
    kind: Literal["counter"] = "counter"
    unit: Annotated[str, Field(min_length=1, max_length=16)] = "count"

    @property
    def register_count(self) -> int:
        """How many 16-bit registers the point spans."""
        return 2 if self.type == "uint32" else 1

    @property
    def bits(self) -> int:
        """Width of the counter, for wrap-around."""
        return 16 * self.register_count


class ModbusDeviceConfig(_Section):
    """A Modbus TCP device and the points polled from it."""

    id: Name
    driver: Literal["modbus"]
    url: Annotated[str, AfterValidator(_check_tcp_url)]
    unit: Annotated[int, Field(ge=0, le=247)] = 1
    poll_interval: Duration = 5.0
    timeout: Duration = 1.0
    retries: Annotated[int, Field(ge=0, le=10)] = 1
    reconnect_initial: Duration = 1.0
    reconnect_max: Duration = 30.0
    point: Annotated[list[PointConfig], Field(min_length=1)]

    @property
    def address(self) -> str:
        """Where the device is, for logs and the diagnostics page."""
        return self.url

    @property
    def host(self) -> str:
        """Host part of the URL."""
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        """Port part of the URL."""
        return urlsplit(self.url).port or 502


class SerialPortConfig(_Section):
    """A serial line (RS-232 printer port, IT-100 interface), 9600 8N1 unless configured."""

    port: Annotated[str, Field(min_length=1)]
    baudrate: Annotated[int, Field(gt=0)] = 9600
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: Literal[1, 1.5, 2] = 1
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
    ModbusDeviceConfig | It100DeviceConfig | LinesDeviceConfig, Field(discriminator="driver")
]


DRIVERS = frozenset({"modbus", "it100", "lines"})


class SiteConfig(_Section):
    """Everything one gateway needs to run."""

    gateway: GatewayConfig
    forwarder: ForwarderConfig = ForwarderConfig()
    diagnostics: DiagnosticsConfig = DiagnosticsConfig()
    device: list[DeviceConfig] = Field(default_factory=list)

    def model_post_init(self, context: Any, /) -> None:
        """Device ids must be unique: they name the device in every event."""
        seen: set[str] = set()
        for device in self.device:
            if device.id in seen:
                raise ValueError(f"device id {device.id!r} is used twice")
            seen.add(device.id)


def load_config(path: Path) -> SiteConfig:
    """Read and validate a site config, raising `ConfigError` that names file, line and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from exc
    return parse_config(text, source=str(path))


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
