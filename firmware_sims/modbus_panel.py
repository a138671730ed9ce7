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
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType, TracebackType
from typing import Literal, Self

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge.codecs.registers import decode_registers, encode_value, max_value, register_count

Table = Literal["holding", "input"]
CounterType = Literal["uint16", "uint32"]
WordOrder = Literal["big", "little"]
OnTick = Callable[[], Awaitable[object]]

# Function codes used to reach each table through the simulator datastore (read, write).
_FUNCTION_CODES: dict[str, tuple[int, int]] = {"holding": (0x03, 0x10), "input": (0x04, 0x04)}


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
        if self.table not in _FUNCTION_CODES:
            raise ValueError(f"counter {self.name!r}: table must be 'holding' or 'input'")
        # Also checks type, word order and that `initial` fits the type.
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


Step = Advance | Wrap | Reset | Pause


@dataclass(frozen=True, slots=True)
class Scenario:
    """The panel's register map and the script of steps played over it, one tick apart."""

    counters: tuple[SimCounter, ...]
    steps: tuple[Step, ...] = ()
    tick: float = 0.5

    def __post_init__(self) -> None:
        if not self.counters:
            raise ValueError("a scenario needs at least one counter")
        if self.tick < 0:
            raise ValueError(f"tick must be >= 0 seconds, got {self.tick}")
        _check_counters(self.counters)
        names = {counter.name for counter in self.counters}
        for step in self.steps:
            _check_step(step, names)


def default_scenario(*, tick: float = 0.5) -> Scenario:
    """A panel with 16- and 32-bit counters in both tables and both word orders, a 16-bit wrap
    and a device reset (26 ticks)."""
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
    return Scenario(counters=counters, steps=steps, tick=tick)


class ModbusPanel:
    """A simulated legacy panel serving counters over Modbus TCP (pymodbus `ModbusTcpServer`)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        unit: int = 1,
        scenario: Scenario | None = None,
    ) -> None:
        self.host = host
        self.unit = unit
        self.scenario = scenario if scenario is not None else default_scenario()
        self.counters: dict[str, SimCounter] = {c.name: c for c in self.scenario.counters}
        self._requested_port = port
        self._port: int | None = None
        self._server: ModbusTcpServer | None = None
        self._entered = False
        self._total_advance = dict.fromkeys(self.counters, 0)

    @property
    def port(self) -> int:
        """The TCP port the panel listens on (the bound one when created with port 0)."""
        if self._port is None:
            raise RuntimeError("the panel is not serving; use `async with ModbusPanel(...)`")
        return self._port

    @property
    def total_advance(self) -> Mapping[str, int]:
        """Real usage per counter: every advance summed, across wraps and resets."""
        return MappingProxyType(self._total_advance)

    def register_map(self) -> str:
        """The counters as `name=table:address/type[/little]`, comma separated."""
        return ", ".join(_describe(counter) for counter in self.counters.values())

    async def __aenter__(self) -> Self:
        """Start serving."""
        if self._entered:
            raise RuntimeError("a ModbusPanel can be started only once; create a new one")
        self._entered = True
        server = ModbusTcpServer(self._build_device(), address=(self.host, self._requested_port))
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:  # pymodbus' way to say the listen failed
            await server.shutdown()  # type: ignore[no-untyped-call]
            raise OSError(
                f"modbus panel cannot listen on {self.host}:{self._requested_port}"
            ) from exc
        self._server = server
        self._port = int(server.transport.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        return self

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
        self._port = None

    async def value(self, name: str) -> int:
        """The counter's value, read from the registers clients see."""
        counter = self._counter(name)
        read_code, _ = _FUNCTION_CODES[counter.table]
        registers = await self._running().async_getValues(
            self.unit, read_code, counter.address, counter.register_count
        )
        return decode_registers(
            [int(r) for r in registers], type=counter.type, word_order=counter.word_order
        )

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
        counter = self._counter(step.counter)
        preset = partial(self.set, step.counter, counter.max_value - step.margin)
        ticks = math.ceil((step.margin + 1) / step.by)  # enough to pass the max
        return [preset, *[partial(self.advance, step.counter, step.by)] * ticks]

    async def _reset_step(self, name: str | None) -> None:
        for counter in [name] if name is not None else list(self.counters):
            await self.reset(counter)

    async def _write(self, counter: SimCounter, value: int) -> None:
        _, write_code = _FUNCTION_CODES[counter.table]
        registers = encode_value(value, type=counter.type, word_order=counter.word_order)
        await self._running().async_setValues(self.unit, write_code, counter.address, registers)

    def _counter(self, name: str) -> SimCounter:
        try:
            return self.counters[name]
        except KeyError:
            raise KeyError(
                f"the panel has no counter {name!r}; it has {sorted(self.counters)}"
            ) from None

    def _running(self) -> ModbusTcpServer:
        if self._server is None:
            raise RuntimeError("the panel is not serving; use `async with ModbusPanel(...)`")
        return self._server

    def _build_device(self) -> SimDevice:
        tables: dict[str, list[SimData]] = {"holding": [], "input": []}
        for counter in self.counters.values():
            registers = encode_value(
                counter.initial, type=counter.type, word_order=counter.word_order
            )
            tables[counter.table].append(
                SimData(address=counter.address, values=registers, datatype=DataType.REGISTERS)
            )
        for table, blocks in tables.items():
            if not blocks:  # the 4-tuple form needs a block per table: one invalid address
                tables[table] = [SimData(address=0, datatype=DataType.INVALID)]
        unused_bits = SimData(address=0, values=[False] * 16, datatype=DataType.BITS)
        return SimDevice(
            id=self.unit,
            simdata=([unused_bits], [unused_bits], tables["holding"], tables["input"]),
        )


async def _nothing() -> None:
    return None


def _describe(counter: SimCounter) -> str:
    order = "/little" if counter.type == "uint32" and counter.word_order == "little" else ""
    return f"{counter.name}={counter.table}:{counter.address}/{counter.type}{order}"


def _check_counters(counters: Iterable[SimCounter]) -> None:
    seen: dict[str, SimCounter] = {}
    used: dict[tuple[str, int], str] = {}
    for counter in counters:
        if counter.name in seen:
            raise ValueError(f"counter name {counter.name!r} is used twice")
        seen[counter.name] = counter
        for address in range(counter.address, counter.address + counter.register_count):
            other = used.setdefault((counter.table, address), counter.name)
            if other != counter.name:
                raise ValueError(
                    f"counters {other!r} and {counter.name!r} overlap at {counter.table} {address}"
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
