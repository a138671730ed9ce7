"""The per-device poll loop: connect, poll on a fixed cadence, reconnect with backoff.

Each device runs in its own task, so one device's timeouts never slow another (DESIGN
guarantee 6). The reconnect backoff is tenacity's, computed from the configured
`reconnect_initial` and `reconnect_max` exactly, and it restarts from `reconnect_initial` after
a device has answered again.
"""

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from edge.config import DeviceConfig
from edge.errors import DriverError
from edge.health import DeviceHealth
from edge.readings import Reading

log = logging.getLogger(__name__)


class Driver(Protocol):
    """What the poll loop needs from a connected driver."""

    async def poll(self) -> list[Reading]:
        """Read every configured point once."""
        ...


DriverOpener = Callable[[DeviceConfig], AbstractAsyncContextManager[Driver]]


def reconnect_wait(config: DeviceConfig, health: DeviceHealth) -> Callable[[RetryCallState], float]:
    """Exponential backoff from the device's consecutive failures, as configured."""

    def wait(_state: RetryCallState) -> float:
        exponent = max(health.consecutive_failures - 1, 0)
        return float(min(config.reconnect_initial * 2**exponent, config.reconnect_max))

    return wait


async def poll_device(
    config: DeviceConfig,
    *,
    open_driver: DriverOpener,
    sink: "asyncio.Queue[Reading | None]",
    health: DeviceHealth,
    room: asyncio.Event,
) -> None:
    """Poll one device forever (until cancelled), reconnecting after driver errors."""
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
                async with open_driver(config) as driver:
                    await _poll_connected(driver, config, sink=sink, health=health, room=room)
            except DriverError as exc:
                health.record_failure(exc)
                raise


async def _poll_connected(
    driver: Driver,
    config: DeviceConfig,
    *,
    sink: "asyncio.Queue[Reading | None]",
    health: DeviceHealth,
    room: asyncio.Event,
) -> None:
    loop = asyncio.get_running_loop()
    next_poll = loop.time()
    while True:
        if not room.is_set():
            # Outbox full: the counter keeps its own log, so waiting loses nothing.
            health.state = "paused: outbox full"
            await room.wait()
        readings = await driver.poll()
        health.record_success(readings)
        for reading in readings:
            await sink.put(reading)
        next_poll = max(next_poll + config.poll_interval, loop.time())
        await asyncio.sleep(next_poll - loop.time())
