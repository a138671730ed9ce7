"""A Modbus RTU line is opened exclusively, and a refused open says why, in the serial panels'
words: held by another process (with its pid), no such device.

The lines are real pseudo-terminals (a real pymodbus RTU server behind one, `ModbusPanel`); the
holders are real: a second process holding the line with its own `ModbusDriver` (the way a
second agent would), or the agent itself in this process. Nothing is mocked.
"""

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from edge.cli import main
from edge.config import ModbusDeviceConfig, SerialPortConfig
from edge.drivers.modbus import ModbusDriver
from edge.drivers.serial_line import SerialLine
from edge.errors import DeviceUnreachable, PortHeld
from firmware_sims.modbus_panel import ModbusPanel, Scenario, SimGauge
from tests.support.agent import running_agent
from tests.support.waiting import eventually, free_port

REPO = Path(__file__).resolve().parents[2]
POINT = {"name": "g", "table": "holding", "address": 0, "type": "uint16", "kind": "gauge"}
# A second process holding the line the way the agent does: a ModbusDriver that has connected.
HOLD = """
import asyncio, sys
from edge.config import ModbusDeviceConfig
from edge.drivers.modbus import ModbusDriver

POINT = {"name": "g", "table": "holding", "address": 0, "type": "uint16"}

async def hold():
    config = ModbusDeviceConfig.model_validate(
        {"id": "other", "driver": "modbus", "url": "rtu://" + sys.argv[1], "point": [POINT]}
    )
    async with ModbusDriver(config):
        print("holding", flush=True)
        await asyncio.to_thread(sys.stdin.read)

asyncio.run(hold())
"""


def _device(port: str) -> ModbusDeviceConfig:
    return ModbusDeviceConfig.model_validate(
        {
            "id": "meter",
            "driver": "modbus",
            "url": f"rtu://{port}?baudrate=9600",
            "timeout": "2s",  # generous: a loaded CI machine still answers in time
            "retries": 0,
            "point": [POINT],
        }
    )


@pytest.fixture
async def panel() -> AsyncIterator[ModbusPanel]:
    """A real pymodbus RTU server on a pty: unit 1 serves one holding register."""
    scenario = Scenario(gauges=(SimGauge("g", "holding", 0, "uint16", initial=7),))
    async with ModbusPanel(scenario=scenario, rtu=True, units=(1,)) as running:
        yield running


@asynccontextmanager
async def held_by_another_process(port: str) -> AsyncIterator[int]:
    """A child process with `port` open through its own ModbusDriver; yields its pid."""
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLD,
        port,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    try:
        assert holder.stdout is not None
        assert await holder.stdout.readline() == b"holding\n"
        yield holder.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            holder.kill()
        await holder.wait()


def _site(tmp_path: Path, port: str) -> Path:
    config = tmp_path / "site.toml"
    config.write_text(
        f"""
[gateway]
id = "gw-rtu-held"
cloud_url = "http://127.0.0.1:{free_port()}"
data_dir = "{tmp_path / "state"}"

[diagnostics]
enabled = false

[[device]]
id = "meter"
driver = "modbus"
url = "rtu://{port}?baudrate=9600"
poll_interval = "200ms"
timeout = "2s"
retries = 0

[[device.point]]
name = "g"
table = "holding"
address = 0
type = "uint16"
kind = "gauge"
"""
    )
    return config


async def _check_row(config: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code = await asyncio.to_thread(main, ["check", "--config", str(config), "--timeout", "2s"])
    out = capsys.readouterr().out
    assert code == 1, out  # the collector is not there either
    return next(line for line in out.splitlines() if line.startswith("meter"))


async def test_a_second_driver_on_a_held_rtu_line_is_refused_with_the_holders_pid(
    panel: ModbusPanel,
) -> None:
    """The holder is another process's ModbusDriver: the driver opens its line exclusively."""
    port = panel.serial_path
    async with held_by_another_process(port) as pid:
        with pytest.raises(PortHeld) as caught:
            async with ModbusDriver(_device(port)):
                pass
    assert caught.value.holder == pid  # from /proc/locks
    assert str(caught.value) == f"serial port {port}: held by another process (pid {pid})"
    # Once the holder is gone the line opens and reads: the refusal was the lock, nothing else.
    async with ModbusDriver(_device(port)) as driver:
        assert [reading.value for reading in await driver.poll()] == [7]
    # The refused open left nothing behind: the line closed with its last driver.
    async with SerialLine(SerialPortConfig(port=port)):
        pass


async def test_check_names_the_process_holding_an_rtu_line_and_writes_nothing_to_it(
    tmp_path: Path, panel: ModbusPanel, capsys: pytest.CaptureFixture[str]
) -> None:
    """`check` would poll the meter if the line opened; the panel receives no request."""
    port = panel.serial_path
    async with held_by_another_process(port) as pid:
        row = await _check_row(_site(tmp_path, port), capsys)
    assert row.endswith(f"✗ serial port {port}: held by another process (pid {pid})"), row
    assert sum(panel.requests.values()) == 0, panel.requests


async def test_check_while_the_agent_reads_the_rtu_line_says_the_agent_holds_it(
    tmp_path: Path, panel: ModbusPanel, capsys: pytest.CaptureFixture[str]
) -> None:
    """The agent in this process holds the line (its pid is in status.json); check is refused
    and takes nothing from it: the agent's reads go on without a timeout or CRC error."""
    port = panel.serial_path
    config = _site(tmp_path, port)
    async with running_agent(config.read_text()) as agent:
        meter = agent.health["meter"]
        await eventually(lambda: meter.state == "ok", what="the agent's first read")
        status = tmp_path / "state" / "status.json"
        await eventually(status.exists, what="the agent's status.json")
        row = await _check_row(config, capsys)
        served = panel.requests[0x03]
        await eventually(lambda: panel.requests[0x03] > served, what="the agent to read on")
        health = meter.as_dict()
    assert row.endswith(
        f"✗ serial port {port}: held by another process, the running agent "
        f"(pid {os.getpid()}); `tollgate-edge status` shows its reads"
    ), row
    assert health["state"] == "ok", health
    assert health["errors"] == {} and health["protocol"] == {}, health


async def test_a_missing_rtu_port_is_no_such_device(tmp_path: Path) -> None:
    missing = str(tmp_path / "ttyUSB9")
    with pytest.raises(DeviceUnreachable) as caught:
        async with ModbusDriver(_device(missing)):
            pass
    assert str(caught.value) == f"serial port {missing}: no such device (unplugged? another name?)"
