"""SimLock: a battery BLE lock as a Bumble GATT peripheral, on whatever air its device is on.

The lock is handed a `bumble.device.Device` (on a virtual `LocalLink` in tests and the demo, on
a USB dongle by hand), so it does not care how the radio is made. It speaks the protocol of
docs/ble-lock-protocol.md through the pure codec `edge.codecs.ble_lock`:

- it advertises, connectable, its lock id, log counter and battery in manufacturer data, with
  its name in the scan response (and in the advertising data when it fits, because Bumble's
  virtual controller answers scans with the advertising data); it advertises again (new
  counter) whenever its log grows and after every disconnection, and not while a central is
  connected (one link at a time, as on a battery lock);
- the event-log characteristic serves the oldest unacknowledged entries, at most 22 per read;
- the acknowledge characteristic drops every entry up to the written seq (an old ack changes
  nothing, an ack above the counter is refused with ATT error 0x80);
- the status characteristic tells battery, firmware, the lock's clock and its log bounds.

Long reads: Bumble calls a characteristic's read callback again for every ATT Read Blob, without
the offset. A page must come from one snapshot (an entry logged between two segments would
otherwise tear it) and a link drop "after the first segment" must know where a read is, so each
connection gets a small tap in front of the device's GATT server (Bumble's
`Connection.gatt_server`, "by default the device's shared server") that sees every ATT request
first: a Read Request of the log takes the snapshot, Read Blob requests are served from it.

Faults a scenario can play: going out of range (advertising stops, the link drops, the lock
keeps logging; back in range it advertises again), dropping the link during the next log read
(before it is answered, or after its first segment) and a clock that drifts (ppm) or jumps.
`report` keeps what the lock logged, what it refused when full and what got acknowledged: the
truth a test compares a gateway's outbox with.
"""

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType
from typing import Self

from bumble import att, core
from bumble.core import AdvertisingData
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service
from bumble.gatt_server import Server
from bumble.hci import Address, HCI_Error, Role

from edge.codecs.ble_lock import (
    ACK_ABOVE_COUNTER_ERROR,
    ACK_UUID,
    COMPANY_ID,
    EVENT_LOG_UUID,
    MAX_ENTRIES_PER_READ,
    SERVICE_UUID,
    STATUS_UUID,
    Action,
    LockAdvert,
    LockProtocolError,
    LockStatus,
    LogEntry,
    Unit,
    decode_ack,
    encode_advert,
    encode_log_page,
    encode_status,
    lock_name,
)
from edge.lifecycle import Lifecycle

MakeDevice = Callable[[str, str], Awaitable[Device]]  # (name, address) -> a device on an air

# LE General Discoverable, BR/EDR not supported (Core Specification Supplement, Part A, 1.3).
_ADVERTISING_FLAGS = 0x06
# Legacy advertising data holds 31 bytes (Core Specification Vol 3, Part C, 11).
_MAX_ADVERTISING_DATA = 31


class LockClock:
    """The lock's quartz: real time, plus an offset, plus a drift in ppm since it last changed.

    `wall` is the real time in seconds (time.time by default; tests pass their own to see a
    drift without waiting for it).
    """

    def __init__(self, *, wall: Callable[[], float] = time.time, offset_ms: float = 0) -> None:
        self._wall = wall
        self._offset_ms = float(offset_ms)
        self._ppm = 0.0
        self._anchor = wall()

    @property
    def ppm(self) -> float:
        """How fast the lock's clock runs off real time, in parts per million."""
        return self._ppm

    def now_ms(self) -> int:
        """Now by the lock's clock, in ms since the Unix epoch."""
        wall = self._wall()
        drift_ms = (wall - self._anchor) * 1000 * self._ppm / 1_000_000
        return max(0, round(wall * 1000 + self._offset_ms + drift_ms))

    def offset_ms(self) -> float:
        """How far the lock's clock is from real time now (positive: ahead)."""
        return self.now_ms() - self._wall() * 1000

    def set_drift(self, ppm: float) -> None:
        """Run `ppm` fast (negative: slow) from now on; the drift so far stays."""
        self._offset_ms = self.offset_ms()
        self._anchor = self._wall()
        self._ppm = float(ppm)

    def step(self, delta_ms: float) -> None:
        """Jump the clock by `delta_ms` (a user setting it by hand, a battery swap)."""
        self._offset_ms += delta_ms


