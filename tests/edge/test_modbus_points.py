"""ModbusDriver over real transports: every table, type and layout over TCP, coalescing, and
Modbus RTU on a pseudo-terminal shared by several units."""

from decimal import Decimal
from typing import Any

import pytest

from edge.config import ModbusDeviceConfig
from edge.drivers.modbus import ModbusDriver, plan_requests
from edge.errors import DeviceTimeout
from edge.health import DeviceHealth
from firmware_sims.modbus_panel import ModbusPanel, Scenario, SimCounter, SimGauge, SimState

LAYOUTS = [("big", "big"), ("big", "little"), ("little", "big"), ("little", "little")]
# (type, value served, scale, offset, expected engineering value)
GAUGE_VALUES = [
    ("int16", -2, "0.5", "10", "9.0"),
    ("uint16", 1234, "0.1", "0", "123.4"),
    ("int32", -70000, "1", "0", "-70000"),
    ("uint32", 4_000_000_000, "0.001", "0", "4000000.000"),
    ("int64", -(2**62), "1", "1", str(-(2**62) + 1)),
    ("uint64", 2**64 - 1, "1", "0", str(2**64 - 1)),
    ("float32", 1.5, "2", "0.25", "3.25"),
    ("float64", -0.1, "1", "-273.15", "-273.25"),
]


def gauges() -> list[tuple[SimGauge, dict[str, Any], str]]:
    """One gauge per type and layout, packed back to back in the input and holding tables."""
    cases = []
    address = {"holding": 0, "input": 0}
    for index, (type_, value, scale, offset, expected) in enumerate(GAUGE_VALUES):
        for layout, (byte_order, word_order) in enumerate(LAYOUTS):
            table = "input" if (index + layout) % 2 else "holding"
            name = f"{type_}_{byte_order}_{word_order}"
            gauge = SimGauge(name, table, address[table], type_, word_order, byte_order, value)  # type: ignore[arg-type]
            address[table] += gauge.register_count
            point = {
                "name": name,
                "table": table,
                "address": gauge.address,
                "type": type_,
                "byte_order": byte_order,
                "word_order": word_order,
                "kind": "gauge",
                "scale": scale,
                "offset": offset,
                "unit": "x",
            }
            cases.append((gauge, point, expected))
    return cases


def device(url: str, points: list[dict[str, Any]], **fields: Any) -> ModbusDeviceConfig:
    raw = {"id": "panel-1", "driver": "modbus", "url": url, "timeout": "300ms", "retries": 0}
    return ModbusDeviceConfig.model_validate({**raw, "point": points, **fields})


async def test_every_type_and_layout_with_scale_and_offset_over_tcp() -> None:
    cases = gauges()
    states = (
        SimState("armed", "coil", 3, initial=True),
        SimState("door", "discrete", 0, initial=False),
        SimState("mode", "holding", 200, on_value=5, initial=True),
    )
    counters = (SimCounter("pulses", "input", 300, "uint64", "little", initial=2**40),)
    scenario = Scenario(counters=counters, states=states, gauges=tuple(g for g, _, _ in cases))
    state_points = [
        {"name": "armed", "table": "coil", "address": 3, "activation": "armed"},
        {"name": "door", "table": "discrete", "address": 0, "activation": "door_open"},
        {
            "name": "mode",
            "table": "holding",
            "address": 200,
            "type": "uint16",
            "kind": "state",
            "on_value": 5,
            "activation": "auto",
        },
    ]
    counter_point = {
        "name": "pulses",
        "table": "input",
        "address": 300,
        "type": "uint64",
        "word_order": "little",
    }
    points = [p for _, p, _ in cases] + state_points + [counter_point]
    async with ModbusPanel(scenario=scenario) as panel:
        driver = ModbusDriver(device(f"tcp://127.0.0.1:{panel.port}", points))
        async with driver:
            first = {r.point: r.value for r in await driver.poll()}
            await panel.set_state("door", True)
            await panel.set_state("armed", False)
            await panel.set_gauge("float32_little_big", -8.5)
            second = {r.point: r.value for r in await driver.poll()}

    for _, point, expected in cases:
        assert isinstance(first[point["name"]], Decimal)
        assert str(first[point["name"]]) == expected, point
    assert (first["armed"], first["door"], first["mode"]) == (True, False, 5)
    assert first["pulses"] == 2**40
    assert (second["armed"], second["door"]) == (False, True)
    assert second["float32_little_big"] == Decimal("-16.75")


