"""Battery BLE locks (bleak's public API): connect when the advertised counter moved, read the
new log entries, commit them, then acknowledge, then disconnect.

One scanner listens to every lock's advertisement (manufacturer data: lock id, counter,
battery; docs/ble-lock-protocol.md). A lock is *due* when its counter is past the highest seq
this gateway committed for it, or when the last acknowledge may not have reached it (after a
restart, or a link that dropped between commit and acknowledge). At most
`[ble] max_connections` locks are connected at once; a lock that fails waits out its own
exponential backoff, so one lock out of range never holds back another (DESIGN guarantee 6).

A drain, per lock:

1. read the status: battery, firmware, the lock's clock; the clock offset is the lock clock
   minus the gateway clock at the midpoint of the read, and it corrects every entry's time;
2. read a page of the oldest unacknowledged entries; skip those at or below the committed seq
   (a crash came between commit and acknowledge last time);
3. deliver the rest with the new committed seq as a mark: the writer commits both in one
   transaction and only then returns (guarantee 1); a dedupe key per entry stores a redelivered
   entry once even if the mark were lost;
4. write the acknowledge (the lock drops those entries); repeat until the log reads empty.

A full outbox (`OutboxFull`) ends the drain *without* acknowledging: the lock keeps its log,
and the lock is retried after its backoff.

A radio that cannot listen because `[ble] backend = "bluez"` finds no BlueZ (no system D-Bus,
no org.bluez, no adapter: `edge.ble.backends.NoBluezAdapter`, the detection `scan ble` uses)
stops neither the agent nor its other devices: every lock's health fails with that reason,
which names the fix (a Bumble backend such as "bumble:usb:0"), one warning is logged, and the
scanner is tried again every `RADIO_RETRY` seconds (BlueZ may start after the agent), logged
again only when the reason changes.
"""

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from edge.ble.backends import BleakBackendChoice, NoBluezAdapter, bleak_backend, start_scanner
from edge.codecs.ble_lock import (
    ACK_UUID,
    COMPANY_ID,
    EVENT_LOG_UUID,
    STATUS_UUID,
    LockAdvert,
    LockProtocolError,
    LockStatus,
    LogEntry,
    decode_advert,
    decode_log_page,
    decode_status,
    encode_ack,
)
from edge.codecs.ble_lock_mapping import dedupe_key, lock_event
from edge.config_ble import BleConfig, BleLockDeviceConfig
from edge.delivery import Item, deliver
from edge.errors import DeviceTimeout, DeviceUnreachable, OutboxFull
from edge.health import DeviceHealth
from edge.outbox import CounterValue

log = logging.getLogger(__name__)

MARK = "lock_seq"
"""The counter point under which a lock's highest committed seq is stored in the outbox."""
CONNECT_TIMEOUT = 10.0
DRAIN_TIMEOUT = 60.0
RADIO_RETRY = 30.0
"""Seconds between attempts to start a scanner that found no BlueZ."""


@dataclass
class LockState:
    """What the gateway knows about one lock between drains."""

    config: BleLockDeviceConfig
    committed: int
    unconfirmed_ack: bool
    device: BLEDevice | None = None
    advert: LockAdvert | None = None
    busy: bool = False
    failures: int = 0
    retry_at: float = 0.0

    def due(self, now: float) -> bool:
        """Connect now? New entries (or an unconfirmed ack), not busy, not backing off."""
        if self.busy or self.advert is None or self.device is None or now < self.retry_at:
            return False
        if self.advert.counter != self.committed:
            return True  # new entries, or a counter gone backwards: the lock was reset
        return self.unconfirmed_ack and self.advert.counter > 0

    def backoff(self) -> float:
        """The wait before the next attempt after `failures` consecutive failures."""
        exponent = max(self.failures - 1, 0)
        return float(min(self.config.reconnect_initial * 2**exponent, self.config.reconnect_max))


class LockFleet:
    """Every configured lock, found by the id in its advertisement."""

    def __init__(
        self, locks: list[BleLockDeviceConfig], marks: Mapping[tuple[str, str], int]
    ) -> None:
        self.states: dict[int, LockState] = {}
        for lock in locks:
            committed = marks.get((lock.id, MARK), 0)
            self.states[lock.lock_id] = LockState(lock, committed, unconfirmed_ack=committed > 0)

    def heard(self, device: BLEDevice, data: AdvertisementData) -> LockState | None:
        """Record a lock's advertisement; the lock's state if it is one of ours."""
        payload = data.manufacturer_data.get(COMPANY_ID)
        if payload is None:
            return None
        try:
            advert = decode_advert(bytes(payload))
        except LockProtocolError:
            return None  # another vendor's test payload under the shared test company id
        state = self.states.get(advert.lock_id)
        if state is not None:
            state.advert, state.device = advert, device
        return state

    def due(self, now: float) -> list[LockState]:
        """The locks to drain now."""
        return [state for state in self.states.values() if state.due(now)]

    def next_retry(self, now: float) -> float | None:
        """Seconds until the earliest backed-off lock may be tried again, if any waits."""
        waits = [
            state.retry_at - now
            for state in self.states.values()
            if not state.busy and state.retry_at > now and state.advert is not None
        ]
        return min(waits) if waits else None


