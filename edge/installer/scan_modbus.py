"""The installer's discovery scan: which Modbus unit ids hold a device on a line, and what it holds.

`scan` sends one read (`--table` at `--address`) to each unit id, then looks closer at the units
that answered, on one connection. Which units count as a device:

- a unit that returned data to at least one read (any table) is a device, and the only kind
  whose registers are dumped;
- a unit that answered only with exceptions, at least one of them other than 4, is a device
  too: an ILLEGAL FUNCTION (1) or ILLEGAL DATA ADDRESS (2) means it parsed the request and has
  nothing there (listed as refusing every read, not dumped);
- a unit whose every answer is exception 4 (SERVER DEVICE FAILURE) is not a device: a TCP
  server or gateway that serves one unit answers 4 for every unit id it does not know
  (pymodbus 3.x does: its datastore has no such device and the server reports the failure), so
  these units are counted in one line of the summary, not listed;
- a unit that does not answer within the timeout, or for which a gateway answers 0x0A/0x0B
  (Modbus Application Protocol v1.1b3, section 7:
  https://modbus.org/docs/Modbus_Application_Protocol_V1_1b3.pdf: nothing behind it), is not
  there: counted, not listed.

A unit that answered the probe with data or an exception other than 4 gets the block read:
`count` entries from `--address`; a block it refuses (typically a hole in its map) is read again
address by address, so the installer sees which addresses exist. A unit that has returned no
data yet (an exception 4 to the probe included) is asked once more in each other table at the
same address; a unit that answered 4 is never read address by address, so a server serving one
unit costs four requests per other unit id instead of a dump of exception rows.

This module is a boundary like `edge.drivers.modbus`: pymodbus clients are used directly, with
`retries=0` and the given timeout, and every pymodbus error becomes a `DriverError` here. The
text of a scan (summary, then the dump) is `edge.installer.scan_modbus_report`.
"""

from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self
from urllib.parse import urlsplit

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.client.base import ModbusBaseClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from edge.config import _check_modbus_url, parse_serial_url
from edge.errors import ConfigError, DeviceTimeout, DeviceUnreachable, DriverError, FrameError
from edge.lifecycle import Lifecycle

Table = Literal["holding", "input", "coil", "discrete"]
TABLES: tuple[Table, ...] = ("holding", "input", "coil", "discrete")
# Largest read per request (Modbus Application Protocol v1.1b3, 6.1 to 6.4).
MAX_COUNT: dict[Table, int] = {"holding": 125, "input": 125, "coil": 2000, "discrete": 2000}
# Exception codes and their names (Modbus Application Protocol v1.1b3, section 7).
EXCEPTION_NAMES = {
    0x01: "ILLEGAL FUNCTION",
    0x02: "ILLEGAL DATA ADDRESS",
    0x03: "ILLEGAL DATA VALUE",
    0x04: "SERVER DEVICE FAILURE",
    0x05: "ACKNOWLEDGE",
    0x06: "SERVER DEVICE BUSY",
    0x07: "NEGATIVE ACKNOWLEDGE",
    0x08: "MEMORY PARITY ERROR",
    0x0A: "GATEWAY PATH UNAVAILABLE",
    0x0B: "GATEWAY TARGET DEVICE FAILED TO RESPOND",
}
SERVER_DEVICE_FAILURE = 0x04
_GATEWAY_ABSENT = frozenset({0x0A, 0x0B})
# A scan expects many silent units: never let pymodbus drop the connection over them.
_NO_DISCONNECT = 1_000_000


