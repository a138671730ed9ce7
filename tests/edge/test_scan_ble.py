"""`tollgate-edge scan ble`: the locks in range, from their advertisements, over a real radio path
(simulated locks on a virtual air, the Bumble backend on the air's HCI TCP port)."""

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, method

from edge.ble.backends import NoBluezAdapter
from edge.cli import main
from edge.installer.scan_ble import SeenLock, format_locks, scan_locks
from firmware_sims.ble_air import VirtualAir
from firmware_sims.ble_lock import Close, Open, Scenario, SimLock, lock_address
from firmware_sims.processes import BleLockSimProcess

BIN = Path(sys.executable).parent


async def test_scan_lists_each_lock_with_its_counter_and_battery() -> None:
    async with VirtualAir(port=0) as air, AsyncExitStack() as stack:
        for index, battery in enumerate((91, 14)):
            device = await air.add_peripheral(f"lock-{index}", lock_address(index))
            lock = SimLock(device, lock_id=500 + index, battery=battery, scenario=Scenario(()))
            await stack.enter_async_context(lock)
            await lock.play([Open(badge=1), Close(badge=1)] * (index + 1))
        locks = await scan_locks(air.backend, seconds=1.5)
    assert [(lock.lock_id, lock.counter, lock.battery, lock.name) for lock in locks] == [
        (500, 2, 91, "TG-LOCK-500"),
        (501, 4, 14, "TG-LOCK-501"),
    ]


def test_the_table_reads_well_and_says_when_nothing_was_heard() -> None:
    table = format_locks([SeenLock(7, 12, 80, "D0:7C:00:00:00:00", "TG-LOCK-7", -51)])
    header, row = table.splitlines()
    assert header.split() == ["lock_id", "counter", "battery", "rssi", "address", "name"]
    assert row.split() == ["7", "12", "80%", "-51", "D0:7C:00:00:00:00", "TG-LOCK-7"]
    assert "no locks heard" in format_locks([])


async def test_the_command_scans_a_simulator_in_another_process(tmp_path: Path) -> None:
    sim = BleLockSimProcess(
        locks=3, tick=0.2, report_path=tmp_path / "r.json", log_path=tmp_path / "sim.log"
    )
    try:
        backend = await sim.start()
        command = [str(BIN / "tollgate-edge"), "scan", "ble", "--backend", backend]
        result = await asyncio.to_thread(
            subprocess.run, [*command, "--duration", "2s"], capture_output=True, text=True
        )
    finally:
        await sim.terminate()
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()[1:]
    assert [row.split()[0] for row in rows] == ["1", "2", "3"]
    assert all(row.split()[-1].startswith("TG-LOCK-") for row in rows)


def test_a_bad_backend_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "ble", "--backend", "bumble:tcp-client:nowhere"]) == 2
    err = capsys.readouterr().err
    assert "tcp-client:<host>:<port>" in err


NO_BLUEZ_FIX = (
    "scan through a Bumble controller with --backend bumble:usb:0 or bumble:tcp-client:HOST:PORT"
)


async def run_scan_ble(*args: str, bus: str) -> subprocess.CompletedProcess[str]:
    """The installed command in its own process, with `bus` as its system D-Bus."""
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus}
    command = [str(BIN / "tollgate-edge"), "scan", "ble", *args, "--duration", "1s"]
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, env=env, timeout=30
    )


def assert_names_the_fix(result: subprocess.CompletedProcess[str], reason: str) -> None:
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"tollgate-edge: no BlueZ adapter ({reason}); {NO_BLUEZ_FIX}\n"


async def test_without_a_system_dbus_the_command_names_the_bumble_backend(tmp_path: Path) -> None:
    """The real condition of this machine: no system D-Bus, so no BlueZ (the bus address points
    at a socket that does not exist, so that a machine with BlueZ sees the same)."""
    result = await run_scan_ble(bus=f"unix:path={tmp_path / 'no-bus'}")
    assert_names_the_fix(result, "cannot reach the system D-Bus: No such file or directory")


async def test_the_error_names_the_site_config_setting_for_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `tollgate-edge check` shows in a BLE lock's row on such a machine (the same real
    condition: no system D-Bus)."""
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'no-bus'}")
    with pytest.raises(NoBluezAdapter) as caught:
        await scan_locks("bluez", seconds=0.1)
    assert str(caught.value) == (
        "no BlueZ adapter (cannot reach the system D-Bus: No such file or directory); "
        "set [ble] backend to a Bumble controller, e.g. bumble:usb:0 or bumble:tcp-client:HOST:PORT"
    )


@asynccontextmanager
async def private_bus(tmp_path: Path) -> AsyncIterator[str]:
    """A real dbus-daemon on a socket of its own, standing in for the system bus."""
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        pytest.skip("dbus-daemon is not installed")
    config = tmp_path / "bus.conf"
    config.write_text(
        "<busconfig><type>system</type>"
        f"<listen>unix:path={tmp_path / 'bus'}</listen><auth>EXTERNAL</auth>"
        '<policy context="default"><allow send_destination="*" eavesdrop="true"/>'
        '<allow eavesdrop="true"/><allow own="*"/></policy>'
        "</busconfig>"
    )
    process = await asyncio.create_subprocess_exec(
        daemon,
        f"--config-file={config}",
        "--nofork",
        "--print-address",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        address = (await asyncio.wait_for(process.stdout.readline(), timeout=10)).decode()
        yield address.strip()
    finally:
        process.terminate()
        await process.wait()


async def test_with_dbus_but_no_bluez_the_command_names_the_bumble_backend(
    tmp_path: Path,
) -> None:
    async with private_bus(tmp_path) as bus:
        result = await run_scan_ble("--backend", "bluez", bus=bus)
    assert_names_the_fix(result, "BlueZ is not running on the system D-Bus")


class NoAdapters(ServiceInterface):
    """BlueZ's object manager with no adapter under it: what bleak reads first (BlueZ itself
    cannot run here, there is no bluetoothd on this machine)."""

    def __init__(self) -> None:
        super().__init__("org.freedesktop.DBus.ObjectManager")

    @method()
    def GetManagedObjects(self) -> "a{oa{sa{sv}}}":  # noqa: F722 (a D-Bus signature)
        return {}


async def test_with_bluez_but_no_adapter_the_command_names_the_bumble_backend(
    tmp_path: Path,
) -> None:
    async with private_bus(tmp_path) as bus:
        bluez = await MessageBus(bus_address=bus).connect()
        try:
            bluez.export("/", NoAdapters())
            await bluez.request_name("org.bluez")
            result = await run_scan_ble(bus=bus)
        finally:
            bluez.disconnect()
            await bluez.wait_for_disconnect()
    assert_names_the_fix(result, "BlueZ: No Bluetooth adapters found.")
