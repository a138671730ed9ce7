"""SimLock on a virtual air, driven by an in-process Bumble central (Bumble's client API only).

Every test talks to the lock over the air: advertising reports, ATT reads (long reads for
pages), ATT writes with response. Waits poll the lock's or the central's state with generous
timeouts; nothing asserts on timing.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest
from bumble import att, core
from bumble.core import UUID, AdvertisingData
from bumble.device import Advertisement, Connection, Device
from bumble.gatt_client import CharacteristicProxy
from bumble.hci import Address

from edge.codecs.ble_lock import (
    ACK_UUID,
    COMPANY_ID,
    ENTRY_SIZE,
    EVENT_LOG_UUID,
    MAX_ENTRIES_PER_READ,
    SERVICE_UUID,
    STATUS_UUID,
    LockAdvert,
    LogEntry,
    decode_advert,
    decode_log_page,
    decode_status,
    encode_ack,
    lock_name,
)
from firmware_sims.ble_air import VirtualAir
from firmware_sims.ble_lock import (
    BackInRange,
    Close,
    DropNextRead,
    LockClock,
    Open,
    OutOfRange,
    SimLock,
    door_lock_scenario,
    lock_address,
    run_locks_sim,
    waste_lock_scenario,
)

WAIT = 10.0  # seconds; generous, only a bound on a hang


class FakeWall:
    """A real-time source a test moves by hand, so a drift shows without waiting for it."""

    def __init__(self, now: float = 1_780_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Central:
    """The gateway's side, with nothing but Bumble: scan, connect, read, write."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.adverts: dict[Address, LockAdvert] = {}
        self.names: dict[Address, str] = {}
        self._seen = asyncio.Event()
        device.on(device.EVENT_ADVERTISEMENT, self._on_advertisement)

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        manufacturer = advertisement.data.get(AdvertisingData.MANUFACTURER_SPECIFIC_DATA)
        if manufacturer is None or manufacturer[0] != COMPANY_ID:
            return
        self.adverts[advertisement.address] = decode_advert(manufacturer[1])
        name = advertisement.data.get(AdvertisingData.COMPLETE_LOCAL_NAME)
        if isinstance(name, str):
            self.names[advertisement.address] = name
        self._seen.set()
        self._seen = asyncio.Event()

    async def advert_where(
        self, address: Address, predicate: Callable[[LockAdvert], bool]
    ) -> LockAdvert:
        """The first advert from `address` that satisfies `predicate` (scanning meanwhile)."""
        async with asyncio.timeout(WAIT):
            while (advert := self.adverts.get(address)) is None or not predicate(advert):
                await self._seen.wait()
        return advert

    async def connect(self, lock: SimLock) -> "LockLink":
        """Connect to the lock and find its three characteristics."""
        connection = await self.device.connect(lock.address, timeout=WAIT)
        client = connection.gatt_client
        await client.discover_services([UUID(SERVICE_UUID)])
        (service,) = client.get_services_by_uuid(UUID(SERVICE_UUID))
        await service.discover_characteristics()

        def characteristic(uuid: str) -> CharacteristicProxy[bytes]:
            return service.get_required_characteristic_by_uuid(UUID(uuid))

        return LockLink(
            connection,
            characteristic(EVENT_LOG_UUID),
            characteristic(ACK_UUID),
            characteristic(STATUS_UUID),
        )


class LockLink:
    """One connection to a lock."""

    def __init__(
        self,
        connection: Connection,
        log: CharacteristicProxy[bytes],
        ack: CharacteristicProxy[bytes],
        status: CharacteristicProxy[bytes],
    ) -> None:
        self.connection = connection
        self.log = log
        self.ack_characteristic = ack
        self.status = status
        self.closed = asyncio.Event()
        connection.on(connection.EVENT_DISCONNECTION, lambda reason: self.closed.set())

    async def read_page(self) -> list[LogEntry]:
        """Read the event log (a long read when the page passes one ATT segment)."""
        return decode_log_page(await self.log.read_value())

    async def ack(self, seq: int) -> None:
        """Write the acknowledge, with response."""
        await self.ack_characteristic.write_value(encode_ack(seq), with_response=True)

    async def wait_closed(self) -> None:
        """Wait until the link is gone."""
        async with asyncio.timeout(WAIT):
            await self.closed.wait()


