"""The per-device loops: connect, read, reconnect with backoff.

Two shapes of device: *polled* ones (Modbus) are read on a fixed cadence and give `Reading`s
that the writer normalizes; *streaming* ones (IT-100, printer-port lines) send what happens and
give `EventDraft`s directly. Each device runs in its own task, so one device's timeouts never
slow another (DESIGN guarantee 6). The reconnect backoff is tenacity's, computed from the
configured `reconnect_initial` and `reconnect_max` exactly, and it restarts from
`reconnect_initial` after a device has answered again.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from edge.config import ModbusDeviceConfig
from edge.delivery import Item
from edge.errors import DriverError
from edge.health import DeviceHealth
from edge.readings import Reading
from shared.events import EventDraft

log = logging.getLogger(__name__)


class Driver(Protocol):
    """What the poll loop needs from a connected, polled driver."""

    async def poll(self) -> list[Reading]:
        """Read every configured point once."""
        ...


class EventSource(Protocol):
    """What the listen loop needs from a connected, streaming driver."""

    def events(self) -> AsyncIterator[EventDraft]:
        """Yield events as the device reports them, until the link fails."""
        ...


class Reconnecting(Protocol):
    """Any device config: an id and a reconnect policy."""

    @property
    def id(self) -> str: ...
    @property
    def reconnect_initial(self) -> float: ...
    @property
    def reconnect_max(self) -> float: ...


DriverOpener = Callable[[ModbusDeviceConfig], AbstractAsyncContextManager[Driver]]


class PollNow:
    """A device's "poll now" signal: the diagnostics page asks, the poll loop answers.

    The loop normally sleeps until its next scheduled poll; a request wakes it at once and gets
    that poll's readings (or its driver error). The readings also go to the writer as usual, so
    an early poll is an ordinary poll, and the regular cadence is kept.
    """

    def __init__(self) -> None:
        self._waiting: list[asyncio.Future[list[Reading]]] = []
        self._wake = asyncio.Event()

    async def request(self) -> list[Reading]:
        """Poll as soon as the loop is connected and has room; the readings of that poll."""
        future: asyncio.Future[list[Reading]] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        self._wake.set()
        try:
            return await future
        finally:
            if future in self._waiting:
                self._waiting.remove(future)

    async def sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when woken early by a request."""
        if not self._waiting:
            self._wake.clear()
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
        try:
            async with asyncio.timeout(max(seconds, 0.0)):
                await self._wake.wait()
        except TimeoutError:
            return False
        return True

    def take(self) -> list["asyncio.Future[list[Reading]]"]:
        """The requests the next poll answers."""
        waiting, self._waiting = self._waiting, []
        self._wake.clear()
        return waiting


def _answer(
    waiting: list["asyncio.Future[list[Reading]]"],
    readings: list[Reading] | None = None,
    error: BaseException | None = None,
) -> None:
    for future in waiting:
        if future.done():  # the page gave up waiting
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(readings or [])


def reconnect_wait(config: Reconnecting, health: DeviceHealth) -> Callable[[RetryCallState], float]:
    """Exponential backoff from the device's consecutive failures, as configured."""

    def wait(_state: RetryCallState) -> float:
        exponent = max(health.consecutive_failures - 1, 0)
        return float(min(config.reconnect_initial * 2**exponent, config.reconnect_max))

    return wait


async def reconnecting(
    config: Reconnecting, health: DeviceHealth, session: Callable[[], Awaitable[None]]
) -> None:
    """Run `session` (connect and read until the link fails) again and again, with backoff."""
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(DriverError),
        wait=reconnect_wait(config, health),
        before_sleep=lambda state: log.warning(
            "device failed; reconnecting",
            extra={
                "fields": {
                    "device_id": config.id,
                    "error": health.last_error,
                    "consecutive_failures": health.consecutive_failures,
                    "retry_in_s": state.upcoming_sleep,
                }
            },
        ),
    )
    async for attempt in retrying:
        with attempt:
            try:
                await session()
            except DriverError as exc:
                health.record_failure(exc)
                raise


async def poll_device(
    config: ModbusDeviceConfig,
    *,
    open_driver: DriverOpener,
    sink: "asyncio.Queue[Item | None]",
    health: DeviceHealth,
    room: asyncio.Event,
    poll_now: PollNow | None = None,
) -> None:
    """Poll one device forever (until cancelled), reconnecting after driver errors."""
    trigger = poll_now or PollNow()

    async def session() -> None:
        async with open_driver(config) as driver:
            await _poll_connected(
                driver, config, sink=sink, health=health, room=room, poll_now=trigger
            )

    await reconnecting(config, health, session)


async def _poll_connected(
    driver: Driver,
    config: ModbusDeviceConfig,
    *,
    sink: "asyncio.Queue[Item | None]",
    health: DeviceHealth,
    room: asyncio.Event,
    poll_now: PollNow,
) -> None:
    loop = asyncio.get_running_loop()
    next_poll = loop.time()
    early = False
    while True:
        if not room.is_set():
            # Outbox full: the counter keeps its own log, so waiting loses nothing.
            health.state = "paused: outbox full"
            await room.wait()
        waiting = poll_now.take()
        try:
            readings = await driver.poll()
        except BaseException as exc:
            _answer(waiting, error=exc if isinstance(exc, Exception) else DriverError("stopped"))
            raise
        health.record_success(readings)
        for reading in readings:
            await sink.put(reading)
        _answer(waiting, readings)
        if not early:  # an early poll keeps the schedule
            next_poll = max(next_poll + config.poll_interval, loop.time())
        early = await poll_now.sleep(next_poll - loop.time())


async def listen_device(
    config: Reconnecting,
    *,
    open_source: Callable[[], AbstractAsyncContextManager[EventSource]],
    sink: "asyncio.Queue[Item | None]",
    health: DeviceHealth,
) -> None:
    """Take a streaming device's events forever (until cancelled), reconnecting after errors.

    A streaming panel keeps no log we could come back to, so it is never paused: the writer
    stores its events even past the outbox budget (see `Outbox.append`).
    """

    async def session() -> None:
        async with open_source() as source:
            health.record_success([])
            async for draft in source.events():
                health.record_success([])
                await sink.put(draft)

    await reconnecting(config, health, session)
