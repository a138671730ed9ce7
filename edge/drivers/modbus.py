"""ModbusDriver: reads the points of one Modbus TCP or RTU device into `Reading`s.

The driver is the boundary between pymodbus and the agent: every pymodbus outcome becomes either a
list of readings or one of our `DriverError`s (the mapping is in `_execute`), like
`map_httpcore_exceptions()` in httpx. No pymodbus exception leaves this module. Protocol trouble
is also counted in the device's `DeviceHealth.count()`: `timeout`, `crc_error`, `frame_error`
and `exception_<code>` (e.g. `exception_2` for ILLEGAL DATA ADDRESS).

Requests: adjacent points of one table are read with one request of at most `max_coalesce`
registers (or bits); `plan_requests` is the pure planner.

Lines: a TCP device has a connection of its own. Several devices (unit ids) on one RS-485 port
share one pymodbus client, because only one process may open the port and the line carries one
request at a time. `_LINES` is the registry of open serial lines, keyed by event loop and port
path and reference-counted by the drivers using them; the line's `asyncio.Lock` makes requests
take turns, with the largest `request_gap` of its devices between the end of one request and the
start of the next. A silent unit therefore costs the others its timeout, but never an error.

The port is opened exclusively: pymodbus 3.16.1 opens it with pyserial's `exclusive=True` (an
flock) by itself, so a second opener (`tollgate-edge check` while the agent runs, a second
agent) is refused instead of sharing the line and mixing its frames into ours. pymodbus only
returns False then; `edge.drivers.pymodbus_internals.OpenFailure` keeps the `OSError`, and the
driver says why in the serial panels' words (`edge.drivers.serial_line.open_error`): held by
another process (`PortHeld`, the holder's pid from /proc/locks), no such device, or permission
denied.

Each request runs with its own device's `timeout` and `retries`, set on the shared client while
the line is held: pymodbus keeps both per client, not per request, and has no public setter, so
`edge.drivers.pymodbus_internals.RequestLimits` does it (one of the two pymodbus internals
touched here; `OpenFailure` above is the other). Nothing is clamped: the configured values go
to pymodbus exactly.

CRC errors: pymodbus drops an RTU frame whose CRC is wrong without telling the caller (the request
then times out). `_BadCrcWatch`, given to the client as its public `trace_packet=` hook, runs
pymodbus's own RTU decoding on the bytes that arrived and counts the frames it drops.

A driver is used once: `async with ModbusDriver(config) as driver` connects (or joins the shared
line), `poll()` reads, exit closes (or leaves the line). Reconnecting is the agent's job, so the
pymodbus client's own reconnect task is switched off (`reconnect_delay=0`).
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Self

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.client.base import ModbusBaseClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ModbusPDU

from edge.codecs.registers import decode_bits, decode_registers, scale_value, to_unsigned
from edge.config import ModbusDeviceConfig, PointConfig, SerialLine
from edge.drivers.pymodbus_internals import OpenFailure, RequestLimits
from edge.drivers.serial_line import open_error
from edge.errors import ConfigError, DeviceTimeout, DeviceUnreachable, DriverError, FrameError
from edge.health import DeviceHealth
from edge.lifecycle import Lifecycle
from edge.readings import Reading

# Function codes of the read requests (Modbus Application Protocol v1.1b3, 6.1 to 6.4).
_FUNCTION_CODES = {"coil": 0x01, "discrete": 0x02, "holding": 0x03, "input": 0x04}
_TABLE_WORDS = {
    "coil": "coil",
    "discrete": "discrete input",
    "holding": "holding register",
    "input": "input register",
}


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One read: `count` registers (or bits) of `table` from `address`, covering `points`."""

    table: str
    address: int
    count: int
    points: tuple[PointConfig, ...]

    def describe(self) -> str:
        """E.g. "holding register 10..13 (points 'a', 'b')"."""
        span = str(self.address)
        if self.count > 1:
            span += f"..{self.address + self.count - 1}"
        names = ", ".join(repr(point.name) for point in self.points)
        label = "point" if len(self.points) == 1 else "points"
        return f"{_TABLE_WORDS[self.table]} {span} ({label} {names})"


