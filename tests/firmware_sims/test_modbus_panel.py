"""ModbusPanel and `tollgate-sim modbus-panel`, checked with a real Modbus TCP client."""

import asyncio
import itertools
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

from edge.config import ModbusDeviceConfig
from edge.drivers.modbus import ModbusDriver
from firmware_sims.modbus_panel import (
    Advance,
    ModbusPanel,
    Pause,
    Replug,
    Reset,
    Scenario,
    SimCounter,
    Unplug,
    Wrap,
    default_scenario,
)

ROOT = Path(__file__).resolve().parents[2]
COUNTERS = (
    SimCounter("small", "holding", 0, "uint16", "big"),
    SimCounter("wide", "input", 2, "uint32", "little"),
    SimCounter("wide_big", "holding", 4, "uint32", "big"),
)


@pytest.fixture
async def panel() -> AsyncIterator[ModbusPanel]:
    async with ModbusPanel("127.0.0.1", 0, scenario=Scenario(counters=COUNTERS, tick=0)) as running:
        yield running


@pytest.fixture
async def client(panel: ModbusPanel) -> AsyncIterator[AsyncModbusTcpClient]:
    tcp = AsyncModbusTcpClient(
        "127.0.0.1", port=panel.port, timeout=1, retries=0, reconnect_delay=0
    )
    assert await tcp.connect()
    try:
        yield tcp
    finally:
        tcp.close()


async def read(client: AsyncModbusTcpClient, table: str, address: int, count: int) -> list[int]:
    """Raw registers as a client reads them over TCP."""
    method = client.read_holding_registers if table == "holding" else client.read_input_registers
    response = await method(address, count=count, device_id=1)
    assert not response.isError(), response
    return list(response.registers)


async def test_port_zero_binds_an_ephemeral_port() -> None:
    panel = ModbusPanel("127.0.0.1", 0, scenario=Scenario(counters=COUNTERS))
    with pytest.raises(RuntimeError, match="not serving"):
        _ = panel.port
    async with panel:
        assert panel.port > 0
    with pytest.raises(RuntimeError, match="not serving"):
        _ = panel.port


async def test_uint16_wrap_is_visible_over_tcp(
    panel: ModbusPanel, client: AsyncModbusTcpClient
) -> None:
    await panel.set("small", 0xFFFE)
    assert await read(client, "holding", 0, 1) == [0xFFFE]
    assert await panel.advance("small", 1) == 0xFFFF
    assert await read(client, "holding", 0, 1) == [0xFFFF]
    assert await panel.advance("small", 3) == 2
    assert await read(client, "holding", 0, 1) == [0x0002]
    assert panel.total_advance["small"] == 4  # the preset is not usage


async def test_uint32_wrap_is_visible_over_tcp_in_both_word_orders(
    panel: ModbusPanel, client: AsyncModbusTcpClient
) -> None:
    await panel.set("wide", 0xFFFF_FFFE)
    await panel.advance("wide", 5)
    assert await read(client, "input", 2, 2) == [0x0003, 0x0000]  # little: low word first
    await panel.advance("wide", 70_000)  # 70_003 = 0x0001_1173
    assert await read(client, "input", 2, 2) == [0x1173, 0x0001]
    await panel.advance("wide_big", 70_000)
    assert await read(client, "holding", 4, 2) == [0x0001, 0x1170]
    assert panel.total_advance == {"small": 0, "wide": 70_005, "wide_big": 70_000}


async def test_reset_is_visible_over_tcp_and_usage_survives_it(
    panel: ModbusPanel, client: AsyncModbusTcpClient
) -> None:
    await panel.advance("small", 7)
    assert await read(client, "holding", 0, 1) == [7]
    await panel.reset("small")
    assert await read(client, "holding", 0, 1) == [0]
    await panel.advance("small", 2)
    assert await read(client, "holding", 0, 1) == [2]
    assert await panel.value("small") == 2
    assert panel.total_advance["small"] == 9


