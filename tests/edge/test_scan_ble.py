"""`tollgate-edge scan ble`: the locks in range, from their advertisements, over a real radio path
(simulated locks on a virtual air, the Bumble backend on the air's HCI TCP port)."""

import asyncio
import subprocess
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from edge.cli import main
from edge.scan_ble import SeenLock, format_locks, scan_locks
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