def test_plan_coalesces_adjacent_points_only_up_to_the_limit() -> None:
    points = [
        {"name": "a", "table": "holding", "address": 0, "type": "uint32"},
        {"name": "b", "table": "holding", "address": 2, "type": "uint16"},
        {"name": "c", "table": "holding", "address": 3, "type": "uint64"},
        {"name": "gap", "table": "holding", "address": 10, "type": "uint16"},
        {"name": "i", "table": "input", "address": 2, "type": "uint16"},
        {"name": "c0", "table": "coil", "address": 0, "activation": "x"},
        {"name": "c1", "table": "coil", "address": 1, "activation": "y"},
    ]
    config = device("tcp://127.0.0.1:502", points)
    plan = plan_requests(config.point, max_coalesce=64)
    assert [(r.table, r.address, r.count) for r in plan] == [
        ("coil", 0, 2),
        ("holding", 0, 7),
        ("holding", 10, 1),
        ("input", 2, 1),
    ]
    small = plan_requests(config.point, max_coalesce=4)
    assert [(r.table, r.address, r.count) for r in small if r.table == "holding"] == [
        ("holding", 0, 3),
        ("holding", 3, 4),
        ("holding", 10, 1),
    ]


async def test_a_poll_makes_fewer_requests_than_points() -> None:
    gauges_ = tuple(SimGauge(f"g{n}", "input", 2 * n, "float32", initial=n) for n in range(10))
    states = tuple(SimState(f"s{n}", "coil", n) for n in range(5))
    async with ModbusPanel(scenario=Scenario(gauges=gauges_, states=states)) as panel:
        points = [
            {"name": g.name, "table": "input", "address": g.address, "type": "float32"}
            | {"kind": "gauge"}
            for g in gauges_
        ] + [
            {"name": s.name, "table": "coil", "address": s.address, "activation": "on"}
            for s in states
        ]
        config = device(f"tcp://127.0.0.1:{panel.port}", points, max_coalesce=8)
        async with ModbusDriver(config) as driver:
            readings = await driver.poll()
    assert len(readings) == 15
    # 10 float32 = 20 registers in reads of at most 8 (3 reads); 5 coils in one read.
    assert dict(panel.requests) == {0x04: 3, 0x01: 1}


async def test_rtu_units_share_a_pty_and_a_silent_unit_only_times_out() -> None:
    scenario = Scenario(
        gauges=(SimGauge("temp", "input", 0, "int16", initial=-40),),
        states=(SimState("armed", "coil", 0),),
    )
    points = [
        {"name": "temp", "table": "input", "address": 0, "type": "int16", "kind": "gauge"},
        {"name": "armed", "table": "coil", "address": 0, "activation": "armed"},
    ]
    async with ModbusPanel(scenario=scenario, rtu=True, units=(1, 2)) as panel:
        url = f"rtu://{panel.serial_path}?baudrate=9600&parity=N&stopbits=1&bytesize=8"
        await panel.set_state("armed", True, unit=2)
        await panel.set_gauge("temp", 21, unit=2)
        healths = {unit: DeviceHealth(f"u{unit}", "modbus", url) for unit in (1, 2, 3)}
        drivers = [
            ModbusDriver(
                device(url, points, id=f"u{unit}", unit=unit, request_gap="5ms"),
                health=healths[unit],
            )
            for unit in (1, 2, 3)
        ]
        one, two, silent = drivers
        async with one, two, silent:
            for _ in range(2):
                with pytest.raises(DeviceTimeout, match=r"'u3'.*unit 3.*no answer within 0\.3s"):
                    await silent.poll()
                first = {r.point: r.value for r in await one.poll()}
                second = {r.point: r.value for r in await two.poll()}
                assert first == {"temp": Decimal(-40), "armed": False}
                assert second == {"temp": Decimal(21), "armed": True}
        assert healths[3].protocol["timeout"] == 2
        assert not healths[1].protocol and not healths[2].protocol
    # the line closed with its last driver: the port can be opened again at once
    from edge.drivers import modbus

    assert not modbus._LINES


