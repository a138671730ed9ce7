"""The installer's discovery scan: which Modbus unit ids answer on a line, and what they hold.

`probe_units` sends one read to each unit id and keeps those that answer. A normal response and a
Modbus exception response both mean a device is there (it parsed the request); no answer within
the timeout means nothing is. The exception is the gateway pair 0x0A/0x0B (Modbus Application
Protocol v1.1b3, section 7: https://modbus.org/docs/Modbus_Application_Protocol_V1_1b3.pdf): a
TCP-to-RTU gateway sends them for a unit that is not behind it, so they count as "nothing there".

`read_range` then reads a block of registers (or bits) from one unit; a block the device refuses
with an exception (typically a hole in its map) is read again address by address, so the
installer sees which addresses exist. `scan` does both on one connection.

This module is a boundary like `edge.drivers.modbus`: pymodbus clients are used directly, with
`retries=0` and the given timeout, and every pymodbus error becomes a `DriverError` here.
"""

from collections.abc import Awaitable, Callable, Iterable
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
_GATEWAY_ABSENT = frozenset({0x0A, 0x0B})
# A scan expects many silent units: never let pymodbus drop the connection over them.
_NO_DISCONNECT = 1_000_000


def exception_name(code: int) -> str:
    """The spec's name of a Modbus exception code."""
    return EXCEPTION_NAMES.get(code, "UNKNOWN EXCEPTION")


@dataclass(frozen=True, slots=True)
class UnitAnswer:
    """A unit that answered the probe: with `value`, or with Modbus exception `exception_code`."""

    unit: int
    value: int | None = None
    exception_code: int | None = None

    def describe(self, table: Table, address: int) -> str:
        """E.g. "unit 3: answered, holding 0 = 17" or "unit 2: answered exception 2 (...)"."""
        if self.exception_code is not None:
            code = self.exception_code
            return f"unit {self.unit}: answered exception {code} ({exception_name(code)})"
        return f"unit {self.unit}: answered, {table} {address} = {self.value}"


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


@dataclass(frozen=True, slots=True)
class ScanResult:
    """The units that answered the probe and the block read from each of them."""

    answers: tuple[UnitAnswer, ...]
    reads: tuple[UnitRead, ...]


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

    async def probe(self, unit: int, *, table: Table, address: int) -> UnitAnswer | None:
        """Read one entry of `table` at `address` from `unit`; `None` when nothing answers."""
        try:
            response = await self._request(unit, table, address, 1)
        except DeviceTimeout:
            return None
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            return None if code in _GATEWAY_ABSENT else UnitAnswer(unit, exception_code=code)
        return UnitAnswer(unit, value=_values(response, table, 1, self._where(unit))[0])

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
            return Cell(address, None, int(getattr(response, "exception_code", 0)))
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


async def probe_units(
    url: str, units: Iterable[int], *, request_timeout: float, table: Table, address: int
) -> list[UnitAnswer]:
    """The units of `units` that answer one read of `table` at `address`, in order."""
    units = _check_units(url, units)
    async with ModbusScanner(url, timeout=request_timeout) as scanner:
        return await _probe_all(scanner, units, table=table, address=address)


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
    """Probe `units`, then read `count` entries from each unit that answered (one connection).

    A unit that answered the probe but not the block read gets no table (the probe line says
    it is there)."""
    check_range(table=table, address=address, count=count)
    units = _check_units(url, units)
    async with ModbusScanner(url, timeout=request_timeout) as scanner:
        answers = await _probe_all(scanner, units, table=table, address=address)
        reads = []
        for answer in answers:
            try:
                reads.append(
                    await scanner.read(answer.unit, table=table, address=address, count=count)
                )
            except DeviceTimeout:
                continue
    return ScanResult(tuple(answers), tuple(reads))


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


async def _probe_all(
    scanner: ModbusScanner, units: Iterable[int], *, table: Table, address: int
) -> list[UnitAnswer]:
    answers = []
    for unit in units:
        answer = await scanner.probe(unit, table=table, address=address)
        if answer is not None:
            answers.append(answer)
    return answers


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


def format_result(result: ScanResult, *, url: str, table: Table, address: int) -> str:
    """The scan as plain text: one line per answering unit, then each unit's table."""
    lines = [answer.describe(table, address) for answer in result.answers]
    lines.append(f"{len(result.answers)} unit(s) answered at {url}")
    for read in result.reads:
        lines.append("")
        lines.extend(format_read(read))
    return "\n".join(lines) + "\n"


def format_read(read: UnitRead) -> list[str]:
    """A unit's block as table rows: address, value (dec and hex for registers) and, for
    registers, the uint32 of this register and the next in big and little word order."""
    last = read.address + len(read.cells) - 1
    title = f"unit {read.unit}, {read.table} {read.address}..{last}:"
    if read.table in ("coil", "discrete"):
        rows = [f"{'address':>7}  {'value':>5}"]
        rows += [f"{cell.address:>7}  {_dec(cell):>5}" for cell in read.cells]
        return [title, *rows]
    rows = [f"{'address':>7}  {'dec':>5}  {'hex':>6}  {'uint32 big':>10}  {'uint32 little':>13}"]
    for cell, following in zip(read.cells, (*read.cells[1:], None), strict=True):
        big, little = _pair(cell, following)
        row = f"{cell.address:>7}  {_dec(cell):>5}  {_hex(cell):>6}  {big:>10}  {little:>13}"
        rows.append(row.rstrip())
    return [title, *rows]


def _dec(cell: Cell) -> str:
    return f"exc {cell.exception_code}" if cell.value is None else str(cell.value)


def _hex(cell: Cell) -> str:
    return "" if cell.value is None else f"0x{cell.value:04X}"


def _pair(cell: Cell, following: Cell | None) -> tuple[str, str]:
    if cell.value is None or following is None or following.value is None:
        return "", ""
    return str(cell.value << 16 | following.value), str(following.value << 16 | cell.value)