async def run_locks(
    config: BleConfig,
    locks: list[BleLockDeviceConfig],
    *,
    sink: "asyncio.Queue[Item | None]",
    health: dict[str, DeviceHealth],
    marks: Mapping[tuple[str, str], int],
) -> None:
    """Scan for the locks and drain each one's log when its counter moves, until cancelled."""
    fleet = LockFleet(locks, marks)
    for lock in locks:
        health[lock.id].state = "not_seen"
    radio = _RadioTrouble(config.backend, locks, health)
    while True:
        try:
            await _scan_and_drain(config, fleet, radio, sink=sink, health=health)
        except NoBluezAdapter as exc:
            radio.down(exc)
            await asyncio.sleep(RADIO_RETRY)


async def _scan_and_drain(
    config: BleConfig,
    fleet: LockFleet,
    radio: "_RadioTrouble",
    *,
    sink: "asyncio.Queue[Item | None]",
    health: dict[str, DeviceHealth],
) -> None:
    """Listen on the radio and drain the due locks, until cancelled; `NoBluezAdapter` when
    "bluez" has no BlueZ to listen with."""
    wake = asyncio.Event()

    def on_advert(device: BLEDevice, data: AdvertisementData) -> None:
        state = fleet.heard(device, data)
        if state is not None and state.advert is not None:
            lock_health = health[state.config.id]
            lock_health.last_values.update(
                {"battery": state.advert.battery, "counter": state.advert.counter}
            )
            if lock_health.state == "not_seen":
                lock_health.state = "seen"
            wake.set()

    slots = asyncio.Semaphore(config.max_connections)
    async with bleak_backend(config.backend) as backend:
        scanner = BleakScanner(on_advert, **backend.scanner_kwargs())
        await start_scanner(scanner, backend)
        radio.up()
        try:
            async with asyncio.TaskGroup() as drains:
                drainer = LockDrainer(backend, sink=sink, health=health)
                while True:
                    now = time.monotonic()
                    for state in fleet.due(now):
                        state.busy = True
                        drains.create_task(
                            _drain_in_slot(drainer, state, slots, wake),
                            name=f"ble:{state.config.id}",
                        )
                    wait = fleet.next_retry(now)
                    wake.clear()
                    try:
                        async with asyncio.timeout(wait):
                            await wake.wait()
                    except TimeoutError:
                        pass
        finally:
            await scanner.stop()


class _RadioTrouble:
    """Why the radio cannot listen, said once: in every lock's health, and one log line per
    new reason (not one per attempt)."""

    def __init__(
        self, backend: str, locks: list[BleLockDeviceConfig], health: dict[str, DeviceHealth]
    ) -> None:
        self._backend = backend
        self._locks = locks
        self._health = health
        self._reason: str | None = None

    def down(self, error: NoBluezAdapter) -> None:
        """The scanner did not start: every lock fails with `error` (it names the fix)."""
        for lock in self._locks:
            self._health[lock.id].record_failure(error)
        if str(error) == self._reason:
            return
        self._reason = str(error)
        log.warning(
            "BLE radio cannot listen: no lock is read",
            extra={
                "fields": {
                    "backend": self._backend,
                    "error": str(error),
                    "locks": [lock.id for lock in self._locks],
                    "retry_in_s": RADIO_RETRY,
                }
            },
        )

    def up(self) -> None:
        """The scanner listens (again): the locks it failed wait to be heard, as at start."""
        if self._reason is None:
            return
        self._reason = None
        for lock in self._locks:
            if self._health[lock.id].state == "failing":  # not one heard since it started
                self._health[lock.id].state = "not_seen"
        log.info("BLE radio listening", extra={"fields": {"backend": self._backend}})


async def _drain_in_slot(
    drainer: "LockDrainer", state: LockState, slots: asyncio.Semaphore, wake: asyncio.Event
) -> None:
    """Drain one lock once a connection slot is free, then let the scheduler look again."""
    try:
        async with slots:
            await drainer.drain(state)
    finally:
        state.busy = False
        wake.set()


