"""The agent: one TaskGroup running a task per device, the outbox writer and the forwarder.

    device tasks --Reading--> bounded queue --> writer (normalize, group commit) --> outbox
                                                                  |
                                           forwarder <--notify----+--> collector

The queue is bounded, so a slow disk slows the pollers instead of growing memory. The writer
drains whatever is queued into one transaction (group commit). When the outbox is full the
writer drops the group without advancing the counters (they keep their own log) and pauses the
pollers until the forwarder has freed room (DESIGN guarantee 3).

Shutdown (SIGTERM/SIGINT): pollers stop first, the writer commits what is queued, the forwarder
is cancelled (its lease goes back to the outbox), the diagnostics page stops, the outbox closes.

The heartbeat (`edge.heartbeat`) is a task of its own: the gateway's signed health report at
`[cloud] heartbeat_interval`, after a batch ack when batches are going out; the forwarder's
ack only sets its event, so it never holds up a batch.

The diagnostics page (`edge.diagnostics`) is one more task: it reads `status()`, subscribes to
`tail` (the writer publishes every committed event there) and asks `poll_now()` of a device.
`[diagnostics] enabled = false` leaves it out (no socket is bound).

One bad device never stops the agent: a reading the normalizer refuses (`BadReading`, or any
other error of the normalizer) is counted in that device's health and logged, and the rest of
the group is committed as usual. Stored last values that a changed point config can no longer
have are dropped at start (a fresh baseline, logged once), so they never make a bogus delta.
"""

import asyncio
import hashlib
import logging
from collections.abc import Coroutine, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from edge.clock import GatewayClock
from edge.config import (
    It100DeviceConfig,
    LinesDeviceConfig,
    ModbusDeviceConfig,
    PointConfig,
    SiteConfig,
)
from edge.config_ble import BleLockDeviceConfig
from edge.config_mqtt import MqttDeviceConfig
from edge.delivery import Delivery, Item
from edge.diagnostics.app import Diagnostics
from edge.diagnostics.bundle import RecentLogs
from edge.diagnostics.server import DiagnosticsServer
from edge.diagnostics.tail import EventTail
from edge.drivers.modbus import ModbusDriver
from edge.errors import BadReading, OutboxFull
from edge.forwarder import Forwarder
from edge.health import DeviceHealth
from edge.heartbeat import HeartbeatSender, Sources
from edge.keys import load_or_create_key
from edge.normalize import GaugeTracker, Normalized, normalize_reading, reconcile_stored
from edge.outbox import CounterValue, Outbox
from edge.polling import Driver, DriverOpener, EventSource, PollNow, listen_device, poll_device
from edge.readings import Reading
from edge.status import STATUS_FILE, publish_forever, status_document, write_status
from shared.events import EventDraft

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000
GROUP_MAX = 5_000