@dataclass
class LockReport:
    """What happened to one lock, for tests and the demo to compare with the gateway's outbox."""

    logged: list[LogEntry] = field(default_factory=list)  # every entry written, in seq order
    refused: int = 0  # events not logged because the log was full
    acked: int = 0  # the highest seq acknowledged
    freed: list[LogEntry] = field(default_factory=list)  # entries dropped by acks, in seq order
    acks: list[int] = field(default_factory=list)  # every accepted ack value, stale ones too
    refused_acks: list[bytes] = field(default_factory=list)  # ack values refused with an error
    log_reads: int = 0  # log read procedures started (ATT Read Requests of the log)
    dropped_reads: int = 0  # log reads cut by a link drop
    connections: int = 0
    disconnections: int = 0
    resets: int = 0  # factory resets
    wiped: int = 0  # unacknowledged entries a factory reset destroyed


# Scenario steps.


@dataclass(frozen=True, slots=True)
class Open:
    """Someone opens the lock (badge 0: no badge, e.g. a mechanical key)."""

    badge: int = 0


@dataclass(frozen=True, slots=True)
class Close:
    """The lock closes; a waste lock weighs what was poured in."""

    badge: int = 0
    amount: Decimal = Decimal(0)
    unit: Unit | None = None


@dataclass(frozen=True, slots=True)
class Pause:
    """Nothing happens for `ticks` ticks."""

    ticks: int = 1


@dataclass(frozen=True, slots=True)
class OutOfRange:
    """The lock leaves radio range: advertising stops and any link drops; it keeps logging."""


@dataclass(frozen=True, slots=True)
class BackInRange:
    """The lock is reachable again and advertises its current counter."""


@dataclass(frozen=True, slots=True)
class DropNextRead:
    """The link drops during the next log read: before it is answered, or after one segment."""

    after_first_segment: bool = False


@dataclass(frozen=True, slots=True)
class Drift:
    """The lock's clock runs `ppm` parts per million fast (negative: slow) from now on."""

    ppm: float


@dataclass(frozen=True, slots=True)
class StepClock:
    """The lock's clock jumps by `delta_ms`."""

    delta_ms: int


@dataclass(frozen=True, slots=True)
class Battery:
    """The battery reads `percent` from now on (advertised at once)."""

    percent: int


@dataclass(frozen=True, slots=True)
class FactoryReset:
    """The lock's memory is wiped (service reset, new board): log, counter and acks start over."""


Step = (
    Open
    | Close
    | Pause
    | OutOfRange
    | BackInRange
    | DropNextRead
    | Drift
    | StepClock
    | Battery
    | FactoryReset
)


@dataclass(frozen=True, slots=True)
class Scenario:
    """Steps played one per tick (seconds)."""

    steps: tuple[Step, ...]
    tick: float = 1.0


def waste_lock_scenario(*, seed: int = 0, pours: int = 12, tick: float = 1.0) -> Scenario:
    """A waste-bin lock: each pour is a badge opening the lid and the lid closing with the kg.

    Halfway it goes out of range for a while and its clock drifts; one log read loses its link.
    """
    rng = random.Random(seed)
    badges = [rng.randrange(10_000, 99_999) for _ in range(5)]
    steps: list[Step] = [Drift(ppm=rng.choice((-40, 25, 60)))]
    for index in range(pours):
        badge = rng.choice(badges)
        grams = rng.randrange(150, 25_000)
        steps += [Open(badge), Close(badge, Decimal(grams).scaleb(-3), "kg")]
        if index == pours // 2:
            steps += [OutOfRange(), Pause(3), BackInRange(), DropNextRead(after_first_segment=True)]
    return Scenario(steps=tuple(steps), tick=tick)


