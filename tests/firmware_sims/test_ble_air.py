"""VirtualAir: peripherals on Bumble's LocalLink, an in-process central, and the gateway's radio
on a TCP HCI port that survives its host being killed. Real Bumble stacks throughout, no mocks."""

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from bleak import BleakClient, BleakScanner
from bumble import core, hci
from bumble.device import Advertisement, Connection, Device, Peer

from edge.ble import bleak_backend
from firmware_sims.ble_air import VirtualAir
from tests.support.ble_peripheral import (
    GENEROUS,
    LONG_UUID,
    TinyPeripheral,
    address_of,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]

# A gateway agent in miniature: open the radio over TCP, connect to the lock, read, then hold
# the link until killed.
GATEWAY = """
import asyncio, sys
from bleak import BleakClient, BleakScanner
from edge.ble import bleak_backend

async def main(spec, address, uuid):
    backend = bleak_backend(spec)
    device = await BleakScanner.find_device_by_address(address, 20, **backend.scanner_kwargs())
    client = BleakClient(device, **backend.client_kwargs())
    await client.connect()
    print("read", len(await client.read_gatt_char(uuid)), flush=True)
    await asyncio.Event().wait()

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.fixture
async def air() -> AsyncIterator[VirtualAir]:
    async with VirtualAir() as running:
        yield running


async def scan_for(central: Device, address: str) -> Advertisement:
    """The first advertisement from `address` heard by an in-process central."""
    heard: asyncio.Future[Advertisement] = asyncio.get_running_loop().create_future()

    def on_advertisement(advertisement: Advertisement) -> None:
        if str(advertisement.address) == address and not heard.done():
            heard.set_result(advertisement)

    central.on(Device.EVENT_ADVERTISEMENT, on_advertisement)
    await central.start_scanning()
    try:
        return await asyncio.wait_for(heard, GENEROUS)
    finally:
        central.remove_listener(Device.EVENT_ADVERTISEMENT, on_advertisement)
        await central.stop_scanning()


async def connect_to(central: Device, peripheral: TinyPeripheral) -> Connection:
    advertisement = await scan_for(central, address_of(peripheral.index))
    return await central.connect(advertisement.address, timeout=GENEROUS)


async def test_port_zero_binds_a_free_port(air: VirtualAir) -> None:
    assert air.port > 0
    assert air.transport == f"tcp-client:127.0.0.1:{air.port}"
    assert air.backend == f"bumble:tcp-client:127.0.0.1:{air.port}"
    assert not air.gateway_attached


async def test_in_process_central_reads_a_long_value_at_the_minimum_mtu() -> None:
    async with VirtualAir(port=None) as air:
        with pytest.raises(RuntimeError, match="serves no TCP port"):
            _ = air.port
        tiny = await TinyPeripheral.start(air, 1)
        central = await air.add_central()
        connection = await connect_to(central, tiny)
        peer = Peer(connection)
        await peer.discover_services()
        await peer.discover_characteristics()
        [characteristic] = peer.get_characteristics_by_uuid(core.UUID(LONG_UUID))
        # MTU 23: 22 bytes per response, the rest by 13 Read Blob requests.
        assert connection.att_mtu == 23
        assert await peer.read_value(characteristic) == tiny.long_value
        await connection.disconnect()
        await wait_until(lambda: not tiny.connections, "the peripheral saw the link end")


async def test_cancelled_connect_is_answered_and_leaves_the_radio_usable() -> None:
    async with VirtualAir(port=None) as air:
        tiny = await TinyPeripheral.start(air, 1)
        central = await air.add_central()
        absent = hci.Address(address_of(9), hci.Address.RANDOM_DEVICE_ADDRESS)
        async with asyncio.timeout(GENEROUS):  # stock Bumble would wait here forever
            with pytest.raises(core.TimeoutError):
                await central.connect(absent, timeout=0.5)
        connection = await connect_to(central, tiny)
        await connection.disconnect()


async def test_reset_ends_the_links_and_peripherals_advertise_again() -> None:
    async with VirtualAir(port=None) as air:
        tiny = await TinyPeripheral.start(air, 1)
        central = await air.add_central()
        await connect_to(central, tiny)
        assert len(tiny.connections) == 1
        await central.power_on()  # HCI_Reset first
        await wait_until(lambda: not tiny.connections, "the reset ended the peripheral's link")
        connection = await connect_to(central, tiny)
        await connection.disconnect()


async def test_removed_peripheral_drops_its_links(air: VirtualAir) -> None:
    tiny = await TinyPeripheral.start(air, 1)
    central = await air.add_central()
    connection = await connect_to(central, tiny)
    ended: list[int] = []
    connection.on(Connection.EVENT_DISCONNECTION, ended.append)
    await air.remove(tiny.device)
    await wait_until(lambda: len(ended) == 1, "the central saw the peripheral leave")


async def test_addresses_must_be_random_static_and_unique(air: VirtualAir) -> None:
    with pytest.raises(ValueError, match="not a random static address"):
        await air.add_peripheral("public", "00:11:22:33:44:55")
    await air.add_peripheral("one", "C1:00:00:00:00:01")
    with pytest.raises(ValueError, match="already on the air"):
        await air.add_peripheral("two", "C1:00:00:00:00:01")


async def test_a_second_gateway_host_is_refused(air: VirtualAir) -> None:
    async with bleak_backend(air.backend) as backend:
        await BleakScanner.discover(0.1, **backend.scanner_kwargs())
        assert air.gateway_attached
        reader, writer = await asyncio.open_connection("127.0.0.1", air.port)
        try:
            assert await asyncio.wait_for(reader.read(), GENEROUS) == b""
        finally:
            writer.close()
            await writer.wait_closed()
        assert air.gateway_sessions == 1
        await BleakScanner.discover(0.1, **backend.scanner_kwargs())  # the first host still works


async def test_gateway_killed_with_sigkill_can_reconnect_repeatedly(air: VirtualAir) -> None:
    tiny = await TinyPeripheral.start(air, 1)
    for round_ in range(1, 4):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            GATEWAY,
            air.backend,
            address_of(1),
            LONG_UUID,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), GENEROUS)
            assert line == b"read 300\n", line
            assert air.gateway_attached and len(tiny.connections) == 1
        finally:
            # Once only: a second signal makes Popen poll, reaping the child before asyncio.
            if process.returncode is None:
                process.send_signal(signal.SIGKILL)
            _, stderr = await process.communicate()
        assert process.returncode == -signal.SIGKILL, stderr.decode()
        await wait_until(lambda: not air.gateway_attached, "the air saw the host die")
        await wait_until(lambda: not tiny.connections, "the peripheral's link ended")
        assert air.gateway_sessions == round_
    # And a host in this process still gets a working radio.
    async with bleak_backend(air.backend) as backend:
        device = await BleakScanner.find_device_by_address(
            address_of(1), GENEROUS, **backend.scanner_kwargs()
        )
        assert device is not None
        async with BleakClient(device, **backend.client_kwargs()) as client:
            assert await client.read_gatt_char(LONG_UUID) == tiny.long_value