async def stop_tasks(tasks: list["asyncio.Task[None]"]) -> None:
    """Cancel tasks and wait for them, cancelling again any that survived a cancel.

    On Python 3.11 `asyncio.wait_for` (used inside pymodbus) can swallow a cancellation that
    arrives just as its inner future completes; one `cancel()` is then not enough to stop a task.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
        if pending:
            log.warning(
                "tasks survived cancellation; cancelling again",
                extra={"fields": {"tasks": sorted(t.get_name() for t in pending)}},
            )


def open_stream(
    device: It100DeviceConfig | LinesDeviceConfig, health: DeviceHealth, clock: GatewayClock
) -> AbstractAsyncContextManager[EventSource]:
    """The production driver for a streaming (serial) device config."""
    # Imported here: a Modbus-only site never loads the serial stack.
    from edge.drivers.it100 import It100Driver
    from edge.drivers.lines import LinesDriver

    if isinstance(device, It100DeviceConfig):
        return It100Driver(device, health=health, clock=lambda: clock.state)
    return LinesDriver(device, health=health, clock=lambda: clock.state)


class Agent:
    """Runs one site: polls devices, commits events, forwards batches."""

    def __init__(self, config: SiteConfig, *, open_driver: DriverOpener | None = None) -> None:
        self.config = config
        self._open_driver = open_driver or self._open_modbus
        self._queue: asyncio.Queue[Item | None] = asyncio.Queue(QUEUE_SIZE)
        self._room = asyncio.Event()
        self._room.set()
        self._clock = GatewayClock()
        self._points: dict[tuple[str, str], PointConfig] = {
            (device.id, point.name): point
            for device in config.device
            if isinstance(device, ModbusDeviceConfig)
            for point in device.point
        }
        self._counters: dict[tuple[str, str], int] = {}
        self._gauges = GaugeTracker()
        self.health = {
            device.id: DeviceHealth(device.id, device.driver, device.address)
            for device in config.device
        }
        self.outbox_full = False
        self.outbox: Outbox | None = None
        self.forwarder: Forwarder | None = None
        self.heartbeat: HeartbeatSender | None = None
        self.tail = EventTail()
        """Committed events, for the diagnostics page's live tail."""
        self._poll_now = {
            device.id: PollNow()
            for device in config.device
            if isinstance(device, ModbusDeviceConfig)
        }
        self._key_fingerprint: str | None = None
        self.diagnostics: DiagnosticsServer | None = None
        self.started = asyncio.Event()
        """Set once the outbox is open and the sources are starting (for tests and embedders)."""

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then shut down cleanly."""
        gateway = self.config.gateway
        key = load_or_create_key(gateway.private_key_path)
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._key_fingerprint = hashlib.sha256(public).hexdigest()
        budget = int(gateway.outbox_budget_mb * 1024 * 1024)
        async with (
            Outbox(gateway.outbox_path, gateway_id=gateway.id, budget_bytes=budget) as outbox,
            httpx.AsyncClient(base_url=gateway.cloud_url) as client,
        ):
            self.outbox = outbox
            self._counters = self._reconcile(await outbox.counter_values())
            self.forwarder = Forwarder(
                outbox=outbox,
                client=client,
                gateway_id=gateway.id,
                key=key,
                key_path=gateway.private_key_path,  # picks up a rotated key (rotate-key)
                config=self.config.forwarder,
                on_ack=self._after_ack,
            )
            self.heartbeat = HeartbeatSender(
                client=client,
                gateway_id=gateway.id,
                key=self.forwarder.current_key,
                sources=self._heartbeat_sources,
                interval=self.config.cloud.heartbeat_interval,
                timeout=self.config.forwarder.request_timeout,
                busy=lambda: self.forwarder is not None and self.forwarder.busy,
            )
            log.info(
                "agent started",
                extra={
                    "fields": {
                        "gateway_id": gateway.id,
                        "devices": len(self.config.device),
                        "outbox": str(gateway.outbox_path),
                        **_stats_fields(await outbox.stats()),
                    }
                },
            )
            logs = RecentLogs()
            logging.getLogger("edge").addHandler(logs)
            if self.config.diagnostics.enabled:
                self.diagnostics = DiagnosticsServer(
                    Diagnostics(self, logs=logs).app, self.config.diagnostics.listen
                )
            else:
                log.info("diagnostics page off ([diagnostics] enabled = false)")
            try:
                if self.diagnostics is not None:
                    self.diagnostics.bind()
                self.started.set()
                await self._supervise(stop, outbox, self.forwarder, self.diagnostics)
            finally:
                if self.diagnostics is not None:
                    self.diagnostics.close()
                logging.getLogger("edge").removeHandler(logs)
            log.info("agent stopped", extra={"fields": _stats_fields(await outbox.stats())})

    async def _supervise(
        self,
        stop: asyncio.Event,
        outbox: Outbox,
        forwarder: Forwarder,
        diagnostics: DiagnosticsServer | None,
    ) -> None:
        async with asyncio.TaskGroup() as group:
            pollers = [
                group.create_task(self._device_loop(device), name=f"device:{device.id}")
                for device in self.config.device
                if isinstance(device, ModbusDeviceConfig | It100DeviceConfig | LinesDeviceConfig)
            ]
            pollers += [
                group.create_task(source, name=name) for name, source in self._shared_sources()
            ]
            writer = group.create_task(self._write(outbox, forwarder), name="writer")
            sender = group.create_task(forwarder.run(), name="forwarder")
            assert self.heartbeat is not None
            beats = group.create_task(self.heartbeat.run(), name="heartbeat")
            status = group.create_task(
                publish_forever(self._status_path, lambda: self.status("running")), name="status"
            )
            page = (
                None
                if diagnostics is None
                else group.create_task(diagnostics.run(), name="diagnostics")
            )
            await stop.wait()
            await stop_tasks(pollers)
            await self._queue.put(None)
            await writer
            self.tail.close()  # ends the live tails, so open pages do not hold the server up
            if diagnostics is not None and page is not None:
                diagnostics.stop()
                await page
            await stop_tasks([sender, beats, status])
        write_status(self._status_path, await self.status("stopped"))

    @property
    def _status_path(self) -> Path:
        return self.config.gateway.data_dir / STATUS_FILE

    async def status(self, state: str) -> dict[str, Any]:
        """A snapshot of the outbox, the cloud link and every device's health."""
        if self.outbox is None or self.forwarder is None:
            raise RuntimeError("the agent is not running")
        return status_document(
            gateway_id=self.config.gateway.id,
            state=state,
            outbox=await self.outbox.stats(),
            outbox_full=self.outbox_full,
            link=self.forwarder.health,
            devices=self.health,
            clock=self._clock.state.value,
            identity={
                "cloud_url": self.config.gateway.cloud_url,
                "key_fingerprint": self._key_fingerprint,
            },
            heartbeat=None if self.heartbeat is None else self.heartbeat.health,
        )

    async def _heartbeat_sources(self) -> Sources:
        """What the heartbeat reports: the status page's sources, read now."""
        if self.outbox is None or self.forwarder is None:
            raise RuntimeError("the agent is not running")
        return Sources(
            stats=await self.outbox.stats(),
            link=self.forwarder.health,
            devices=self.health,
            clock=self._clock.state,
        )

    async def poll_now(self, device_id: str) -> list[Reading]:
        """Poll a Modbus device at once and return that poll's readings (diagnostics page).

        LookupError for an unknown device, ValueError for one that is not polled (it reports
        by itself), the driver's error when the poll fails.
        """
        if device_id not in self.health:
            raise LookupError(device_id)
        trigger = self._poll_now.get(device_id)
        if trigger is None:
            driver = self.health[device_id].driver
            raise ValueError(f"{device_id} is a {driver} device: it reports by itself, no polling")
        return await trigger.request()

    def flush(self) -> None:
        """Send what is waiting now (diagnostics page): wake the forwarder."""
        if self.forwarder is not None:
            self.forwarder.notify()

    def _shared_sources(self) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        """Sources that serve many devices over one link: the MQTT broker, the BLE radio."""
        sources: list[tuple[str, Coroutine[Any, Any, None]]] = []
        devices = self.config.device
        topics = [device for device in devices if isinstance(device, MqttDeviceConfig)]
        if topics and self.config.mqtt is not None:
            from edge.drivers.mqtt import run_mqtt  # an MQTT-less site never loads paho

            sources.append(
                (
                    "mqtt",
                    run_mqtt(
                        self.config.mqtt,
                        topics,
                        sink=self._queue,
                        health=self.health,
                        clock=lambda: self._clock.state,
                    ),
                )
            )
        locks = [device for device in devices if isinstance(device, BleLockDeviceConfig)]
        if locks:
            from edge.drivers.ble_lock import run_locks  # a lock-less site never loads bleak

            sources.append(
                (
                    "ble",
                    run_locks(
                        self.config.ble,
                        locks,
                        sink=self._queue,
                        health=self.health,
                        marks=self._counters,
                    ),
                )
            )
        return sources

    def _reconcile(self, stored: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
        """The stored last values the configured points can still have (see normalize)."""
        kept, dropped = reconcile_stored(stored, self._points)
        for value in dropped:
            log.warning(
                "stored last value no longer fits the point's config: fresh baseline",
                extra={
                    "fields": {
                        "device_id": value.device_id,
                        "point": value.point,
                        "stored": value.stored,
                        "reason": value.reason,
                    }
                },
            )
        return kept

    def _open_modbus(self, config: ModbusDeviceConfig) -> AbstractAsyncContextManager[Driver]:
        return ModbusDriver(config, health=self.health[config.id])

    async def _device_loop(
        self, device: ModbusDeviceConfig | It100DeviceConfig | LinesDeviceConfig
    ) -> None:
        health = self.health[device.id]
        if isinstance(device, ModbusDeviceConfig):
            await poll_device(
                device,
                open_driver=self._open_driver,
                sink=self._queue,
                health=health,
                room=self._room,
                poll_now=self._poll_now[device.id],
            )
            return
        await listen_device(
            device,
            open_source=lambda: open_stream(device, health, self._clock),
            sink=self._queue,
            health=health,
        )

    async def _write(self, outbox: Outbox, forwarder: Forwarder) -> None:
        while True:
            group, finished = await self._take_group()
            if group:
                await self._commit(group, outbox, forwarder)
            if finished:
                return

    async def _take_group(self) -> tuple[list[Item], bool]:
        first = await self._queue.get()
        if first is None:
            return [], True
        group = [first]
        while len(group) < GROUP_MAX and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                return group, True
            group.append(item)
        return group, False

    async def _commit(self, group: list[Item], outbox: Outbox, forwarder: Forwarder) -> None:
        deliveries = [item for item in group if isinstance(item, Delivery)]
        keys = [key for delivery in deliveries for key in delivery.keys]
        held = await outbox.delivered_keys(keys) if keys else set()  # no trip for plain polls
        batch = self._normalize(group, held)
        if not batch.drafts and not batch.values and not batch.keys:
            _resolve(batch.deliveries)
            return
        try:
            seqs = await outbox.append(batch.drafts, batch.values, keys=batch.keys)
            committed = batch.drafts
        except OutboxFull as exc:
            self._pause_sources(exc)
            _fail(batch.deliveries, exc)
            if not batch.unlogged:
                return
            # Their source keeps no log: write them past the budget rather than lose them.
            seqs = await outbox.append(batch.unlogged, enforce_budget=False)
            committed = batch.unlogged
        except BaseException as exc:
            _fail(batch.deliveries, exc)
            raise
        else:
            self._counters.update({(v.device_id, v.point): v.value for v in batch.values})
            _resolve(batch.deliveries)
        if batch.drafts:
            forwarder.notify()
        self.tail.publish(_tail_event(s, d) for s, d in zip(seqs, committed, strict=True))

    def _normalize(self, group: Iterable[Item], held: set[str]) -> "_Group":
        """Drafts in arrival order with their counters, dedupe keys and deliveries.

        Drafts of a delivery whose key the outbox already holds (or an earlier delivery of this
        group carries) are skipped: they are a redelivery.
        """
        batch = _Group()
        latest: dict[tuple[str, str], CounterValue] = {}
        for item in group:
            if isinstance(item, EventDraft):
                batch.drafts.append(item)
                batch.unlogged.append(item)
                continue
            if isinstance(item, Delivery):
                fresh = 0
                for draft, dedupe_key in zip(item.drafts, item.keys, strict=True):
                    if dedupe_key not in held:
                        held.add(dedupe_key)
                        batch.drafts.append(draft)
                        batch.keys.append(dedupe_key)
                        fresh += 1
                latest.update({(mark.device_id, mark.point): mark for mark in item.marks})
                batch.deliveries.append((item, fresh))
                continue
            key = (item.device_id, item.point)
            previous = latest[key].value if key in latest else self._counters.get(key)
            result = self._normalize_one(item, previous)
            if result is None:
                continue
            if result.draft is not None:
                batch.drafts.append(result.draft)
            if result.stored is not None and result.stored != previous:
                latest[key] = CounterValue(
                    item.device_id, item.point, result.stored, item.observed_at
                )
        batch.values = list(latest.values())
        return batch

    def _normalize_one(self, reading: Reading, previous: int | None) -> Normalized | None:
        """The reading's event and stored value; None (counted, logged) when it is bad."""
        try:
            return normalize_reading(
                reading,
                self._points[(reading.device_id, reading.point)],
                previous=previous,
                clock=self._clock.state,
                gauges=self._gauges,
            )
        except Exception as exc:  # one device's reading never ends the writer (guarantee 6)
            health = self.health[reading.device_id]
            if health.record_bad_reading(exc):
                log.error(
                    "bad reading: counted and skipped; the device's other points go on",
                    exc_info=not isinstance(exc, BadReading),  # a normalizer bug: say where
                    extra={
                        "fields": {
                            "device_id": reading.device_id,
                            "point": reading.point,
                            "error": str(exc),
                            "bad_readings": health.bad_readings,
                        }
                    },
                )
            return None

    def _pause_sources(self, error: OutboxFull) -> None:
        if not self.outbox_full:
            log.error(
                "ALARM outbox full: pausing sources that keep their own log",
                extra={"fields": {"reason": str(error)}},
            )
        self.outbox_full = True
        self._room.clear()

    async def _after_ack(self) -> None:
        await self._check_room()
        if self.heartbeat is not None:
            self.heartbeat.batch_delivered()  # sets an event: never waits

    async def _check_room(self) -> None:
        if self.outbox_full and self.outbox is not None and await self.outbox.has_room():
            self.outbox_full = False
            self._room.set()
            log.warning("outbox has room again: sources resumed")


@dataclass
class _Group:
    """One group commit: what to write, and whom to tell once it is durable."""

    drafts: list[EventDraft] = field(default_factory=list)
    values: list[CounterValue] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    unlogged: list[EventDraft] = field(default_factory=list)
    deliveries: list[tuple[Delivery, int]] = field(default_factory=list)


def _resolve(deliveries: list[tuple[Delivery, int]]) -> None:
    for delivery, fresh in deliveries:
        if not delivery.committed.done():  # its source may have given up (cancelled)
            delivery.committed.set_result(fresh)


def _fail(deliveries: list[tuple[Delivery, int]], error: BaseException) -> None:
    for delivery, _ in deliveries:
        if not delivery.committed.done():
            delivery.committed.set_exception(error)


def _tail_event(seq: int, draft: EventDraft) -> dict[str, Any]:
    """What the live tail shows of a committed event."""
    return {"seq": seq, **draft.model_dump(mode="json", exclude={"attrs", "observed_at"})}


def _stats_fields(stats: object) -> dict[str, object]:
    return {
        "outbox_" + name: getattr(stats, name)
        for name in ("last_seq", "acked_seq", "backlog", "used_bytes", "synced")
    }
