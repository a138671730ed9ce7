"""ModbusPanel: a simulated legacy panel that serves usage counters over real Modbus TCP.

The panel is a pymodbus 3.16 `ModbusTcpServer` built from the `SimDevice`/`SimData` API, with one
device (`unit`) and separate holding and input tables (the 4-tuple form of `SimDevice.simdata`).
Each `SimCounter` is a `SimData` block of `DataType.REGISTERS`; every other address is invalid,
so a read there gets exception code 2 (ILLEGAL DATA ADDRESS), as on a real panel. The coil and
discrete-input tables are required by the 4-tuple form and hold 16 unused bits at address 0.

Updating values at runtime: `SimDevice`/`SimData` only describe the initial registers, so the
panel writes through the running server with `ModbusBaseServer.async_setValues(device_id,
function_code, address, registers)` and reads back with `async_getValues`. Both go through the
same datastore (`SimCore`/`SimRuntime`) that answers the requests, so the registers pymodbus
holds are the single source of truth: what `value()` returns is what a client reads over TCP.
Input registers are written with function code 4: there is no Modbus write for them, but the
simulator's datastore maps the code to the input table for both directions.

Counters are unsigned and wrap naturally: advancing past the maximum of a uint16/uint32 continues
from 0. `total_advance[name]` is the real usage: the sum of every `advance`, across wraps and
resets. A `set` (or the preset of a `Wrap` step) and a counter's `initial` value are not usage.

Scenarios are scripts of steps played one tick at a time (`run_scenario`). The default scenario
has no presets, so a poller that reads at least once per tick and handles wraps and resets
computes exactly `total_advance` (its first read being the baseline).
"""

import asyncio
import math
import os
import tty
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType, TracebackType
from typing import Literal, Self, TypeVar

from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge.codecs.registers import (
    RegisterType,
    decode_registers,
    encode_value,
    max_value,
    register_count,
)

Table = Literal["holding", "input"]
BitOrRegisterTable = Literal["coil", "discrete", "holding", "input"]
CounterType = Literal["uint16", "uint32", "uint64"]
WordOrder = Literal["big", "little"]
OnTick = Callable[[], Awaitable[object]]

# Function codes used to reach each table through the simulator datastore (read, write).
_FUNCTION_CODES: dict[str, tuple[int, int]] = {
    "coil": (0x01, 0x05),
    "discrete": (0x02, 0x02),
    "holding": (0x03, 0x10),
    "input": (0x04, 0x04),
}
_COUNTER_TYPES = ("uint16", "uint32", "uint64")


@dataclass(frozen=True, slots=True)
class SimCounter:
    """One counter of the panel and where it sits in the register map."""

    name: str
    table: Table
    address: int
    type: CounterType = "uint16"
    word_order: WordOrder = "big"
    initial: int = 0

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a counter needs a name")
        if self.table not in ("holding", "input"):
            raise ValueError(f"counter {self.name!r}: table must be 'holding' or 'input'")
        if self.type not in _COUNTER_TYPES:
            raise ValueError(f"counter {self.name!r}: type must be one of {_COUNTER_TYPES}")
        # Also checks word order and that `initial` fits the type.
        encode_value(self.initial, type=self.type, word_order=self.word_order)
        if not 0 <= self.address <= 0x10000 - self.register_count:
            raise ValueError(f"counter {self.name!r}: address {self.address} out of range")

    @property
    def register_count(self) -> int:
        """How many 16-bit registers the counter spans."""
        return register_count(self.type)

    @property
    def max_value(self) -> int:
        """The largest value before the counter wraps to 0."""
        return max_value(self.type)


@dataclass(frozen=True, slots=True)
class SimState:
    """An on/off point (armed, door open, pump running): a coil or discrete input, or a
    register holding `on_value` when on and 0 when off."""

    name: str
    table: BitOrRegisterTable = "coil"
    address: int = 0
    on_value: int = 1
    initial: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a state needs a name")
        if self.table not in _FUNCTION_CODES:
            raise ValueError(f"state {self.name!r}: unknown table {self.table!r}")
        if self.table in ("coil", "discrete") and self.on_value not in (0, 1):
            raise ValueError(f"state {self.name!r}: a bit is on at 1 or 0, not {self.on_value}")
        if not 0 <= self.on_value <= 0xFFFF:
            raise ValueError(f"state {self.name!r}: on_value {self.on_value} is not a uint16")
        if not 0 <= self.address <= 0xFFFF:
            raise ValueError(f"state {self.name!r}: address {self.address} out of range")

    @property
    def register_count(self) -> int:
        """One bit or one register."""
        return 1

    def raw(self, on: bool) -> int:
        """The bit or register value of the state."""
        if self.table in ("coil", "discrete"):
            return int(on) if self.on_value else int(not on)
        return self.on_value if on else (1 if self.on_value == 0 else 0)


