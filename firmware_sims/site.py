"""Site configs for simulated panels: the demo and the end-to-end tests render theirs here."""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from firmware_sims.modbus_panel import SimCounter


@dataclass(frozen=True, slots=True)
class SimulatedPanel:
    """A Modbus panel simulator as the agent should see it."""

    device_id: str
    port: int
    counters: tuple[SimCounter, ...]
    unit: int = 1
    host: str = "127.0.0.1"
    point_units: tuple[tuple[str, str], ...] = ()  # (counter, unit) for events not in "count"


@dataclass(frozen=True, slots=True)
class SimulatedIt100:
    """An IT-100 panel simulator's pty link as the agent should see it."""

    device_id: str
    link_path: Path
    poll_interval: str = "1s"
    zone_events: bool = False


@dataclass(frozen=True, slots=True)
class SimulatedLocks:
    """BLE lock simulators on a virtual air, and the radio backend that reaches it."""

    backend: str
    locks: tuple[tuple[str, int], ...]  # (device id, lock id)
    max_connections: int = 3


@dataclass(frozen=True, slots=True)
class Timing:
    """Polling and forwarding cadence (fast for tests, gentle for the demo)."""

    poll_interval: str = "100ms"
    batch_max_wait: str = "200ms"
    batch_max_events: int = 500
    retry_initial: str = "100ms"
    retry_max: str = "1s"
    device_timeout: str = "500ms"
    reconnect_initial: str = "100ms"
    reconnect_max: str = "1s"


def render_site_config(
    *,
    gateway_id: str,
    cloud_url: str,
    data_dir: Path,
    panels: Iterable[SimulatedPanel | SimulatedIt100],
    timing: Timing = Timing(),
    outbox_budget_mb: float = 64,
    locks: SimulatedLocks | None = None,
) -> str:
    """A complete, valid site config (TOML) for the given simulated panels."""
    lines = [
        "[gateway]",
        f'id = "{gateway_id}"',
        f'cloud_url = "{cloud_url}"',
        f'data_dir = "{data_dir}"',
        f"outbox_budget_mb = {outbox_budget_mb}",
        "",
        "[forwarder]",
        f"batch_max_events = {timing.batch_max_events}",
        f'batch_max_wait = "{timing.batch_max_wait}"',
        f'retry_initial = "{timing.retry_initial}"',
        f'retry_max = "{timing.retry_max}"',
        "",
    ]
    if locks is not None:
        lines += _lock_devices(locks, timing)
    for panel in panels:
        if isinstance(panel, SimulatedIt100):
            lines += _it100_device(panel, timing)
            continue
        lines += [
            "[[device]]",
            f'id = "{panel.device_id}"',
            'driver = "modbus"',
            f'url = "tcp://{panel.host}:{panel.port}"',
            f"unit = {panel.unit}",
            f'poll_interval = "{timing.poll_interval}"',
            f'timeout = "{timing.device_timeout}"',
            "retries = 0",
            f'reconnect_initial = "{timing.reconnect_initial}"',
            f'reconnect_max = "{timing.reconnect_max}"',
            "",
        ]
        for counter in panel.counters:
            lines += [
                "[[device.point]]",
                f'name = "{counter.name}"',
                f'table = "{counter.table}"',
                f"address = {counter.address}",
                f'type = "{counter.type}"',
                f'word_order = "{counter.word_order}"',
                'kind = "counter"',
                *[f'unit = "{unit}"' for name, unit in panel.point_units if name == counter.name],
                "",
            ]
    return "\n".join(lines)


def _it100_device(panel: SimulatedIt100, timing: Timing) -> list[str]:
    return [
        "[[device]]",
        f'id = "{panel.device_id}"',
        'driver = "it100"',
        f'port = "{panel.link_path}"',
        f'poll_interval = "{panel.poll_interval}"',
        f"zone_events = {'true' if panel.zone_events else 'false'}",
        f'reconnect_initial = "{timing.reconnect_initial}"',
        f'reconnect_max = "{timing.reconnect_max}"',
        "",
    ]


def _lock_devices(locks: SimulatedLocks, timing: Timing) -> list[str]:
    lines = ["[ble]", f'backend = "{locks.backend}"', f"max_connections = {locks.max_connections}"]
    for device_id, lock_id in locks.locks:
        lines += [
            "",
            "[[device]]",
            f'id = "{device_id}"',
            'driver = "ble-lock"',
            f"lock_id = {lock_id}",
            f'reconnect_initial = "{timing.reconnect_initial}"',
            f'reconnect_max = "{timing.reconnect_max}"',
        ]
    return [*lines, ""]
