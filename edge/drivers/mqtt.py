"""MQTT devices over one broker connection (aiomqtt), QoS 1, acknowledged after commit."""

import asyncio
from collections.abc import Callable

from edge.config_mqtt import MqttConfig, MqttDeviceConfig
from edge.delivery import Item
from edge.health import DeviceHealth
from shared.events import ClockState


async def run_mqtt(
    config: MqttConfig,
    devices: list[MqttDeviceConfig],
    *,
    sink: "asyncio.Queue[Item | None]",
    health: dict[str, DeviceHealth],
    clock: Callable[[], ClockState],
) -> None:
    """Subscribe to every device's topics and deliver their messages until cancelled."""
    raise NotImplementedError