@dataclass(frozen=True, slots=True)
class SimGauge:
    """A measured value (temperature, level, power) in registers of any register type."""

    name: str
    table: Table = "input"
    address: int = 0
    type: RegisterType = "float32"
    word_order: WordOrder = "big"
    byte_order: WordOrder = "big"
    initial: int | float = 0

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a gauge needs a name")
        if self.table not in ("holding", "input"):
            raise ValueError(f"gauge {self.name!r}: table must be 'holding' or 'input'")
        self.encode(self.initial)  # checks type, orders and that `initial` fits
        if not 0 <= self.address <= 0x10000 - self.register_count:
            raise ValueError(f"gauge {self.name!r}: address {self.address} out of range")

    @property
    def register_count(self) -> int:
        """How many 16-bit registers the gauge spans."""
        return register_count(self.type)

    def encode(self, value: int | float) -> list[int]:
        """The registers of `value` in this gauge's layout."""
        return encode_value(
            value, type=self.type, word_order=self.word_order, byte_order=self.byte_order
        )


SimPoint = SimCounter | SimState | SimGauge
_P = TypeVar("_P", SimCounter, SimState, SimGauge)


@dataclass(frozen=True, slots=True)
class Advance:
    """Advance `counter` by `by` on each of `ticks` ticks."""

    counter: str
    by: int = 1
    ticks: int = 1


@dataclass(frozen=True, slots=True)
class Wrap:
    """Preset `counter` to `margin` below its max (not usage), then advance by `by` per tick
    until it has wrapped past the max.

    A poller that read the counter before the preset sees the preset as a jump up it cannot tell
    from usage: use this step before the poller's first read, or re-baseline after it.
    """

    counter: str
    margin: int = 2
    by: int = 1


@dataclass(frozen=True, slots=True)
class Reset:
    """Drop `counter` to 0, like a power cycle; `None` resets every counter (the whole device)."""

    counter: str | None = None


@dataclass(frozen=True, slots=True)
class Pause:
    """Change nothing for `ticks` ticks."""

    ticks: int = 1


@dataclass(frozen=True, slots=True)
class Unplug:
    """Pull the RS-485 cable (RTU panels): the panel keeps counting, nobody can read it."""


@dataclass(frozen=True, slots=True)
class Replug:
    """Put the RS-485 cable back."""


Step = Advance | Wrap | Reset | Pause | Unplug | Replug


@dataclass(frozen=True, slots=True)
class Scenario:
    """The panel's register map and the script of steps played over it, one tick apart."""

    counters: tuple[SimCounter, ...] = ()
    steps: tuple[Step, ...] = ()
    tick: float = 0.5
    states: tuple[SimState, ...] = ()
    gauges: tuple[SimGauge, ...] = ()

    def __post_init__(self) -> None:
        if not self.counters and not self.states and not self.gauges:
            raise ValueError("a scenario needs at least one counter, state or gauge")
        if self.tick < 0:
            raise ValueError(f"tick must be >= 0 seconds, got {self.tick}")
        _check_counters((*self.counters, *self.states, *self.gauges))
        names = {counter.name for counter in self.counters}
        for step in self.steps:
            _check_step(step, names)