async def test_client_writes_are_the_truth_the_panel_counts_from(
    panel: ModbusPanel, client: AsyncModbusTcpClient
) -> None:
    response = await client.write_registers(0, [100], device_id=1)
    assert not response.isError()
    assert await panel.advance("small", 1) == 101


async def test_counters_only_go_up_and_names_are_checked(panel: ModbusPanel) -> None:
    with pytest.raises(ValueError, match="only go up"):
        await panel.advance("small", -1)
    with pytest.raises(KeyError, match="no counter 'nope'"):
        await panel.advance("nope")
    with pytest.raises(ValueError, match="does not fit a uint16"):
        await panel.set("small", 0x10000)


def deltas(values: list[int], bits: int) -> int:
    """Usage a wrap- and reset-aware poller computes (fine for the scenarios used here)."""
    total = 0
    for old, new in itertools.pairwise(values):
        forward = (new - old) % (1 << bits)
        total += forward if forward < 1 << (bits - 1) else new  # a big drop is a reset
    return total


def driver_config(panel: ModbusPanel) -> ModbusDeviceConfig:
    points = [
        {
            "name": c.name,
            "table": c.table,
            "address": c.address,
            "type": c.type,
            "word_order": c.word_order,
        }
        for c in panel.counters.values()
    ]
    return ModbusDeviceConfig.model_validate(
        {
            "id": "panel-1",
            "driver": "modbus",
            "url": f"tcp://127.0.0.1:{panel.port}",
            "unit": panel.unit,
            "timeout": "1s",
            "retries": 0,
            "point": points,
        }
    )


async def test_default_scenario_wraps_resets_and_total_advance_is_exact() -> None:
    scenario = default_scenario(tick=0)
    async with (
        ModbusPanel("127.0.0.1", 0, scenario=scenario) as panel,
        ModbusDriver(driver_config(panel)) as driver,
    ):
        seen: dict[str, list[int]] = {name: [] for name in panel.counters}

        async def poll() -> None:
            for reading in await driver.poll():
                seen[reading.point].append(reading.value)

        await poll()  # the baseline, before the first tick
        await panel.run_scenario(on_tick=poll)

    cycles = seen["cycles"]
    assert cycles[0] == 0xFFFD
    assert cycles[cycles.index(0xFFFF) :][:3] == [0xFFFF, 0, 1]  # the 16-bit wrap, one tick apart
    assert max(seen["energy_wh"]) > 0xFFFF and max(seen["runtime_s"]) > 0xFFFF
    assert all(values[-1] < max(values) for values in seen.values())  # the device reset
    for name, counter in panel.counters.items():
        assert deltas(seen[name], 16 * counter.register_count) == panel.total_advance[name], name
    assert panel.total_advance["cycles"] == 5 + 6


async def test_wrap_step_presets_then_advances_past_the_max(panel: ModbusPanel) -> None:
    seen: list[int] = []

    async def poll() -> None:
        seen.append(await panel.value("small"))

    steps = (
        Advance("small", by=2, ticks=2),
        Wrap("small", margin=2, by=1),
        Pause(),
        Reset("small"),
        Advance("small", by=5),
    )
    await panel.run_scenario(Scenario(counters=COUNTERS, steps=steps, tick=0), on_tick=poll)
    assert seen == [2, 4, 0xFFFD, 0xFFFE, 0xFFFF, 0, 0, 0, 5]
    assert panel.total_advance["small"] == 2 + 2 + 3 + 5