@pytest.fixture
async def air() -> AsyncIterator[VirtualAir]:
    """A virtual air with no HCI port: everything on it lives in this process."""
    async with VirtualAir(port=None) as virtual_air:
        yield virtual_air


@pytest.fixture
async def central(air: VirtualAir) -> AsyncIterator[Central]:
    """A scanning central on the air."""
    scanner = Central(await air.add_central())
    await scanner.device.start_scanning(filter_duplicates=False)
    yield scanner
    with contextlib.suppress(Exception):
        await scanner.device.stop_scanning()


@contextlib.asynccontextmanager
async def running_lock(
    air: VirtualAir, lock_id: int = 7, **options: object
) -> AsyncIterator[SimLock]:
    """A SimLock on its own device on the air."""
    device = await air.add_peripheral(lock_name(lock_id), lock_address(lock_id))
    async with SimLock(device, lock_id=lock_id, **options) as lock:  # type: ignore[arg-type]
        yield lock


async def eventually(lock: SimLock, predicate: Callable[[], bool]) -> None:
    """Wait (boundedly) until `predicate` holds for the lock."""
    async with asyncio.timeout(WAIT):
        await lock.wait_until(predicate)


def log_closes(lock: SimLock, count: int) -> list[LogEntry]:
    """Log `count` waste-lock pours (closed, kg)."""
    entries = []
    for index in range(count):
        entry = lock.log(
            "closed", badge=1000 + index, amount=Decimal(500 + index).scaleb(-3), unit="kg"
        )
        assert entry is not None
        entries.append(entry)
    return entries


async def test_advert_carries_lock_id_counter_and_battery(
    air: VirtualAir, central: Central
) -> None:
    async with running_lock(air, lock_id=42, battery=64) as lock:
        first = await central.advert_where(lock.address, lambda advert: True)
        assert first == LockAdvert(lock_id=42, counter=0, battery=64)
        assert central.names[lock.address] == "TG-LOCK-42"

        log_closes(lock, 3)
        lock.set_battery(63)
        advert = await central.advert_where(lock.address, lambda a: a.battery == 63)
        assert advert == LockAdvert(lock_id=42, counter=3, battery=63)


async def test_status_reads_battery_firmware_log_bounds_and_a_drifting_clock(
    air: VirtualAir, central: Central
) -> None:
    wall = FakeWall()
    clock = LockClock(wall=wall, offset_ms=1500)
    async with running_lock(air, battery=55, firmware=(2, 7, 1), clock=clock) as lock:
        log_closes(lock, 4)
        link = await central.connect(lock)
        await link.ack(1)

        status = decode_status(await link.status.read_value())
        assert (status.battery, status.firmware, status.counter, status.acked) == (
            55,
            (2, 7, 1),
            4,
            1,
        )
        assert status.lock_clock_ms - round(wall.now * 1000) == 1500

        lock.clock.set_drift(100)  # 100 ppm fast: 100 ms per 1000 s
        wall.now += 1000
        drifted = decode_status(await link.status.read_value())
        assert drifted.lock_clock_ms - round(wall.now * 1000) == 1600

        lock.clock.step(-2000)
        stepped = decode_status(await link.status.read_value())
        assert stepped.lock_clock_ms - round(wall.now * 1000) == -400


async def test_entries_carry_the_lock_clock_not_real_time(air: VirtualAir) -> None:
    wall = FakeWall()
    async with running_lock(air, clock=LockClock(wall=wall, offset_ms=-30_000)) as lock:
        entry = lock.log("opened", badge=5)
    assert entry is not None
    assert entry.lock_time_ms == round(wall.now * 1000) - 30_000


