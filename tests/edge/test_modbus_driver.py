"""ModbusDriver against a real pymodbus server on 127.0.0.1 (the simulated panel)."""

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC
from typing import Any

import pytest
from pymodbus.exceptions import ModbusIOException

from edge.config import ModbusDeviceConfig
from edge.drivers.modbus import ModbusDriver
from edge.errors import DeviceTimeout, DeviceUnreachable, FrameError
from firmware_sims.modbus_panel import ModbusPanel, Scenario, SimCounter

# Holding and input counters share address 0 on purpose: the driver must read the right table.
COUNTERS = (
    SimCounter("h16", "holding", 0, "uint16", "big", initial=11),
    SimCounter("h32_little", "holding", 10, "uint32", "little", initial=0x0001_0002),
    SimCounter("i16", "input", 0, "uint16", "big", initial=22),
    SimCounter("i32_big", "input", 4, "uint32", "big", initial=0x0003_0004),
)
POINTS = [
    {
        "name": c.name,
        "table": c.table,
        "address": c.address,
        "type": c.type,
        "word_order": c.word_order,
    }
    for c in COUNTERS
]


def device_config(
    port: int, points: list[dict[str, Any]] = POINTS, **fields: Any
) -> ModbusDeviceConfig:
    """A device at 127.0.0.1:`port`; short timeout and no retries unless told otherwise."""
    raw = {
        "id": "panel-1",
        "driver": "modbus",
        "url": f"tcp://127.0.0.1:{port}",
        "timeout": "300ms",
        "retries": 0,
        "point": points,
        **fields,
    }
    return ModbusDeviceConfig.model_validate(raw)


@pytest.fixture
async def panel() -> AsyncIterator[ModbusPanel]:
    async with ModbusPanel("127.0.0.1", 0, unit=1, scenario=Scenario(counters=COUNTERS)) as running:
        yield running