def default_scenario(*, tick: float = 0.5, cable_pull: bool = False) -> Scenario:
    """A panel with 16- and 32-bit counters in both tables and both word orders, a 16-bit wrap
    and a device reset (26 ticks); with `cable_pull` (RTU), a cable pull with counting meanwhile
    and a replug."""
    counters = (
        SimCounter("cycles", "holding", 0, "uint16", "big", initial=0xFFFF - 2),
        SimCounter("door_open", "input", 0, "uint16", "big"),
        SimCounter("energy_wh", "input", 10, "uint32", "big"),
        SimCounter("runtime_s", "holding", 10, "uint32", "little"),
    )
    steps: tuple[Step, ...] = (
        Advance("door_open", by=1, ticks=3),
        Advance("cycles", by=1, ticks=5),  # 65533 -> 65535 -> 0 -> 2: the 16-bit wrap
        Advance("energy_wh", by=25_000, ticks=3),  # past 65535: the high word is used
        Advance("runtime_s", by=40_000, ticks=3),  # 32-bit, little word order, high word used
        Advance("door_open", by=2, ticks=2),
        Pause(ticks=2),
        Reset(),  # power cycle: every counter drops to 0
        Advance("door_open", by=1, ticks=3),
        Advance("energy_wh", by=500, ticks=2),
        Advance("cycles", by=3, ticks=2),
    )
    if cable_pull:  # RTU only: counts made while nobody can read them must not be lost
        steps += (Unplug(), Advance("door_open", by=1, ticks=4), Replug(), Pause(ticks=2))
    return Scenario(counters=counters, steps=steps, tick=tick)