def door_lock_scenario(*, seed: int = 0, visits: int = 10, tick: float = 1.0) -> Scenario:
    """A door lock: badges open and close it, now and then a key (badge 0); nothing is weighed."""
    rng = random.Random(seed)
    badges = [rng.randrange(10_000, 99_999) for _ in range(4)] + [0]
    steps: list[Step] = [Drift(ppm=rng.choice((-15, 30)))]
    for index in range(visits):
        badge = rng.choice(badges)
        steps += [Open(badge), Pause(), Close(badge)]
        if index == visits // 3:
            steps += [DropNextRead()]
        if index == 2 * visits // 3:
            steps += [OutOfRange(), Pause(2), BackInRange()]
    return Scenario(steps=tuple(steps), tick=tick)


def default_scenario(index: int, *, seed: int = 0, tick: float = 1.0) -> Scenario:
    """The demo's locks: even ones are waste locks, odd ones door locks."""
    if index % 2 == 0:
        return waste_lock_scenario(seed=seed + index, tick=tick)
    return door_lock_scenario(seed=seed + index, tick=tick)


def _percent(value: int) -> int:
    if not 0 <= value <= 100:
        raise ValueError(f"battery must be a percentage (0..100), got {value}")
    return value


def lock_address(index: int) -> str:
    """A random static address for the index-th simulated lock (two top bits set, as required)."""
    if not 0 <= index < 2**16:
        raise ValueError(f"lock index must be in 0..65535, got {index}")
    return f"D0:7C:00:00:{index >> 8 & 0xFF:02X}:{index & 0xFF:02X}"