@pytest.fixture
def free_port() -> Iterator[int]:
    """A port nothing listens on (bound and released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    yield port


async def test_poll_reads_every_table_type_and_word_order(panel: ModbusPanel) -> None:
    async with ModbusDriver(device_config(panel.port)) as driver:
        readings = await driver.poll()

    assert [(r.device_id, r.point, r.value) for r in readings] == [
        ("panel-1", "h16", 11),
        ("panel-1", "h32_little", 0x0001_0002),
        ("panel-1", "i16", 22),
        ("panel-1", "i32_big", 0x0003_0004),
    ]
    assert all(r.observed_at.tzinfo is UTC for r in readings)


async def test_poll_sees_advances_and_wraps(panel: ModbusPanel) -> None:
    async with ModbusDriver(device_config(panel.port)) as driver:
        first = {r.point: r.value for r in await driver.poll()}
        await panel.advance("h16", 5)
        await panel.advance("i32_big", 70_000)
        await panel.set("h32_little", 0xFFFF_FFFF)
        await panel.advance("h32_little", 3)
        second = {r.point: r.value for r in await driver.poll()}

    assert second == {
        "h16": first["h16"] + 5,
        "h32_little": 2,
        "i16": first["i16"],
        "i32_big": first["i32_big"] + 70_000,
    }


async def test_unit_is_sent_as_device_id() -> None:
    scenario = Scenario(counters=(SimCounter("c", "input", 7, "uint16", initial=99),))
    async with ModbusPanel("127.0.0.1", 0, unit=17, scenario=scenario) as panel:
        points = [{"name": "c", "table": "input", "address": 7, "type": "uint16"}]
        async with ModbusDriver(device_config(panel.port, points, unit=17)) as driver:
            assert [r.value for r in await driver.poll()] == [99]


@pytest.mark.parametrize(
    ("point", "where"),
    [
        (
            {"name": "ghost", "table": "holding", "address": 500, "type": "uint16"},
            "holding register 500",
        ),
        # the first register exists (h16), the second does not
        (
            {"name": "half", "table": "holding", "address": 0, "type": "uint32"},
            "holding register 0",
        ),
        ({"name": "gap", "table": "input", "address": 2, "type": "uint16"}, "input register 2"),
    ],
)
async def test_address_the_device_does_not_have_is_a_frame_error(
    panel: ModbusPanel, point: dict[str, Any], where: str
) -> None:
    async with ModbusDriver(device_config(panel.port, [point])) as driver:
        with pytest.raises(FrameError) as caught:
            await driver.poll()
    message = str(caught.value)
    assert "'panel-1'" in message
    assert where in message
    assert "Modbus exception code 2 (ILLEGAL_ADDRESS)" in message


async def test_exception_responses_leave_the_driver_usable(panel: ModbusPanel) -> None:
    ghost = {"name": "ghost", "table": "input", "address": 900, "type": "uint16"}
    async with ModbusDriver(device_config(panel.port, [ghost])) as bad:
        with pytest.raises(FrameError):
            await bad.poll()
        with pytest.raises(FrameError):
            await bad.poll()
    async with ModbusDriver(device_config(panel.port, [POINTS[0], ghost])) as driver:
        with pytest.raises(FrameError, match="'ghost'"):
            await driver.poll()


async def test_nothing_listening_is_unreachable(free_port: int) -> None:
    driver = ModbusDriver(device_config(free_port))
    with pytest.raises(
        DeviceUnreachable, match=rf"'panel-1' at 127\.0\.0\.1:{free_port}: cannot connect"
    ):
        await driver.__aenter__()
    with pytest.raises(RuntimeError, match="entered only once"):
        await driver.__aenter__()


class _Silent(asyncio.Protocol):
    """Accepts a connection and never answers."""

    transports: list[asyncio.BaseTransport]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transports.append(transport)


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    transports: list[asyncio.BaseTransport] = []

    def build() -> _Silent:
        protocol = _Silent()
        protocol.transports = transports
        return protocol

    server = await asyncio.get_running_loop().create_server(build, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    server.close()
    for transport in transports:
        transport.close()
    await server.wait_closed()


@pytest.mark.parametrize("retries", [0, 1])
async def test_silent_device_is_a_timeout(silent_port: int, retries: int) -> None:
    # The timeout also bounds the TCP connect: 100 ms once lost a loopback connect on a loaded
    # CI machine (DeviceUnreachable), so the margin is wider; the read still never answers.
    config = device_config(silent_port, timeout="500ms", retries=retries)
    async with ModbusDriver(config) as driver:
        with pytest.raises(
            DeviceTimeout, match=rf"no answer within 0\.5s \({retries + 1} attempt"
        ) as caught:
            await driver.poll()
    assert isinstance(caught.value.__cause__, ModbusIOException)


async def test_a_new_driver_reads_again_after_the_panel_restarts() -> None:
    scenario = Scenario(counters=COUNTERS)
    async with ModbusPanel("127.0.0.1", 0, scenario=scenario) as panel:
        port = panel.port
        driver = ModbusDriver(device_config(port))
        await driver.__aenter__()
        assert len(await driver.poll()) == len(COUNTERS)
    try:
        with pytest.raises(DeviceUnreachable):
            await driver.poll()
    finally:
        await driver.__aexit__(None, None, None)

    async with ModbusPanel("127.0.0.1", port, scenario=scenario) as restarted:
        assert restarted.port == port
        async with ModbusDriver(device_config(port)) as fresh:
            assert (await fresh.poll())[0].value == 11


async def test_driver_is_entered_once_and_polls_only_while_open(panel: ModbusPanel) -> None:
    driver = ModbusDriver(device_config(panel.port))
    with pytest.raises(RuntimeError, match="unopened"):
        await driver.poll()
    async with driver:
        with pytest.raises(RuntimeError, match="entered only once"):
            async with driver:
                pass
        assert len(await driver.poll()) == len(COUNTERS)
    with pytest.raises(RuntimeError, match="closed"):
        await driver.poll()