class ModbusPanel:
    """A simulated legacy panel serving counters, states and gauges over Modbus TCP, or over
    Modbus RTU on a pseudo-terminal (`rtu=True`), as one or several unit ids.

    Every unit in `units` serves the same register map with its own values; methods that touch
    a value take `unit=` (default: the first unit). `requests` counts the requests the server
    received, by function code, so tests can see how many reads a poll made.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        unit: int = 1,
        units: Iterable[int] | None = None,
        scenario: Scenario | None = None,
        rtu: bool = False,
        baudrate: int = 9600,
    ) -> None:
        self.host = host
        self.units = tuple(units) if units is not None else (unit,)
        if not self.units or len(set(self.units)) != len(self.units):
            raise ValueError(f"units must be distinct and not empty, got {self.units}")
        self.unit = self.units[0]
        self.scenario = scenario if scenario is not None else default_scenario()
        self.counters: dict[str, SimCounter] = {c.name: c for c in self.scenario.counters}
        self.states: dict[str, SimState] = {p.name: p for p in self.scenario.states}
        self.gauges: dict[str, SimGauge] = {p.name: p for p in self.scenario.gauges}
        self.rtu = rtu
        self.baudrate = baudrate
        self.requests: Counter[int] = Counter()
        self._requested_port = port
        self._port: int | None = None
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._pty: PtyNullModem | None = None
        self._entered = False
        self._total_advance = dict.fromkeys(self.counters, 0)

    @property
    def port(self) -> int:
        """The TCP port the panel listens on (the bound one when created with port 0)."""
        if self._port is None:
            raise RuntimeError("the panel is not serving TCP; use `async with ModbusPanel(...)`")
        return self._port

    @property
    def serial_path(self) -> str:
        """The pseudo-terminal a Modbus RTU client opens (`rtu=True`)."""
        if self._pty is None:
            raise RuntimeError("the panel is not serving RTU; use `ModbusPanel(rtu=True)`")
        return self._pty.client_path

    def unplug(self) -> None:
        """Pull the RS-485 cable: requests reach nobody and nothing answers (RTU only).

        The panel keeps counting meanwhile, as a real one does."""
        self._null_modem().cut = True

    def replug(self) -> None:
        """Put the cable back (RTU only)."""
        self._null_modem().cut = False

    def _null_modem(self) -> "PtyNullModem":
        if self._pty is None:
            raise RuntimeError("only an RTU panel has a cable to pull; use ModbusPanel(rtu=True)")
        return self._pty

    @property
    def total_advance(self) -> Mapping[str, int]:
        """Real usage per counter: every advance summed, across wraps and resets."""
        return MappingProxyType(self._total_advance)

    def register_map(self) -> str:
        """The points as `name=table:address/type[/little]`, comma separated."""
        points: list[SimPoint] = [
            *self.counters.values(),
            *self.states.values(),
            *self.gauges.values(),
        ]
        return ", ".join(_describe(point) for point in points)

    async def __aenter__(self) -> Self:
        """Start serving."""
        if self._entered:
            raise RuntimeError("a ModbusPanel can be started only once; create a new one")
        self._entered = True
        if self.rtu:
            await self._serve_rtu()
        else:
            await self._serve_tcp()
        return self

    async def _serve_tcp(self) -> None:
        server = ModbusTcpServer(
            self._build_devices(),
            address=(self.host, self._requested_port),
            trace_pdu=self._trace,
        )
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:  # pymodbus' way to say the listen failed
            await server.shutdown()  # type: ignore[no-untyped-call]
            raise OSError(
                f"modbus panel cannot listen on {self.host}:{self._requested_port}"
            ) from exc
        self._server = server
        self._port = int(server.transport.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    async def _serve_rtu(self) -> None:
        self._pty = PtyNullModem()
        # On a real RS-485 line nobody answers a unit that is not there. pymodbus 3.16's
        # `ignore_missing_devices` does not work with `SimDevice` (SimCore raises KeyError, not
        # NoSuchIdException, and the server answers exception 4), so unit 0 (pymodbus' "any
        # other unit") serves the map and `_drop_absent` swallows its answers on the way out.
        devices = [*self._build_devices(), *self._build_devices(units=(0,))]
        server = ModbusSerialServer(
            devices,
            port=self._pty.server_path,
            baudrate=self.baudrate,
            trace_packet=self._drop_absent,
            trace_pdu=self._trace,
        )
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:
            await server.shutdown()  # type: ignore[no-untyped-call]
            self._pty.close()
            self._pty = None
            raise OSError("modbus panel cannot open its pseudo-terminal") from exc
        self._server = server

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop serving and drop every client connection."""
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None
        if self._pty is not None:
            self._pty.close()
            self._pty = None
        self._port = None

    def _drop_absent(self, sending: bool, packet: bytes) -> bytes:
        # An RTU frame starts with the unit id.
        if sending and packet and packet[0] not in self.units:
            return b""
        return packet

    def _trace(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.requests[pdu.function_code] += 1
        return pdu

    async def set_state(self, name: str, on: bool, *, unit: int | None = None) -> None:
        """Turn a state point on or off."""
        state = self._point(self.states, name)
        await self._put(state.table, state.address, [state.raw(on)], unit)

    async def state(self, name: str, *, unit: int | None = None) -> bool:
        """Whether a state point is on, as clients read it."""
        state = self._point(self.states, name)
        (raw,) = await self._get(state.table, state.address, 1, unit)
        return int(raw) == state.raw(True)

    async def set_gauge(self, name: str, value: int | float, *, unit: int | None = None) -> None:
        """Set a gauge's measured value."""
        gauge = self._point(self.gauges, name)
        await self._put(gauge.table, gauge.address, gauge.encode(value), unit)

    async def gauge(self, name: str, *, unit: int | None = None) -> int | float:
        """A gauge's value, decoded from the registers clients see."""
        gauge = self._point(self.gauges, name)
        registers = await self._get(gauge.table, gauge.address, gauge.register_count, unit)
        return decode_registers(
            [int(r) for r in registers],
            type=gauge.type,
            word_order=gauge.word_order,
            byte_order=gauge.byte_order,
        )

    async def _put(self, table: str, address: int, values: list[int], unit: int | None) -> None:
        _, write_code = _FUNCTION_CODES[table]
        data: list[int] | list[bool] = (
            [bool(v) for v in values] if table in ("coil", "discrete") else values
        )
        await self._running().async_setValues(self._unit(unit), write_code, address, data)

    async def _get(self, table: str, address: int, count: int, unit: int | None) -> list[int]:
        read_code, _ = _FUNCTION_CODES[table]
        values = await self._running().async_getValues(self._unit(unit), read_code, address, count)
        return [int(v) for v in values]

    def _unit(self, unit: int | None) -> int:
        if unit is None:
            return self.unit
        if unit not in self.units:
            raise KeyError(f"the panel serves units {self.units}, not {unit}")
        return unit

    @staticmethod
    def _point(points: Mapping[str, _P], name: str) -> _P:
        try:
            return points[name]
        except KeyError:
            raise KeyError(f"the panel has no point {name!r}; it has {sorted(points)}") from None

    async def value(self, name: str) -> int:
        """The counter's value (first unit), read from the registers clients see."""
        counter = self._counter(name)
        registers = await self._get(counter.table, counter.address, counter.register_count, None)
        return int(decode_registers(registers, type=counter.type, word_order=counter.word_order))

    async def advance(self, name: str, n: int = 1) -> int:
        """Count `n` units of usage (wrapping past the max); returns the new value."""
        if n < 0:
            raise ValueError(f"advance by {n}: counters only go up (use reset or set)")
        counter = self._counter(name)
        new_value = (await self.value(name) + n) % (counter.max_value + 1)
        await self._write(counter, new_value)
        self._total_advance[name] += n
        return new_value

    async def reset(self, name: str) -> None:
        """Drop the counter to 0, as a power cycle does; usage so far stays in `total_advance`."""
        await self._write(self._counter(name), 0)

    async def set(self, name: str, value: int) -> None:
        """Preset the counter (a technician's preset, not usage)."""
        await self._write(self._counter(name), value)

    async def run_scenario(
        self,
        scenario: Scenario | None = None,
        *,
        tick: float | None = None,
        on_tick: OnTick | None = None,
    ) -> None:
        """Play the steps of `scenario` (default: the panel's): each tick makes its change, awaits
        `on_tick` if given (so a test can read exactly once per tick), then sleeps `tick`."""
        played = scenario if scenario is not None else self.scenario
        _check_counters_known(played, self.counters)
        interval = played.tick if tick is None else tick
        for step in played.steps:
            for change in self._changes(step):
                await change()
                if on_tick is not None:
                    await on_tick()
                await asyncio.sleep(interval)

    async def run_forever(
        self, scenario: Scenario | None = None, *, tick: float | None = None
    ) -> None:
        """Play the scenario again and again until cancelled (the demo's endless panel)."""
        played = scenario if scenario is not None else self.scenario
        if not played.steps:  # nothing to play: just serve
            await asyncio.Event().wait()
        while True:
            await self.run_scenario(played, tick=tick)

    def _changes(self, step: Step) -> list[Callable[[], Awaitable[object]]]:
        """The per-tick changes of one step, as callables so each runs when its tick comes."""
        if isinstance(step, Advance):
            return [partial(self.advance, step.counter, step.by)] * step.ticks
        if isinstance(step, Pause):
            return [_nothing] * step.ticks
        if isinstance(step, Reset):
            return [partial(self._reset_step, step.counter)]
        if isinstance(step, Unplug | Replug):
            return [partial(self._cable_step, plugged=isinstance(step, Replug))]
        counter = self._counter(step.counter)
        preset = partial(self.set, step.counter, counter.max_value - step.margin)
        ticks = math.ceil((step.margin + 1) / step.by)  # enough to pass the max
        return [preset, *[partial(self.advance, step.counter, step.by)] * ticks]

    async def _cable_step(self, *, plugged: bool) -> None:
        if plugged:
            self.replug()
        else:
            self.unplug()

    @property
    def plugged(self) -> bool:
        """Whether the RS-485 cable is in (always true for a TCP panel)."""
        return self._pty is None or not self._pty.cut

    async def _reset_step(self, name: str | None) -> None:
        for counter in [name] if name is not None else list(self.counters):
            await self.reset(counter)

    async def _write(self, counter: SimCounter, value: int) -> None:
        registers = encode_value(value, type=counter.type, word_order=counter.word_order)
        await self._put(counter.table, counter.address, registers, None)

    def _counter(self, name: str) -> SimCounter:
        try:
            return self.counters[name]
        except KeyError:
            raise KeyError(
                f"the panel has no counter {name!r}; it has {sorted(self.counters)}"
            ) from None

    def _running(self) -> ModbusTcpServer | ModbusSerialServer:
        if self._server is None:
            raise RuntimeError("the panel is not serving; use `async with ModbusPanel(...)`")
        return self._server

    def _build_devices(self, units: Iterable[int] | None = None) -> list[SimDevice]:
        tables: dict[str, list[SimData]] = {table: [] for table in _FUNCTION_CODES}
        for counter in self.counters.values():
            registers = encode_value(
                counter.initial, type=counter.type, word_order=counter.word_order
            )
            tables[counter.table].append(_block(counter.address, registers, "registers"))
        for state in self.states.values():
            kind = "bits" if state.table in ("coil", "discrete") else "registers"
            tables[state.table].append(_block(state.address, [state.raw(state.initial)], kind))
        for gauge in self.gauges.values():
            tables[gauge.table].append(
                _block(gauge.address, gauge.encode(gauge.initial), "registers")
            )
        simdata: list[list[SimData]] = []
        for table, blocks in tables.items():
            if blocks:
                simdata.append(sorted(blocks, key=lambda block: block.address))
            elif table in ("coil", "discrete"):  # the 4-tuple form needs a block per table
                simdata.append([SimData(address=0, values=[False] * 16, datatype=DataType.BITS)])
            else:
                simdata.append([SimData(address=0, datatype=DataType.INVALID)])
        coils, discrete, holding, inputs = simdata
        return [
            SimDevice(id=unit, simdata=(coils, discrete, holding, inputs))
            for unit in (self.units if units is None else units)
        ]


class PtyNullModem:
    """Two pseudo-terminals joined back to back, like a null-modem cable.

    A pty has one path (the slave side); its master side is only a file descriptor. A serial
    server and a serial client both need a path, so the panel's server opens `server_path`,
    clients open `client_path`, and bytes are copied between the two masters on the event loop.
    The slave ends stay open here too, so a master never reads EIO while nobody has its path open.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._fds: list[int] = []
        self.cut = False
        server_master, server_slave = os.openpty()
        client_master, client_slave = os.openpty()
        self._fds = [server_master, server_slave, client_master, client_slave]
        for fd in (server_slave, client_slave):
            tty.setraw(fd)
        for fd in (server_master, client_master):
            os.set_blocking(fd, False)
        self.server_path = os.ttyname(server_slave)
        self.client_path = os.ttyname(client_slave)
        self._loop.add_reader(server_master, self._copy, server_master, client_master)
        self._loop.add_reader(client_master, self._copy, client_master, server_master)

    def _copy(self, source: int, target: int) -> None:
        try:
            data = os.read(source, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO: the other side is gone
            return
        if data and not self.cut:  # a pulled cable: the bus is silent both ways
            os.write(target, data)

    def close(self) -> None:
        """Stop copying and close every descriptor."""
        if not self._fds:
            return
        server_master, _, client_master, _ = self._fds
        self._loop.remove_reader(server_master)
        self._loop.remove_reader(client_master)
        for fd in self._fds:
            os.close(fd)
        self._fds = []


def _block(address: int, values: list[int], kind: str) -> SimData:
    if kind == "bits":
        return SimData(address=address, values=[bool(v) for v in values], datatype=DataType.BITS)
    return SimData(address=address, values=values, datatype=DataType.REGISTERS)


async def _nothing() -> None:
    return None


def _describe(point: SimPoint) -> str:
    if isinstance(point, SimState):
        return f"{point.name}={point.table}:{point.address}/state"
    order = "/little" if point.register_count > 1 and point.word_order == "little" else ""
    if isinstance(point, SimGauge) and point.byte_order == "little":
        order += "/swapped"
    return f"{point.name}={point.table}:{point.address}/{point.type}{order}"


def _check_counters(counters: Iterable[SimPoint]) -> None:
    seen: dict[str, SimPoint] = {}
    used: dict[tuple[str, int], str] = {}
    for counter in counters:
        if counter.name in seen:
            raise ValueError(f"point name {counter.name!r} is used twice")
        seen[counter.name] = counter
        for address in range(counter.address, counter.address + counter.register_count):
            other = used.setdefault((counter.table, address), counter.name)
            if other != counter.name:
                raise ValueError(
                    f"points {other!r} and {counter.name!r} overlap at {counter.table} {address}"
                )


def _check_step(step: Step, names: set[str]) -> None:
    counter = getattr(step, "counter", None)
    if counter is not None and counter not in names:
        raise ValueError(f"step {step!r} names unknown counter {counter!r}")
    if isinstance(step, Advance | Pause) and step.ticks < 1:
        raise ValueError(f"step {step!r}: ticks must be >= 1")
    if isinstance(step, Advance | Wrap) and step.by < 1:
        raise ValueError(f"step {step!r}: by must be >= 1")
    if isinstance(step, Wrap) and step.margin < 0:
        raise ValueError(f"step {step!r}: margin must be >= 0")


def _check_counters_known(scenario: Scenario, counters: Mapping[str, SimCounter]) -> None:
    for counter in scenario.counters:
        mine = counters.get(counter.name)
        if mine is None or _layout(mine) != _layout(counter):
            raise ValueError(f"scenario counter {counter!r} is not on this panel")


def _layout(counter: SimCounter) -> tuple[str, int, str, str]:
    return (counter.table, counter.address, counter.type, counter.word_order)