class SimLock:
    """A battery BLE lock serving the lock protocol on `device` (see the module docstring).

    Scenario steps and the GATT callbacks change the lock's state at once (synchronously); the
    radio (advertising, dropping links) follows on the lock's own radio task. That keeps every
    HCI command off the scenario's task: on Python 3.11 `asyncio.wait_for` can swallow a
    cancellation that arrives as its awaited future completes (gh-86296), which Bumble's
    instant virtual controller makes likely, and a scenario task that ate its cancellation
    would hang the TaskGroup it runs in. The radio loop ends on the lock's state, not only on
    a cancellation.
    """

    def __init__(
        self,
        device: Device,
        *,
        lock_id: int,
        battery: int = 87,
        firmware: tuple[int, int, int] = (1, 4, 2),
        capacity: int = 1000,
        clock: LockClock | None = None,
        scenario: Scenario | None = None,
        advertising_interval_ms: float = 100.0,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.device = device
        self.lock_id = lock_id
        self.name = lock_name(lock_id)
        self.firmware = firmware
        self.capacity = capacity
        self.clock = clock or LockClock()
        self.scenario = scenario or waste_lock_scenario(seed=lock_id)
        self.report = LockReport()
        self._battery = _percent(battery)
        self._advertising_interval_ms = advertising_interval_ms
        self._log: list[LogEntry] = []  # unacknowledged entries, oldest first
        self._counter = 0
        self._in_range = True
        self._drop: DropNextRead | None = None
        self._pages: dict[Connection, bytes] = {}
        self._connections: set[Connection] = set()
        self._to_drop: set[Connection] = set()
        self._advertised: bytes | None = None
        self._lifecycle = Lifecycle(f"lock {lock_id}")
        self._radio: asyncio.Task[None] | None = None
        self._radio_wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._powered_here = False
        self._log_characteristic: Characteristic[bytes] = Characteristic(
            EVENT_LOG_UUID,
            Characteristic.Properties.READ,
            Characteristic.READABLE,
            CharacteristicValue(read=self._read_log),
        )
        self._service = Service(
            SERVICE_UUID,
            [
                self._log_characteristic,
                Characteristic(
                    ACK_UUID,
                    Characteristic.Properties.WRITE,
                    Characteristic.WRITEABLE,
                    CharacteristicValue(write=self._write_ack),
                ),
                Characteristic(
                    STATUS_UUID,
                    Characteristic.Properties.READ,
                    Characteristic.READABLE,
                    CharacteristicValue(read=self._read_status),
                ),
            ],
        )

    # State.

    @property
    def counter(self) -> int:
        """The highest seq ever written to the log (0: none yet)."""
        return self._counter

    @property
    def acked(self) -> int:
        """The highest seq acknowledged."""
        return self.report.acked

    @property
    def pending(self) -> list[LogEntry]:
        """The unacknowledged entries, oldest first."""
        return list(self._log)

    @property
    def battery(self) -> int:
        """Battery charge in percent."""
        return self._battery

    @property
    def in_range(self) -> bool:
        """Whether a gateway can hear the lock."""
        return self._in_range

    @property
    def connected(self) -> bool:
        """Whether a central is connected."""
        return bool(self._connections)

    @property
    def advertising(self) -> bool:
        """Whether the lock's device is advertising now."""
        return bool(self.device.is_advertising)

    @property
    def address(self) -> Address:
        """The (random static) address the lock advertises from."""
        return self.device.random_address

    @property
    def advert(self) -> LockAdvert:
        """What the lock advertises now."""
        return LockAdvert(self.lock_id, self._counter, self._battery)

    @property
    def status(self) -> LockStatus:
        """What the status characteristic reads now."""
        return LockStatus(
            battery=self._battery,
            firmware=self.firmware,
            lock_clock_ms=self.clock.now_ms(),
            counter=self._counter,
            acked=self.report.acked,
        )

    # Lifecycle.

    async def __aenter__(self) -> Self:
        """Add the lock service to the device, power it on if needed and start advertising."""
        self._lifecycle.enter()
        self.device.add_service(self._service)
        self.device.on(self.device.EVENT_CONNECTION, self._on_connection)
        if not self.device.powered_on:
            await self.device.power_on()
            self._powered_here = True
        await self._sync_radio()
        self._radio = asyncio.create_task(self._run_radio(), name=f"{self.name} radio")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the radio task, stop advertising, drop links; re-raise what failed in the radio."""
        self._lifecycle.close()
        self.device.remove_listener(self.device.EVENT_CONNECTION, self._on_connection)
        radio, self._radio = self._radio, None
        if radio is not None:
            radio.cancel()
            await asyncio.wait([radio])  # raises only if this task itself is cancelled
        if self.device.powered_on:
            await self._quiet()
        if self._powered_here:
            await self.device.power_off()
        failure = None if radio is None or radio.cancelled() else radio.exception()
        if failure is not None and exc is None:
            raise failure

    # Scenario.

    async def play(self, steps: Iterable[Step], *, tick: float = 0) -> None:
        """Apply `steps`, sleeping `tick` seconds after each (times its ticks for a `Pause`)."""
        for step in steps:
            self.apply(step)
            ticks = step.ticks if isinstance(step, Pause) else 1
            await asyncio.sleep(tick * ticks)

    async def run_forever(self) -> None:
        """Play the scenario in a loop until cancelled."""
        while True:
            await self.play(self.scenario.steps, tick=self.scenario.tick)

    def apply(self, step: Step) -> None:
        """Change the lock for one step."""
        match step:
            case Open(badge=badge):
                self.log("opened", badge=badge)
            case Close(badge=badge, amount=amount, unit=unit):
                self.log("closed", badge=badge, amount=amount, unit=unit)
            case Pause():
                pass
            case OutOfRange():
                self.go_out_of_range()
            case BackInRange():
                self.come_back()
            case DropNextRead(after_first_segment=after):
                self.drop_next_read(after_first_segment=after)
            case Drift(ppm=ppm):
                self.clock.set_drift(ppm)
            case StepClock(delta_ms=delta):
                self.clock.step(delta)
            case Battery(percent=percent):
                self.set_battery(percent)
            case FactoryReset():
                self.factory_reset()

    def log(
        self,
        action: Action,
        *,
        badge: int = 0,
        amount: Decimal = Decimal(0),
        unit: Unit | None = None,
    ) -> LogEntry | None:
        """Write one entry and advertise the new counter; None: the log is full, refused."""
        if len(self._log) >= self.capacity:
            self.report.refused += 1
            self._touch()
            return None
        entry = LogEntry(
            seq=self._counter + 1,
            lock_time_ms=self.clock.now_ms(),
            action=action,
            badge=badge,
            amount=amount,
            unit=unit,
        )
        self._log.append(entry)
        self._counter = entry.seq
        self.report.logged.append(entry)
        self._wake_radio()
        return entry

    def go_out_of_range(self) -> None:
        """Leave radio range: advertising stops and any link drops (the log keeps filling)."""
        self._in_range = False
        self._wake_radio()

    def come_back(self) -> None:
        """Come back into range and advertise the current counter."""
        self._in_range = True
        self._wake_radio()

    def drop_next_read(self, *, after_first_segment: bool = False) -> None:
        """Drop the link during the next log read (once), before answering or after a segment.

        After the first segment means at its first ATT Read Blob: a page short enough for one
        segment has none, so the drop waits for the next longer page.
        """
        self._drop = DropNextRead(after_first_segment=after_first_segment)

    def set_battery(self, percent: int) -> None:
        """Change the battery level and advertise it."""
        self._battery = _percent(percent)
        self._wake_radio()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate()` holds; checked after every change of the lock or its radio."""
        while not predicate():
            await self._changed.wait()

    # GATT.

    def _read_log(self, connection: Connection) -> bytes:
        page = self._pages.get(connection)
        return page if page is not None else self._page()

    def _page(self) -> bytes:
        return encode_log_page(self._log[:MAX_ENTRIES_PER_READ])

    def _read_status(self, connection: Connection) -> bytes:
        return encode_status(self.status)

    def _write_ack(self, connection: Connection, value: bytes) -> None:
        try:
            seq = decode_ack(value)
        except LockProtocolError as exc:
            self.report.refused_acks.append(value)
            raise att.ATT_Error(att.ErrorCode.INVALID_ATTRIBUTE_LENGTH) from exc
        if seq > self._counter:
            self.report.refused_acks.append(value)
            raise att.ATT_Error(ACK_ABOVE_COUNTER_ERROR)
        self._acknowledge(seq)

    def factory_reset(self) -> None:
        """Wipe the log and start seqs again at 1 (entries not yet acknowledged are lost)."""
        self.report.wiped += len(self._log)
        self.report.resets += 1
        self._log.clear()
        self._counter = 0
        self.report.acked = 0
        self._wake_radio()

    def _acknowledge(self, seq: int) -> None:
        """Drop every entry up to `seq`; an ack at or below what was acked changes nothing."""
        self.report.acks.append(seq)
        if seq > self.report.acked:
            freed = [entry for entry in self._log if entry.seq <= seq]
            del self._log[: len(freed)]
            self.report.freed += freed
            self.report.acked = seq
        self._touch()

    def see_request(self, connection: Connection, pdu: att.ATT_PDU) -> bool:
        """See an ATT request before the GATT server: snapshot log pages, play link drops.

        Returns True when the request is swallowed (the link is being dropped instead).
        """
        handle = self._log_characteristic.handle
        is_read = isinstance(pdu, att.ATT_Read_Request) and pdu.attribute_handle == handle
        is_blob = isinstance(pdu, att.ATT_Read_Blob_Request) and pdu.attribute_handle == handle
        if not (is_read or is_blob):
            return False
        drop = self._drop
        if drop is not None and drop.after_first_segment == is_blob:
            self._drop = None
            self.report.dropped_reads += 1
            self._to_drop.add(connection)
            self._wake_radio()
            return True
        if is_read:
            self._pages[connection] = self._page()
            self.report.log_reads += 1
            self._touch()
        return False

    # Links and advertising.

    def _on_connection(self, connection: Connection) -> None:
        if connection.role != Role.PERIPHERAL:
            return
        connection.gatt_server = _RequestTap(self, self.device.gatt_server)  # type: ignore[assignment]
        self._connections.add(connection)
        self.report.connections += 1
        connection.on(
            connection.EVENT_DISCONNECTION, lambda reason: self._on_disconnection(connection)
        )
        self._wake_radio()  # a connect that raced going out of range is dropped there

    def _on_disconnection(self, connection: Connection) -> None:
        self._connections.discard(connection)
        self._to_drop.discard(connection)
        self._pages.pop(connection, None)
        self.report.disconnections += 1
        self._wake_radio()  # advertise again

    def _wake_radio(self) -> None:
        self._radio_wake.set()
        self._touch()

    async def _run_radio(self) -> None:
        """Make the radio follow the lock's state, each time it changes, while the lock is open."""
        while self._lifecycle.state == "open":
            await self._radio_wake.wait()
            self._radio_wake.clear()
            if self._lifecycle.state == "open":
                await self._sync_radio()

    async def _sync_radio(self) -> None:
        """Drop the links to drop; quiet when out of range; advertise when in range and free."""
        if not self._in_range:
            await self._quiet()
        else:
            for connection in list(self._to_drop):
                await self._disconnect(connection)
            if not self._connections:
                await self._advertise()
        self._touch()

    async def _advertise(self) -> None:
        data = self._advertising_data()
        if self.device.is_advertising and data == self._advertised:
            return
        await self.device.start_advertising(
            advertising_data=data,
            scan_response_data=self._scan_response_data(),
            advertising_interval_min=self._advertising_interval_ms,
            advertising_interval_max=self._advertising_interval_ms,
        )
        self._advertised = data

    async def _quiet(self) -> None:
        if self.device.is_advertising:
            await self.device.stop_advertising()
        for connection in list(self._connections):
            await self._disconnect(connection)

    async def _disconnect(self, connection: Connection) -> None:
        # The central sees the peer terminate the link (Bumble's virtual controller has no
        # supervision timeout to fake a radio fade); for the gateway it is the same: the link
        # is gone in the middle of whatever it was doing.
        self._to_drop.discard(connection)
        if connection in self._connections:
            with contextlib.suppress(HCI_Error, core.ConnectionError):  # the central left first
                await connection.disconnect()

    def _advertising_data(self) -> bytes:
        """Flags and manufacturer data, and the name too when it fits in the 31 bytes.

        The name belongs in the scan response, but Bumble's virtual controller answers a scan
        with the advertising data (see firmware_sims.ble_air), so short names go in both.
        """
        manufacturer = COMPANY_ID.to_bytes(2, "little") + encode_advert(self.advert)
        data = bytes(
            AdvertisingData(
                [
                    (AdvertisingData.FLAGS, bytes([_ADVERTISING_FLAGS])),
                    (AdvertisingData.MANUFACTURER_SPECIFIC_DATA, manufacturer),
                ]
            )
        )
        name = self._scan_response_data()
        return data + name if len(data) + len(name) <= _MAX_ADVERTISING_DATA else data

    def _scan_response_data(self) -> bytes:
        return bytes(
            AdvertisingData([(AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode("ascii"))])
        )

    def _touch(self) -> None:
        """Wake `wait_until` callers: the lock's state changed."""
        self._changed.set()
        self._changed = asyncio.Event()


class _RequestTap:
    """Stands in for the device's GATT server on one connection, letting the lock look first."""

    def __init__(self, lock: SimLock, server: Server) -> None:
        self._lock = lock
        self._server = server

    def on_gatt_pdu(self, connection: Connection, pdu: att.ATT_PDU) -> None:
        """Hand the request to the device's server unless the lock swallows it."""
        if not self._lock.see_request(connection, pdu):
            self._server.on_gatt_pdu(connection, pdu)


async def run_locks_sim(
    make_device: MakeDevice,
    *,
    count: int,
    first_lock_id: int = 1,
    seed: int = 0,
    tick: float = 1.0,
    capacity: int = 1000,
    on_ready: Callable[[Sequence[SimLock]], object] | None = None,
) -> None:
    """Run `count` locks (waste and door locks in turn) on one air until cancelled.

    `make_device(name, address)` puts a powered-on Bumble device on the air, e.g.
    `VirtualAir.add_peripheral`; `on_ready` gets the running locks (to print them, or a test).
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    async with contextlib.AsyncExitStack() as stack:
        locks: list[SimLock] = []
        for index in range(count):
            lock_id = first_lock_id + index
            device = await make_device(lock_name(lock_id), lock_address(index))
            lock = SimLock(
                device,
                lock_id=lock_id,
                capacity=capacity,
                scenario=default_scenario(index, seed=seed, tick=tick),
            )
            locks.append(await stack.enter_async_context(lock))
        if on_ready is not None:
            on_ready(locks)
        async with asyncio.TaskGroup() as group:
            for lock in locks:
                group.create_task(lock.run_forever(), name=f"{lock.name} scenario")