class LockDrainer:
    """Connects to one lock at a time per call and moves its new entries into the outbox."""

    def __init__(
        self,
        backend: BleakBackendChoice,
        *,
        sink: "asyncio.Queue[Item | None]",
        health: dict[str, DeviceHealth],
    ) -> None:
        self._backend = backend
        self._sink = sink
        self._health = health

    async def drain(self, state: LockState) -> None:
        """Read, commit and acknowledge everything new in one lock's log; record the outcome."""
        lock_health = self._health[state.config.id]
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT):
                stored = await self._drain(state)
        except OutboxFull as exc:
            self._failed(state, lock_health, exc, what="outbox full; log left on the lock")
        except (BleakError, LockProtocolError, TimeoutError, OSError) as exc:
            error = _as_driver_error(exc)
            self._failed(state, lock_health, error, what="lock drain failed")
        else:
            state.failures, state.retry_at, state.unconfirmed_ack = 0, 0.0, False
            lock_health.state = "ok"
            lock_health.last_success = datetime.now(UTC)
            lock_health.consecutive_failures = 0
            lock_health.last_values["committed_seq"] = state.committed
            if stored:
                log.info(
                    "lock drained",
                    extra={"fields": {"device_id": state.config.id, "stored": stored}},
                )

    def _failed(
        self, state: LockState, health: DeviceHealth, error: Exception, *, what: str
    ) -> None:
        health.record_failure(error)
        # The link may have dropped between a commit and its acknowledge: confirm next time.
        state.unconfirmed_ack = state.committed > 0
        state.failures += 1
        state.retry_at = time.monotonic() + state.backoff()
        log.warning(
            what,
            extra={
                "fields": {
                    "device_id": state.config.id,
                    "lock_id": state.config.lock_id,
                    "error": f"{type(error).__name__}: {error}",
                    "retry_in_s": round(state.backoff(), 3),
                }
            },
        )

    async def _drain(self, state: LockState) -> int:
        if state.device is None:
            raise DeviceUnreachable(f"lock {state.config.lock_id} has not been heard")
        client = BleakClient(state.device, timeout=CONNECT_TIMEOUT, **self._backend.client_kwargs())
        stored = 0
        async with client:
            status, offset_ms = await _read_status(client)
            health = self._health[state.config.id]
            health.last_values.update(
                {
                    "battery": status.battery,
                    "firmware": status.firmware_version,
                    "clock_offset_ms": offset_ms,
                }
            )
            if status.counter < state.committed:
                state.committed = self._lock_was_reset(state, status)
            while True:
                page = decode_log_page(bytes(await client.read_gatt_char(EVENT_LOG_UUID)))
                if not page:
                    return stored
                stored += await self._commit(state, page, offset_ms)
                await client.write_gatt_char(ACK_UUID, encode_ack(page[-1].seq), response=True)

    async def _commit(self, state: LockState, page: list[LogEntry], offset_ms: int) -> int:
        fresh = [entry for entry in page if entry.seq > state.committed]
        if not fresh:
            return 0
        observed = datetime.now(UTC)
        lock_id, device_id = state.config.lock_id, state.config.id
        drafts = [
            lock_event(device_id, lock_id, entry, clock_offset_ms=offset_ms, observed_at=observed)
            for entry in fresh
        ]
        mark = CounterValue(device_id, MARK, fresh[-1].seq, observed)
        stored = await deliver(
            self._sink, drafts, [dedupe_key(lock_id, entry) for entry in fresh], [mark]
        )
        state.committed = fresh[-1].seq
        return stored

    def _lock_was_reset(self, state: LockState, status: LockStatus) -> int:
        """The lock's counter went backwards (new battery, factory reset): its seqs restart."""
        self._health[state.config.id].count("lock_reset")
        log.error(
            "lock counter went backwards: the lock was reset, its seqs start again",
            extra={
                "fields": {
                    "device_id": state.config.id,
                    "lock_id": state.config.lock_id,
                    "committed_seq": state.committed,
                    "lock_counter": status.counter,
                }
            },
        )
        return status.acked


async def _read_status(client: BleakClient) -> tuple[LockStatus, int]:
    """The lock's status and its clock offset (lock minus gateway) in ms, read mid-flight."""
    before = time.time_ns()
    value = bytes(await client.read_gatt_char(STATUS_UUID))
    after = time.time_ns()
    status = decode_status(value)
    midpoint_ms = (before + after) // 2 // 1_000_000
    return status, status.lock_clock_ms - midpoint_ms


def _as_driver_error(error: Exception) -> Exception:
    if isinstance(error, TimeoutError):
        return DeviceTimeout(f"lock did not answer within {DRAIN_TIMEOUT}s")
    if isinstance(error, BleakError | OSError):
        return DeviceUnreachable(str(error) or type(error).__name__)
    return error
