"""The agent with `[ble] backend = "bluez"` on a machine without BlueZ: the locks' health says why
and names the fix, one warning is logged, and the agent and its other devices run on.

The condition is real, not mocked: this machine has no system D-Bus, and the bus address points
at a socket that does not exist so that a machine with BlueZ sees the same. The other device
is a real pymodbus panel on TCP; the agent is the real one, in this process.
"""

import logging
from pathlib import Path

import orjson
import pytest

from edge.drivers import ble_lock
from firmware_sims.modbus_panel import ModbusPanel
from firmware_sims.site import SimulatedLocks, SimulatedPanel, render_site_config
from tests.support.agent import running_agent
from tests.support.waiting import eventually

REASON = (
    "no BlueZ adapter (cannot reach the system D-Bus: No such file or directory); "
    "set [ble] backend to a Bumble controller, e.g. bumble:usb:0 or bumble:tcp-client:HOST:PORT"
)
ATTEMPTS = 3


async def test_without_bluez_the_locks_say_why_and_the_agent_reads_its_other_devices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'no-bus'}")
    # Retry the radio quickly, so that the test sees several attempts and one log line.
    monkeypatch.setattr(ble_lock, "RADIO_RETRY", 0.05)
    caplog.set_level(logging.INFO, logger="edge.drivers.ble_lock")
    async with ModbusPanel() as panel:
        counters = tuple(panel.counters.values())
        config = render_site_config(
            gateway_id="gw-no-bluez",
            cloud_url="http://127.0.0.1:9",
            data_dir=tmp_path / "edge",
            panels=[SimulatedPanel("meter", panel.port, counters)],
            locks=SimulatedLocks(backend="bluez", locks=(("lock-1", 1), ("lock-2", 2))),
        )
        config += "\n[diagnostics]\nenabled = false\n"  # 127.0.0.1:8080 may be another test's
        async with running_agent(config) as agent:
            lock = agent.health["lock-2"]
            await eventually(
                lambda: lock.consecutive_failures >= ATTEMPTS, what="several radio attempts"
            )
            meter = agent.health["meter"]
            await eventually(lambda: meter.state == "ok", what="the meter's reads")
            status_file = tmp_path / "edge" / "status.json"
            await eventually(
                lambda: _lock_errors(status_file) == {"lock-1": REASON, "lock-2": REASON},
                what="status.json to show the locks' reason",
            )
            health = {name: agent.health[name].as_dict() for name in ("lock-1", "lock-2")}
    for lock_health in health.values():
        assert lock_health["state"] == "failing"
        assert lock_health["last_error"] == f"NoBluezAdapter: {REASON}"
    said = [r for r in caplog.records if r.name == "edge.drivers.ble_lock"]
    assert [r.getMessage() for r in said] == ["BLE radio cannot listen: no lock is read"]
    assert said[0].levelno == logging.WARNING and said[0].exc_info is None
    assert said[0].fields["error"] == REASON  # type: ignore[attr-defined]


def _lock_errors(status_file: Path) -> dict[str, str | None]:
    if not status_file.exists():
        return {}
    devices = orjson.loads(status_file.read_bytes())["devices"]
    return {
        device["device_id"]: _without_kind(device["last_error"])
        for device in devices
        if device["driver"] == "ble-lock"
    }


def _without_kind(error: str | None) -> str | None:
    """ "NoBluezAdapter: no BlueZ adapter (...)" -> the message."""
    return error.partition(": ")[2] if error else error