def exception_name(code: int) -> str:
    """The spec's name of a Modbus exception code."""
    return EXCEPTION_NAMES.get(code, "UNKNOWN EXCEPTION")


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer to a read of one entry of `table` at `address`: its value, or an exception."""

    table: Table
    address: int
    value: int | None = None
    exception_code: int | None = None

    def describe(self) -> str:
        """E.g. "holding 0 = 17" or "holding 0: exception 2 (ILLEGAL DATA ADDRESS)"."""
        if self.exception_code is not None:
            code = self.exception_code
            return f"{self.table} {self.address}: exception {code} ({exception_name(code)})"
        return f"{self.table} {self.address} = {self.value}"


@dataclass(frozen=True, slots=True)
class Cell:
    """One address of a read: its value, or the exception the device gave for it."""

    address: int
    value: int | None
    exception_code: int | None = None


@dataclass(frozen=True, slots=True)
class UnitRead:
    """What `read_range` found at one unit: a cell per address from `address`."""

    unit: int
    table: Table
    address: int
    cells: tuple[Cell, ...]


UnitKind = Literal["data", "refused", "failure"]


@dataclass(frozen=True, slots=True)
class UnitReport:
    """A unit that answered: its single-entry answers (the probe first) and its block read."""

    unit: int
    answers: tuple[Answer, ...]
    read: UnitRead | None = None

    @property
    def kind(self) -> UnitKind:
        """ "data" (returned data), "refused" (only exceptions, not all 4) or "failure" (all 4)."""
        cells = self.read.cells if self.read is not None else ()
        values = [answer.value for answer in self.answers] + [cell.value for cell in cells]
        if any(value is not None for value in values):
            return "data"
        codes = {answer.exception_code for answer in self.answers}
        codes |= {cell.exception_code for cell in cells}
        return "failure" if codes == {SERVER_DEVICE_FAILURE} else "refused"

    @property
    def dumped(self) -> bool:
        """Whether its block read holds data (what the dump shows)."""
        return self.read is not None and any(cell.value is not None for cell in self.read.cells)


@dataclass(frozen=True, slots=True)
class ScanResult:
    """Every unit that answered, in scan order, and the unit ids that did not."""

    units: tuple[UnitReport, ...]
    timed_out: tuple[int, ...] = ()
    gateway_absent: tuple[int, ...] = ()

    def of_kind(self, kind: UnitKind) -> list[UnitReport]:
        """The answering units of one kind, in scan order."""
        return [report for report in self.units if report.kind == kind]

    @property
    def devices(self) -> list[UnitReport]:
        """The units that count as a device: they returned data or refused a read."""
        return [report for report in self.units if report.kind != "failure"]


def parse_units(text: str) -> list[int]:
    """Unit ids from "1-247", "1,2,5" or a mix such as "1-3,7"; raises `ValueError`."""
    units: list[int] = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"{text!r} is not a unit list like 1-247 or 1,2,5")
        first, last = int(low), int(high) if dash else int(low)
        if not 0 <= first <= last <= 247:
            raise ValueError(f"{part.strip()!r}: unit ids go from 0 to 247, low to high")
        units.extend(u for u in range(first, last + 1) if u not in units)
    return units


def check_url(url: str) -> str:
    """A Modbus URL (`tcp://host:port` or `rtu:///dev/ttyX?...`), checked; `ConfigError` if not."""
    try:
        return _check_modbus_url(url)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


class ModbusScanner:
    """One connection (TCP) or serial port (RTU) to scan; `async with` connects and closes."""

    def __init__(self, url: str, *, timeout: float) -> None:
        self._url = check_url(url)
        self._timeout = timeout
        self._client = _build_client(self._url, timeout=timeout)
        self._lifecycle = Lifecycle(f"ModbusScanner for {url}")

    async def __aenter__(self) -> Self:
        """Connect; raises `DeviceUnreachable` if it cannot."""
        self._lifecycle.enter()
        try:
            await self._connect()
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
        """Close the connection."""
        self._close()

    async def probe(self, unit: int, *, table: Table, address: int) -> Answer | None:
        """Read one entry of `table` at `address` from `unit`; `None` when nothing answers."""
        try:
            response = await self._request(unit, table, address, 1)
        except DeviceTimeout:
            return None
        if response.isError():
            return Answer(table, address, exception_code=_exception_code(response))
        return Answer(table, address, value=_values(response, table, 1, self._where(unit))[0])

    async def read(self, unit: int, *, table: Table, address: int, count: int) -> UnitRead:
        """Read `count` entries from `address`; a refused block is read again one by one."""
        response = await self._request(unit, table, address, count)
        if not response.isError():
            values = _values(response, table, count, self._where(unit))
            cells = tuple(Cell(address + i, value) for i, value in enumerate(values))
            return UnitRead(unit, table, address, cells)
        singles = [await self._read_one(unit, table, address + i) for i in range(count)]
        return UnitRead(unit, table, address, tuple(singles))

    async def _read_one(self, unit: int, table: Table, address: int) -> Cell:
        response = await self._request(unit, table, address, 1)
        if response.isError():
            return Cell(address, None, _exception_code(response))
        return Cell(address, _values(response, table, 1, self._where(unit))[0])

    async def _request(self, unit: int, table: Table, address: int, count: int) -> ModbusPDU:
        """One read; every pymodbus outcome is mapped to a response or a `DriverError` here."""
        self._lifecycle.require_open()
        where = self._where(unit)
        if not self._client.connected:  # a TCP device may drop us after an unknown unit
            await self._connect()
        try:
            return await _READS[table](self._client)(address, count=count, device_id=unit)
        except ConnectionException as exc:
            raise DeviceUnreachable(f"{where}: not connected") from exc
        except ModbusIOException as exc:
            if not self._client.connected:
                raise DeviceUnreachable(f"{where}: connection lost") from exc
            raise DeviceTimeout(f"{where}: no answer within {self._timeout:g}s") from exc
        except ModbusException as exc:
            raise DriverError(f"{where}: request failed: {exc}") from exc
        except OSError as exc:
            raise DeviceUnreachable(f"{where}: {exc}") from exc

    async def _connect(self) -> None:
        try:
            connected = await self._client.connect()
        except (ModbusException, OSError) as exc:
            raise DeviceUnreachable(f"{self._url}: cannot connect: {exc}") from exc
        if not connected:
            raise DeviceUnreachable(
                f"{self._url}: cannot connect (refused, unreachable, busy or no answer "
                f"within {self._timeout:g}s)"
            )

    def _close(self) -> None:
        self._lifecycle.close()
        self._client.close()

    def _where(self, unit: int) -> str:
        return f"{self._url} unit {unit}"


async def read_range(
    url: str, unit: int, *, request_timeout: float, table: Table, address: int, count: int
) -> UnitRead:
    """`count` registers (or bits) of `table` from `address` at `unit`."""
    check_range(table=table, address=address, count=count)
    async with ModbusScanner(url, timeout=request_timeout) as scanner:
        return await scanner.read(unit, table=table, address=address, count=count)


async def scan(
    url: str,
    units: Iterable[int],
    *,
    request_timeout: float,
    table: Table,
    address: int,
    count: int,
) -> ScanResult:
    """Probe `units`, then look closer at each unit that answered (one connection; the rules
    are in the module docstring)."""
    check_range(table=table, address=address, count=count)
    units = _check_units(url, units)
    reports: list[UnitReport] = []
    timed_out: list[int] = []
    absent: list[int] = []
    async with ModbusScanner(url, timeout=request_timeout) as scanner:
        for unit in units:
            probe = await scanner.probe(unit, table=table, address=address)
            if probe is None:
                timed_out.append(unit)
            elif probe.exception_code in _GATEWAY_ABSENT:
                absent.append(unit)
            else:
                reports.append(await _examine(scanner, unit, probe, count=count))
    return ScanResult(tuple(reports), tuple(timed_out), tuple(absent))


async def _examine(scanner: ModbusScanner, unit: int, probe: Answer, *, count: int) -> UnitReport:
    """The block read (not for a unit that answered 4), then the other tables while no data."""
    read = None
    if probe.exception_code != SERVER_DEVICE_FAILURE:
        with suppress(DeviceTimeout):  # it answered the probe: listed, without a dump
            read = await scanner.read(unit, table=probe.table, address=probe.address, count=count)
    report = UnitReport(unit, (probe,), read)
    for table in TABLES:
        if report.kind == "data":
            break
        if table == probe.table:
            continue
        answer = await scanner.probe(unit, table=table, address=probe.address)
        if answer is not None and answer.exception_code not in _GATEWAY_ABSENT:
            report = UnitReport(unit, (*report.answers, answer), read)
    return report


def check_range(*, table: Table, address: int, count: int) -> None:
    """The read fits one request and the address space; `ConfigError` naming the option if not."""
    if table not in TABLES:
        raise ConfigError(f"--table {table!r}: expected one of {', '.join(TABLES)}")
    if not 0 <= address <= 0xFFFF:
        raise ConfigError(f"--address {address}: addresses go from 0 to 65535")
    if not 1 <= count <= MAX_COUNT[table]:
        raise ConfigError(f"--count {count}: a {table} read takes 1 to {MAX_COUNT[table]}")
    if address + count > 0x10000:
        raise ConfigError(f"--count {count}: from --address {address} it passes 65535")


def _check_units(url: str, units: Iterable[int]) -> list[int]:
    checked = list(units)
    if 0 in checked and check_url(url).startswith("rtu:"):
        raise ConfigError("--units: unit 0 is the RTU broadcast address, use 1..247")
    return checked


def _exception_code(response: ModbusPDU) -> int:
    return int(getattr(response, "exception_code", 0))


def _values(response: ModbusPDU, table: Table, count: int, where: str) -> list[int]:
    if table in ("coil", "discrete"):
        bits = list(response.bits)
        if len(bits) < count:  # bits come padded to whole bytes
            raise FrameError(f"{where}: asked for {count} bit(s), got {len(bits)}")
        return [int(bit) for bit in bits[:count]]
    registers = [int(word) for word in response.registers]
    if len(registers) != count:
        raise FrameError(f"{where}: asked for {count} register(s), got {len(registers)}")
    return registers


def _build_client(url: str, *, timeout: float) -> ModbusBaseClient:
    client: ModbusBaseClient
    if url.startswith("rtu:"):
        line = parse_serial_url(url)
        client = AsyncModbusSerialClient(
            line.port,
            baudrate=line.baudrate,
            bytesize=line.bytesize,
            parity=line.parity,
            stopbits=line.stopbits,
            name="scan",
            timeout=timeout,
            retries=0,
            reconnect_delay=0,  # a scan reconnects itself, once, when it must
        )
    else:
        parts = urlsplit(url)
        client = AsyncModbusTcpClient(
            parts.hostname or "",
            port=parts.port or 502,
            name="scan",
            timeout=timeout,
            retries=0,
            reconnect_delay=0,
        )
    client.set_max_no_responses(_NO_DISCONNECT)
    return client


_READS: dict[Table, Callable[[ModbusBaseClient], Callable[..., Awaitable[ModbusPDU]]]] = {
    "coil": lambda client: client.read_coils,
    "discrete": lambda client: client.read_discrete_inputs,
    "holding": lambda client: client.read_holding_registers,
    "input": lambda client: client.read_input_registers,
}