async def test_long_log_drains_in_pages_of_22_with_read_and_ack_rounds(
    air: VirtualAir, central: Central
) -> None:
    async with running_lock(air) as lock:
        logged = log_closes(lock, 50)
        link = await central.connect(lock)
        assert link.connection.att_mtu - 1 < 2 + MAX_ENTRIES_PER_READ * ENTRY_SIZE  # long reads

        received: list[LogEntry] = []
        while page := await link.read_page():
            assert len(page) <= MAX_ENTRIES_PER_READ
            received += page
            await link.ack(page[-1].seq)

        assert [len(received[i : i + 22]) for i in range(0, 50, 22)] == [22, 22, 6]
        assert received == logged
        assert lock.pending == []
        assert lock.report.freed == logged
        assert lock.report.acks == [22, 44, 50]
        assert lock.report.log_reads == 4  # three pages and the empty read
        assert (await link.log.read_value()) == b"\x01\x00"


async def test_ack_drops_entries_up_to_it_and_a_stale_ack_changes_nothing(
    air: VirtualAir, central: Central
) -> None:
    async with running_lock(air) as lock:
        logged = log_closes(lock, 10)
        link = await central.connect(lock)

        await link.ack(6)
        assert lock.pending == logged[6:]
        assert (await link.read_page()) == logged[6:]

        await link.ack(3)  # below what was acked: accepted, idempotent
        await link.ack(6)
        assert lock.pending == logged[6:]
        assert lock.acked == 6
        assert lock.report.acks == [6, 3, 6]
        status = decode_status(await link.status.read_value())
        assert (status.counter, status.acked) == (10, 6)


async def test_ack_above_the_counter_is_refused_with_0x80(
    air: VirtualAir, central: Central
) -> None:
    async with running_lock(air) as lock:
        log_closes(lock, 3)
        link = await central.connect(lock)

        with pytest.raises(att.ATT_Error) as refused:
            await link.ack(4)
        assert refused.value.error_code == 0x80

        with pytest.raises(att.ATT_Error) as short:
            await link.ack_characteristic.write_value(b"\x01\x00", with_response=True)
        assert short.value.error_code == att.ErrorCode.INVALID_ATTRIBUTE_LENGTH

        assert len(lock.pending) == 3
        assert lock.acked == 0
        assert lock.report.refused_acks == [encode_ack(4), b"\x01\x00"]


async def test_out_of_range_stops_advertising_and_drops_the_link(
    air: VirtualAir, central: Central
) -> None:
    async with running_lock(air) as lock:
        log_closes(lock, 2)
        link = await central.connect(lock)

        lock.go_out_of_range()
        await link.wait_closed()
        assert not lock.advertising
        assert not lock.connected
        with pytest.raises(core.TimeoutError):  # nobody answers a connect while out of range
            await central.device.connect(lock.address, timeout=0.5)

        log_closes(lock, 1)  # the lock keeps logging
        assert not lock.advertising
        lock.come_back()
        advert = await central.advert_where(lock.address, lambda a: a.counter == 3)
        assert advert.counter == 3
        link = await central.connect(lock)
        assert [entry.seq for entry in await link.read_page()] == [1, 2, 3]


async def test_lock_advertises_again_after_a_disconnection(
    air: VirtualAir, central: Central
) -> None:
    async with running_lock(air) as lock:
        link = await central.connect(lock)
        assert not lock.advertising  # one link at a time: quiet while connected
        log_closes(lock, 2)  # logged while connected: advertised after the link ends
        await link.connection.disconnect()
        await link.wait_closed()
        await eventually(lock, lambda: lock.advertising)
        assert (await central.advert_where(lock.address, lambda a: a.counter == 2)).counter == 2


@pytest.mark.parametrize("after_first_segment", [False, True])
async def test_link_drop_during_a_log_read_loses_nothing(
    air: VirtualAir, central: Central, after_first_segment: bool
) -> None:
    async with running_lock(air) as lock:
        logged = log_closes(lock, 30)
        link = await central.connect(lock)
        lock.drop_next_read(after_first_segment=after_first_segment)

        read = asyncio.ensure_future(link.read_page())
        await link.wait_closed()
        with contextlib.suppress(asyncio.CancelledError, att.ATT_Error, TimeoutError):
            await read  # Bumble's client cancels the pending request when the link ends
        assert read.cancelled() or read.exception() is not None
        assert lock.report.dropped_reads == 1
        # Before: the Read Request itself is swallowed; after: it was answered, a blob was not.
        assert lock.report.log_reads == (1 if after_first_segment else 0)
        assert lock.pending == logged  # nothing acked, nothing lost

        await eventually(lock, lambda: lock.advertising)
        link = await central.connect(lock)
        assert (await link.read_page()) == logged[:22]  # the drop was one-shot


