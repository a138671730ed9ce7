"""Battery BLE locks (bleak): connect when the advertised counter moved, read, commit, ack."""

import asyncio
from collections.abc import Mapping

from edge.config_ble import BleConfig, BleLockDeviceConfig
from edge.delivery import Item
from edge.health import DeviceHealth


async def run_locks(
    config: BleConfig,
    locks: list[BleLockDeviceConfig],
    *,
    sink: "asyncio.Queue[Item | None]",
    health: dict[str, DeviceHealth],
    marks: Mapping[tuple[str, str], int],
) -> None:
    """Scan for the locks and drain each one's log when its counter moves, until cancelled."""
    raise NotImplementedError