@pytest.mark.parametrize(
    ("counters", "steps", "message"),
    [
        (COUNTERS, (Advance("nope"),), "unknown counter 'nope'"),
        (COUNTERS, (Advance("small", ticks=0),), "ticks must be >= 1"),
        (COUNTERS, (Wrap("small", by=0),), "by must be >= 1"),
        ((*COUNTERS, SimCounter("small", "input", 9)), (), "'small' is used twice"),
        (
            (*COUNTERS, SimCounter("clash", "holding", 5)),
            (),
            "'wide_big' and 'clash' overlap at holding 5",
        ),
    ],
)
def test_bad_scenarios_are_refused(
    counters: tuple[SimCounter, ...], steps: tuple[object, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Scenario(counters=counters, steps=steps)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"table": "coil"}, "table must be"),
        ({"type": "int16"}, "type must be one of"),
        ({"initial": 0x10000}, "does not fit a uint16"),
        ({"address": 0xFFFF, "type": "uint32"}, "out of range"),
    ],
)
def test_bad_counters_are_refused(fields: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"name": "c", "table": "holding", "address": 0, **fields}
    with pytest.raises(ValueError, match=message):
        SimCounter(**values)  # type: ignore[arg-type]


async def start_cli(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "firmware_sims.cli",
        "modbus-panel",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_cli_serves_prints_its_map_and_stops_on_sigint() -> None:
    process = await start_cli("--listen", "127.0.0.1:0", "--tick", "0.05")
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=20)).decode()
        match = re.fullmatch(r"modbus-panel listening on 127\.0\.0\.1:(\d+) unit 1: (.*)\n", line)
        assert match, line
        assert match.group(2) == (
            "cycles=holding:0/uint16, door_open=input:0/uint16, "
            "energy_wh=input:10/uint32, runtime_s=holding:10/uint32/little"
        )
        tcp = AsyncModbusTcpClient(
            "127.0.0.1", port=int(match.group(1)), timeout=2, retries=0, reconnect_delay=0
        )
        assert await tcp.connect()
        try:
            assert len(await read(tcp, "holding", 10, 2)) == 2
        finally:
            tcp.close()
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr


async def test_cli_stops_after_duration() -> None:
    process = await start_cli("--listen", "127.0.0.1:0", "--duration", "0.2")
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode().startswith("modbus-panel listening on 127.0.0.1:")


def test_cli_refuses_a_bad_listen_address(capsys: pytest.CaptureFixture[str]) -> None:
    from firmware_sims.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["modbus-panel", "--listen", "nowhere"])
    assert exited.value.code == 2
    assert "is not HOST:PORT" in capsys.readouterr().err


async def test_cli_serves_rtu_on_a_printed_pty() -> None:
    process = await start_cli("--rtu", "--unit", "1", "--unit", "2", "--tick", "0.05")
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=20)).decode()
        match = re.fullmatch(r"modbus-panel serving (rtu://(/dev/\S+?)\?\S+) unit 1,2: .*\n", line)
        assert match, line
        assert match.group(2).startswith("/dev/")
        points = [{"name": "cycles", "table": "holding", "address": 0, "type": "uint16"}]
        for unit in (1, 2):
            config = ModbusDeviceConfig.model_validate(
                {
                    "id": f"u{unit}",
                    "driver": "modbus",
                    "url": match.group(1),
                    "unit": unit,
                    "timeout": "2s",
                    "retries": 0,
                    "point": points,
                }
            )
            async with ModbusDriver(config) as driver:
                assert len(await driver.poll()) == 1
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr


async def test_rtu_scenario_pulls_the_cable_and_keeps_counting() -> None:
    counters = (SimCounter("door_open", "input", 0, "uint16"),)
    steps = (Advance("door_open"), Unplug(), Advance("door_open", by=2, ticks=2), Replug())
    seen: list[bool] = []
    async with ModbusPanel(scenario=Scenario(counters=counters, steps=steps), rtu=True) as panel:

        async def record() -> None:
            seen.append(panel.plugged)

        await panel.run_scenario(tick=0, on_tick=record)
        assert panel.total_advance["door_open"] == 5
        assert await panel.value("door_open") == 5
    assert seen == [True, False, False, False, True]