def plan_requests(points: Sequence[PointConfig], *, max_coalesce: int) -> list[ReadRequest]:
    """Group points into reads: per table, by address, merging points that touch or overlap
    while the read stays within `max_coalesce` registers (or bits). Gaps are never read: an
    address the device does not have would fail the whole request."""
    requests: list[ReadRequest] = []
    for table in _FUNCTION_CODES:
        ordered = sorted((p for p in points if p.table == table), key=lambda p: p.address)
        group: list[PointConfig] = []
        start = end = 0
        for point in ordered:
            point_end = point.address + point.register_count
            if group and point.address <= end and max(end, point_end) - start <= max_coalesce:
                group.append(point)
                end = max(end, point_end)
                continue
            if group:
                requests.append(ReadRequest(table, start, end - start, tuple(group)))
            group, start, end = [point], point.address, point_end
        if group:
            requests.append(ReadRequest(table, start, end - start, tuple(group)))
    return requests


def _ignore() -> None:
    pass


class _BadCrcWatch:
    """A client's `trace_packet` hook: reports the frames pymodbus's RTU framer drops for a bad CRC.

    pymodbus hands the hook what arrived (all of it not yet framed) just before its framer decodes
    the same bytes; decoding them here with a framer of the same kind gives the same outcome, and
    `FramerRTU.decode`'s only "consumed but no frame" outcome is a CRC failure.
    """

    def __init__(self) -> None:
        self._framer = FramerRTU(DecodePDU(False))  # a client's decoder, as pymodbus builds it
        self.on_bad_crc: Callable[[], None] = _ignore

    def __call__(self, sending: bool, data: bytes) -> bytes:
        """Pass `data` on unchanged; call `on_bad_crc` when it holds a frame with a bad CRC."""
        if not sending:
            used, _, _, frame = self._framer.decode(data)
            if used and not frame:
                self.on_bad_crc()
        return data


@dataclass(eq=False)
class _Line:
    """One connection (TCP) or serial port (RTU) and the turn-taking of its requests."""

    client: ModbusBaseClient
    key: tuple[asyncio.AbstractEventLoop, str] | None = None
    serial: SerialLine | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    gaps: list[float] = field(default_factory=list)
    last_done: float | None = None
    health: DeviceHealth | None = None  # the device whose request is on the line
    limits: RequestLimits = field(init=False)
    open_failure: OpenFailure | None = field(init=False)  # a serial line's: why it did not open

    def __post_init__(self) -> None:
        # Both check pymodbus's internals before connecting.
        self.limits = RequestLimits(self.client)
        self.open_failure = OpenFailure(self.client) if self.serial is not None else None

    @asynccontextmanager
    async def turn(
        self, config: ModbusDeviceConfig, health: DeviceHealth | None
    ) -> AsyncIterator[ModbusBaseClient]:
        """Hold the line for one request of `config`'s device, after the configured gap."""
        async with self.lock:
            loop = asyncio.get_running_loop()
            if self.last_done is not None:
                pause = self.last_done + max(self.gaps, default=0.0) - loop.time()
                if pause > 0:
                    await asyncio.sleep(pause)
            # pymodbus keeps timeout and retries per client; a shared line sets them per turn.
            self.limits.set(timeout=config.timeout, retries=config.retries)
            self.health = health
            try:
                yield self.client
            finally:
                self.health = None
                self.last_done = loop.time()

    def count_bad_crc(self) -> None:
        if self.health is not None:
            self.health.count("crc_error")


# Open serial lines, shared by the drivers of the units on them (see the module docstring).
_LINES: dict[tuple[asyncio.AbstractEventLoop, str], tuple[_Line, list["ModbusDriver"]]] = {}