async def test_a_page_is_one_snapshot_even_if_the_lock_logs_during_the_read(
    air: VirtualAir, central: Central
) -> None:
    async with running_lock(air) as lock:
        logged = log_closes(lock, 5)  # 117 bytes: six ATT segments at the default MTU
        link = await central.connect(lock)

        read = asyncio.ensure_future(link.read_page())
        await eventually(lock, lambda: lock.report.log_reads == 1)
        late = log_closes(lock, 1)
        page = await read

        assert page == logged
        assert (await link.read_page()) == logged + late


async def test_a_full_log_refuses_new_events_and_counts_them(
    air: VirtualAir, central: Central
) -> None:
    async with running_lock(air, capacity=5) as lock:
        logged = log_closes(lock, 5)
        assert lock.log("opened", badge=9) is None
        assert lock.log("closed", badge=9) is None
        assert lock.report.refused == 2
        assert lock.counter == 5  # refused events get no seq: the seqs stay gap-free
        assert lock.pending == logged

        link = await central.connect(lock)
        await link.ack(5)
        entry = lock.log("opened", badge=9)
        assert entry is not None
        assert entry.seq == 6


async def test_scenario_steps_log_pours_and_door_visits(air: VirtualAir) -> None:
    async with running_lock(air, lock_id=1) as waste, running_lock(air, lock_id=2) as door:
        await waste.play(waste_lock_scenario(seed=3, pours=4).steps)
        await door.play(door_lock_scenario(seed=3, visits=3).steps)

    closes = [entry for entry in waste.report.logged if entry.action == "closed"]
    assert len(closes) == 4
    assert all(entry.unit == "kg" and entry.amount > 0 for entry in closes)
    assert all(entry.amount.as_tuple().exponent == -3 for entry in closes)  # grams, exact
    assert [entry.action for entry in door.report.logged] == ["opened", "closed"] * 3
    assert all(entry.unit is None for entry in door.report.logged)
    assert [entry.seq for entry in door.report.logged] == list(range(1, 7))


async def test_apply_plays_range_and_drop_steps(air: VirtualAir) -> None:
    async with running_lock(air) as lock:
        await lock.play([Open(badge=1), OutOfRange(), Close(badge=1)])
        assert not lock.in_range
        await eventually(lock, lambda: not lock.advertising)
        assert lock.counter == 2
        await lock.play([BackInRange(), DropNextRead(after_first_segment=True)])
        assert lock.in_range
        await eventually(lock, lambda: lock.advertising)


async def test_a_lock_can_be_entered_only_once(air: VirtualAir) -> None:
    async with running_lock(air) as lock:
        with pytest.raises(RuntimeError, match="only once"):
            await lock.__aenter__()


async def test_run_locks_sim_runs_waste_and_door_locks_until_cancelled(
    air: VirtualAir, central: Central
) -> None:
    ready: asyncio.Future[list[SimLock]] = asyncio.get_running_loop().create_future()
    sim = asyncio.create_task(
        run_locks_sim(
            air.add_peripheral,
            count=2,
            first_lock_id=100,
            tick=0.01,
            on_ready=lambda locks: ready.set_result(list(locks)),
        )
    )
    try:
        async with asyncio.timeout(WAIT):
            locks = await ready
        assert [lock.lock_id for lock in locks] == [100, 101]
        for lock in locks:
            await eventually(lock, lambda lock=lock: lock.counter >= 4)  # type: ignore[misc]
            advert = await central.advert_where(lock.address, lambda a: a.counter > 0)
            assert advert.lock_id == lock.lock_id
        assert any(entry.unit == "kg" for entry in locks[0].report.logged)
        assert all(entry.unit is None for entry in locks[1].report.logged)
    finally:
        sim.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sim