async def test_exception_codes_are_counted() -> None:
    scenario = Scenario(gauges=(SimGauge("g", "input", 0, "uint16"),))
    async with ModbusPanel(scenario=scenario) as panel:
        ghost = {"name": "ghost", "table": "holding", "address": 900, "type": "uint16"}
        health = DeviceHealth("panel-1", "modbus", "x")
        async with ModbusDriver(
            device(f"tcp://127.0.0.1:{panel.port}", [ghost]), health=health
        ) as driver:
            for _ in range(2):
                with pytest.raises(Exception, match="exception code 2"):
                    await driver.poll()
    assert health.protocol["exception_2"] == 2


async def test_bad_crc_is_counted_and_times_out() -> None:
    """A hand-made RTU peer on a pty answers every request with a corrupted CRC."""
    import asyncio
    import os
    import tty

    from firmware_sims.modbus_panel import PtyNullModem

    modem = PtyNullModem()
    peer = os.open(modem.server_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(peer)
    loop = asyncio.get_running_loop()

    def answer() -> None:
        request = os.read(peer, 256)
        # unit 1, read holding registers, 2 bytes: 0x0007, then a CRC that is wrong
        os.write(peer, bytes([request[0], 0x03, 0x02, 0x00, 0x07, 0x00, 0x00]))

    loop.add_reader(peer, answer)
    try:
        url = f"rtu://{modem.client_path}"
        point = {"name": "p", "table": "holding", "address": 0, "type": "uint16"}
        health = DeviceHealth("panel-1", "modbus", url)
        async with ModbusDriver(device(url, [point], timeout="200ms"), health=health) as driver:
            with pytest.raises(DeviceTimeout):
                await driver.poll()
    finally:
        loop.remove_reader(peer)
        os.close(peer)
        modem.close()
    assert health.protocol["crc_error"] >= 1
    assert health.protocol["timeout"] == 1


async def test_rtu_units_on_one_line_each_keep_their_own_retries() -> None:
    """The shared client is built with the first unit's settings; every turn sets its own
    device's (through `pymodbus_internals.RequestLimits`): the panel counts the attempts."""
    scenario = Scenario(gauges=(SimGauge("g", "holding", 0, "uint16", initial=5),))
    point = {"name": "g", "table": "holding", "address": 0, "type": "uint16", "kind": "gauge"}
    async with ModbusPanel(scenario=scenario, rtu=True, units=(1,)) as panel:
        url = f"rtu://{panel.serial_path}?baudrate=9600"
        first = ModbusDriver(device(url, [point], id="u1", unit=1, retries=0))
        silent = ModbusDriver(device(url, [point], id="u2", unit=2, retries=2, timeout="150ms"))
        async with first, silent:
            for _ in range(2):
                before = panel.requests[0x03]
                with pytest.raises(DeviceTimeout, match=r"no answer within 0\.15s \(3 attempts"):
                    await silent.poll()
                assert panel.requests[0x03] - before == 3
                before = panel.requests[0x03]
                assert [r.value for r in await first.poll()] == [Decimal(5)]
                assert panel.requests[0x03] - before == 1