class ModbusDriver:
    """Polls the configured points of one Modbus device; one instance per connection."""

    def __init__(self, config: ModbusDeviceConfig, *, health: DeviceHealth | None = None) -> None:
        self._config = config
        self._health = health
        self._lifecycle = Lifecycle(f"ModbusDriver for {config.id!r}")
        self._line: _Line | None = None
        self._requests = plan_requests(config.point, max_coalesce=config.max_coalesce)

    @property
    def config(self) -> ModbusDeviceConfig:
        """The device this driver reads."""
        return self._config

    @property
    def requests(self) -> list[ReadRequest]:
        """The reads one poll makes, in order."""
        return list(self._requests)

    async def __aenter__(self) -> Self:
        """Connect (or join the open serial line); raises `DeviceUnreachable` if it cannot."""
        self._lifecycle.enter()
        try:
            if self._config.transport == "rtu":
                await self._join_serial_line()
            else:
                self._line = _Line(self._build_tcp_client(), gaps=[self._config.request_gap])
                await self._connect(self._line)
        except BaseException:
            self._close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the connection (or leave the serial line, closing it after its last user)."""
        self._close()

    async def poll(self) -> list[Reading]:
        """Read every configured point (coalesced, table by table); return them in config order."""
        self._lifecycle.require_open()
        values: dict[str, Reading] = {}
        for request in self._requests:
            for reading in await self._read(request):
                values[reading.point] = reading
        return [values[point.name] for point in self._config.point]

    async def _read(self, request: ReadRequest) -> list[Reading]:
        line = self._line
        assert line is not None
        async with line.turn(self._config, self._health) as client:
            response = await self._execute(client, request)
        observed_at = datetime.now(UTC)
        try:
            return [
                self._reading(point, response, request, observed_at) for point in request.points
            ]
        except FrameError as exc:
            self._count("frame_error")
            raise FrameError(f"{self._where(request)}: {exc}") from exc

    def _reading(
        self,
        point: PointConfig,
        response: list[int] | list[bool],
        request: ReadRequest,
        observed_at: datetime,
    ) -> Reading:
        offset = point.address - request.address
        chunk = response[offset : offset + point.register_count]
        raw: int | float | bool
        if point.is_bit:
            raw = bool(chunk[0])
        else:
            raw = decode_registers(
                [int(word) for word in chunk],
                type=point.register_type,
                word_order=point.word_order,
                byte_order=point.byte_order,
            )
        return Reading(
            device_id=self._config.id,
            point=point.name,
            value=_value(point, raw),
            observed_at=observed_at,
            raw=raw,
        )

    async def _execute(
        self, client: ModbusBaseClient, request: ReadRequest
    ) -> list[int] | list[bool]:
        """One request; every pymodbus outcome is mapped to values or a `DriverError` here."""
        where = self._where(request)
        if not client.connected:
            raise DeviceUnreachable(f"{where}: connection is closed")
        try:
            response = await _READS[request.table](client)(
                request.address, count=request.count, device_id=self._config.unit
            )
        except ConnectionException as exc:
            raise DeviceUnreachable(f"{where}: not connected") from exc
        except ModbusIOException as exc:
            # pymodbus raises this when no answer came after all retries; a TCP connection the
            # device dropped meanwhile looks the same, so tell the two apart by the socket.
            if not client.connected:
                raise DeviceUnreachable(f"{where}: connection lost") from exc
            self._count("timeout")
            attempts = self._config.retries + 1
            raise DeviceTimeout(
                f"{where}: no answer within {self._config.timeout:g}s "
                f"({attempts} attempt{'s' if attempts > 1 else ''})"
            ) from exc
        except ModbusException as exc:
            raise DriverError(f"{where}: request failed: {exc}") from exc
        except OSError as exc:
            raise DeviceUnreachable(f"{where}: {exc}") from exc
        return self._check_response(request, response)

    def _check_response(self, request: ReadRequest, response: ModbusPDU) -> list[int] | list[bool]:
        where = self._where(request)
        if response.isError():
            code = getattr(response, "exception_code", None)
            self._count(f"exception_{code}")
            raise FrameError(
                f"{where}: device answered Modbus exception code {code} ({_exception_name(code)})"
            )
        expected = _FUNCTION_CODES[request.table]
        if response.function_code != expected:
            self._count("frame_error")
            raise FrameError(
                f"{where}: answer has function code {response.function_code}, expected {expected}"
            )
        if request.table in ("coil", "discrete"):
            try:
                return decode_bits(response.bits, count=request.count)
            except FrameError as exc:
                self._count("frame_error")
                raise FrameError(f"{where}: {exc}") from exc
        registers = list(response.registers)
        if len(registers) != request.count:
            self._count("frame_error")
            raise FrameError(
                f"{where}: asked for {request.count} register(s), got {len(registers)}"
            )
        return registers

    async def _connect(self, line: _Line) -> None:
        try:
            connected = await line.client.connect()
        except (ModbusException, OSError) as exc:
            raise DeviceUnreachable(f"{self._where()}: cannot connect: {exc}") from exc
        if connected:
            return
        failure = line.open_failure.error if line.open_failure is not None else None
        if line.serial is not None and failure is not None:
            # Held by another process, no such device, permission denied: the serial panels' words.
            raise open_error(line.serial.port, failure) from failure
        raise DeviceUnreachable(
            f"{self._where()}: cannot connect (refused, unreachable, busy or no answer "
            f"within {self._config.timeout:g}s)"
        )

    async def _join_serial_line(self) -> None:
        """Become a user of the port's line (opening it first); a failed open leaves it again
        on `_close`, so the line is closed with its last user even then."""
        serial = self._config.serial
        key = (asyncio.get_running_loop(), serial.port)
        if key in _LINES:
            line, users = _LINES[key]
            if line.serial != serial:
                raise ConfigError(
                    f"{self._where()}: {serial.port} is already open with other settings "
                    f"({line.serial} vs {serial})"
                )
            users.append(self)
            line.gaps.append(self._config.request_gap)
            self._line = line
            async with line.lock:  # after the first user's connect; reopen a line that failed
                if not line.client.connected:
                    await self._connect(line)
            return
        watch = _BadCrcWatch()
        line = _Line(self._build_serial_client(serial, watch), key=key, serial=serial)
        watch.on_bad_crc = line.count_bad_crc
        line.gaps.append(self._config.request_gap)
        _LINES[key] = (line, [self])
        self._line = line
        async with line.lock:
            await self._connect(line)

    def _close(self) -> None:
        self._lifecycle.close()
        line, self._line = self._line, None
        if line is None or line.key is None:
            if line is not None:
                line.client.close()
            return
        entry = _LINES.get(line.key)
        if entry is None or entry[0] is not line:
            return
        users = entry[1]
        if self in users:
            users.remove(self)
            line.gaps.remove(self._config.request_gap)
        if not users:
            del _LINES[line.key]
            line.client.close()

    def _build_tcp_client(self) -> AsyncModbusTcpClient:
        return AsyncModbusTcpClient(
            self._config.host,
            port=self._config.port,
            name=self._config.id,
            timeout=self._config.timeout,
            retries=self._config.retries,
            reconnect_delay=0,  # the agent reconnects, with its own backoff
        )

    def _build_serial_client(
        self, serial: SerialLine, watch: _BadCrcWatch
    ) -> AsyncModbusSerialClient:
        return AsyncModbusSerialClient(
            serial.port,
            baudrate=serial.baudrate,
            bytesize=serial.bytesize,
            parity=serial.parity,
            stopbits=serial.stopbits,
            name=serial.port,
            timeout=self._config.timeout,
            retries=self._config.retries,
            reconnect_delay=0,  # the agent reconnects, with its own backoff
            trace_packet=watch,
        )

    def _count(self, what: str) -> None:
        if self._health is not None:
            self._health.count(what)

    def _where(self, request: ReadRequest | None = None) -> str:
        if self._config.transport == "rtu":
            device = f"device {self._config.id!r} at {self._config.serial.port}"
        else:
            device = f"device {self._config.id!r} at {self._config.host}:{self._config.port}"
        if request is None:
            return device
        return f"{device} unit {self._config.unit}, {request.describe()}"


def _read_coils(client: ModbusBaseClient) -> Callable[..., Awaitable[ModbusPDU]]:
    return client.read_coils


def _read_discrete(client: ModbusBaseClient) -> Callable[..., Awaitable[ModbusPDU]]:
    return client.read_discrete_inputs


def _read_holding(client: ModbusBaseClient) -> Callable[..., Awaitable[ModbusPDU]]:
    return client.read_holding_registers


def _read_input(client: ModbusBaseClient) -> Callable[..., Awaitable[ModbusPDU]]:
    return client.read_input_registers


_READS: dict[str, Callable[[ModbusBaseClient], Callable[..., Awaitable[ModbusPDU]]]] = {
    "coil": _read_coils,
    "discrete": _read_discrete,
    "holding": _read_holding,
    "input": _read_input,
}


def _value(point: PointConfig, raw: int | float | bool) -> int | bool | Decimal:
    """What the normalizer gets: a counter's unsigned int, a state's raw value, a gauge's
    scaled Decimal."""
    if point.kind == "gauge":
        assert point.type is not None
        return scale_value(raw, type=point.type, scale=point.scale, offset=point.offset)
    if point.kind == "counter":
        # A counter in a signed register wraps as two's complement: count its bit pattern.
        assert isinstance(raw, int) and not isinstance(raw, bool)
        return to_unsigned(raw, type=point.register_type)
    assert isinstance(raw, int)  # states are bits or integer registers (the config checks)
    return raw


def _exception_name(code: int | None) -> str:
    try:
        return ExcCodes(code).name if code is not None else "missing"
    except ValueError:
        return "unknown"
