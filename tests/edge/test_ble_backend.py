"""The Bumble bleak backend, driven only through bleak's public API over the virtual air's TCP
HCI port (the way the agent opens a dongle), against TinyPeripherals on the air. No mocks."""

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakDeviceNotFoundError,
    BleakError,
    BleakGATTProtocolError,
    BleakGATTProtocolErrorCode,
)

from edge.ble import BleakBackendChoice, bleak_backend
from edge.ble.bumble_backend import BumbleClient, BumbleScanner
from firmware_sims.ble_air import VirtualAir
from tests.support.ble_peripheral import (
    COMPANY_ID,
    GENEROUS,
    GUARDED_UUID,
    LONG_UUID,
    MAX_UUID,
    NOTIFY_UUID,
    SERVICE_UUID,
    STALL_UUID,
    WRITE_UUID,
    TinyPeripheral,
    address_of,
    wait_until,
)


@pytest.fixture
async def air() -> AsyncIterator[VirtualAir]:
    async with VirtualAir() as running:
        yield running


@pytest.fixture
async def backend(air: VirtualAir) -> AsyncIterator[BleakBackendChoice]:
    async with bleak_backend(air.backend) as choice:
        yield choice


@pytest.fixture
async def tiny(air: VirtualAir) -> TinyPeripheral:
    return await TinyPeripheral.start(air, 1)


async def find(backend: BleakBackendChoice, peripheral: TinyPeripheral) -> BLEDevice:
    """The peripheral's BLEDevice, found by its manufacturer data."""

    def is_it(device: BLEDevice, adv: AdvertisementData) -> bool:
        return adv.manufacturer_data.get(COMPANY_ID) == bytes([peripheral.index])

    found = await BleakScanner.find_device_by_filter(
        is_it, timeout=GENEROUS, **backend.scanner_kwargs()
    )
    assert found is not None, f"{peripheral.name} was not found"
    return found


async def test_scan_reports_name_manufacturer_data_and_rssi(
    backend: BleakBackendChoice, tiny: TinyPeripheral
) -> None:
    seen: list[tuple[BLEDevice, AdvertisementData]] = []
    async with BleakScanner(
        lambda d, a: seen.append((d, a)), **backend.scanner_kwargs()
    ) as scanner:
        await wait_until(lambda: bool(seen), "an advertisement reached the detection callback")
        device, adv = seen[0]
        assert device.address == address_of(1)
        assert device.name == "tiny-1"
        assert adv.local_name == "tiny-1"
        assert adv.manufacturer_data == {COMPANY_ID: bytes([1])}
        assert -127 <= adv.rssi <= 20
        assert scanner.discovered_devices_and_advertisement_data[address_of(1)][1].local_name
    found = await BleakScanner.discover(0.5, return_adv=True, **backend.scanner_kwargs())
    assert found[address_of(1)][1].manufacturer_data == {COMPANY_ID: bytes([1])}


async def test_scanner_filters_on_service_uuids(
    backend: BleakBackendChoice, tiny: TinyPeripheral
) -> None:
    seen: list[BLEDevice] = []
    async with BleakScanner(
        lambda d, a: seen.append(d), [SERVICE_UUID], **backend.scanner_kwargs()
    ):
        # The peripheral advertises no service UUIDs, so a filtered scan must not report it
        # while an unfiltered one (on the same radio) does.
        await find(backend, tiny)
    assert seen == []


async def test_connect_reads_whole_values_writes_and_disconnects(
    backend: BleakBackendChoice, tiny: TinyPeripheral
) -> None:
    device = await find(backend, tiny)
    disconnected: list[BleakClient] = []
    async with BleakClient(device, disconnected.append, **backend.client_kwargs()) as client:
        assert client.is_connected
        assert client.mtu_size == 247
        assert client.services.get_service(SERVICE_UUID) is not None
        # 300 and 512 bytes both exceed one ATT response (MTU 247): Read Blob fetches the rest.
        assert await client.read_gatt_char(LONG_UUID) == tiny.long_value
        assert await client.read_gatt_char(MAX_UUID) == tiny.max_value
        await client.write_gatt_char(WRITE_UUID, b"ack:17", response=True)
        assert tiny.written == [b"ack:17"]
    assert not client.is_connected
    assert disconnected == [client]
    await wait_until(lambda: not tiny.connections, "the peripheral saw the link end")


async def test_notifications_arrive_until_stopped(
    backend: BleakBackendChoice, tiny: TinyPeripheral
) -> None:
    received: list[bytearray] = []
    async with BleakClient(await find(backend, tiny), **backend.client_kwargs()) as client:
        await client.start_notify(NOTIFY_UUID, lambda _, data: received.append(data))
        await tiny.notify(b"counter=5")
        await wait_until(lambda: received == [bytearray(b"counter=5")], "the notification")
        await client.stop_notify(NOTIFY_UUID)


async def test_att_error_is_a_bleak_gatt_protocol_error(
    backend: BleakBackendChoice, tiny: TinyPeripheral
) -> None:
    async with BleakClient(await find(backend, tiny), **backend.client_kwargs()) as client:
        with pytest.raises(BleakGATTProtocolError) as raised:
            await client.read_gatt_char(GUARDED_UUID)
        assert raised.value.code == BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHORIZATION


async def test_peripheral_disconnect_fires_callback_and_reads_fail(
    backend: BleakBackendChoice, tiny: TinyPeripheral
) -> None:
    disconnected: list[BleakClient] = []
    client = BleakClient(await find(backend, tiny), disconnected.append, **backend.client_kwargs())
    await client.connect()
    try:
        await tiny.disconnect_all()
        await wait_until(lambda: disconnected == [client], "the disconnected callback")
        assert not client.is_connected
        with pytest.raises(BleakError):
            await client.read_gatt_char(LONG_UUID)
    finally:
        await client.disconnect()
    assert disconnected == [client]


async def test_link_lost_during_a_read_is_a_bleak_error(
    backend: BleakBackendChoice, tiny: TinyPeripheral
) -> None:
    async with BleakClient(await find(backend, tiny), **backend.client_kwargs()) as client:
        read = asyncio.create_task(client.read_gatt_char(STALL_UUID))
        await wait_until(lambda: tiny.stalled == 1, "the read reached the peripheral")
        await tiny.disconnect_all()
        # Bumble cancels the pending request: the caller gets a BleakError, not a cancellation.
        with pytest.raises(BleakError, match="disconnected"):
            await read
    tiny.release.set()
    await wait_until(lambda: tiny.stalled == 0, "the peripheral finished its read handler")


async def test_service_filter_limits_discovery(
    backend: BleakBackendChoice, tiny: TinyPeripheral
) -> None:
    device = await find(backend, tiny)
    async with BleakClient(device, services=[SERVICE_UUID], **backend.client_kwargs()) as client:
        assert [service.uuid for service in client.services] == [SERVICE_UUID]


async def test_three_peripherals_connected_at_once(
    air: VirtualAir, backend: BleakBackendChoice
) -> None:
    peripherals = [await TinyPeripheral.start(air, index) for index in (1, 2, 3)]
    devices = [await find(backend, peripheral) for peripheral in peripherals]
    clients = [BleakClient(device, **backend.client_kwargs()) for device in devices]
    # Connected concurrently: the host takes the connection attempts one at a time.
    await asyncio.gather(*(client.connect() for client in clients))
    try:
        assert all(client.is_connected for client in clients)
        values = await asyncio.gather(*(client.read_gatt_char(LONG_UUID) for client in clients))
        assert values == [peripheral.long_value for peripheral in peripherals]
        for index, client in enumerate(clients):
            await client.write_gatt_char(WRITE_UUID, bytes([index]), response=True)
        assert [p.written for p in peripherals] == [[b"\x00"], [b"\x01"], [b"\x02"]]
        assert all(len(p.connections) == 1 for p in peripherals)
    finally:
        await asyncio.gather(*(client.disconnect() for client in clients))


async def test_absent_address_fails_with_a_bleak_error_then_connects_work(
    backend: BleakBackendChoice, tiny: TinyPeripheral
) -> None:
    absent = BleakClient(address_of(9), **backend.client_kwargs(), timeout=1.0)
    async with asyncio.timeout(GENEROUS):
        with pytest.raises(BleakDeviceNotFoundError, match="did not answer"):
            await absent.connect()
    assert not absent.is_connected
    # The radio is usable afterwards: the cancelled attempt left nothing pending.
    async with BleakClient(await find(backend, tiny), **backend.client_kwargs()) as client:
        assert await client.read_gatt_char(LONG_UUID) == tiny.long_value


async def test_closed_radio_reopens_on_next_use(
    air: VirtualAir, backend: BleakBackendChoice, tiny: TinyPeripheral
) -> None:
    disconnected: list[BleakClient] = []
    client = BleakClient(await find(backend, tiny), disconnected.append, **backend.client_kwargs())
    await client.connect()
    await backend.aclose()
    assert disconnected == [client]
    assert not client.is_connected
    await wait_until(lambda: not air.gateway_attached, "the air saw the host go")
    await wait_until(lambda: not tiny.connections, "the peripheral lost its link")
    async with BleakClient(await find(backend, tiny), **backend.client_kwargs()) as again:
        assert await again.read_gatt_char(LONG_UUID) == tiny.long_value
    assert air.gateway_sessions == 2


async def test_lost_radio_disconnects_clients_and_reopens(
    air: VirtualAir, backend: BleakBackendChoice, tiny: TinyPeripheral
) -> None:
    disconnected: list[BleakClient] = []
    client = BleakClient(await find(backend, tiny), disconnected.append, **backend.client_kwargs())
    await client.connect()
    air.drop_gateway()  # the dongle is pulled out
    await wait_until(lambda: disconnected == [client], "the disconnected callback")
    with pytest.raises(BleakError):
        await client.read_gatt_char(LONG_UUID)
    async with BleakClient(await find(backend, tiny), **backend.client_kwargs()) as again:
        assert await again.read_gatt_char(LONG_UUID) == tiny.long_value


async def test_listening_scanner_hears_again_after_the_radio_comes_back(
    air: VirtualAir, backend: BleakBackendChoice, tiny: TinyPeripheral
) -> None:
    heard: list[str] = []
    async with BleakScanner(lambda d, a: heard.append(d.address), **backend.scanner_kwargs()):
        await wait_until(lambda: bool(heard), "the first advertisement")
        air.drop_gateway()  # the dongle is pulled out and plugged back in
        await wait_until(lambda: not air.gateway_attached, "the air saw the host go")
        heard.clear()
        # The host reopens the radio by itself for the scanner that is still listening.
        await wait_until(lambda: bool(heard), "an advertisement on the reopened radio")
    assert air.gateway_sessions == 2


async def test_unreachable_radio_is_bluetooth_not_available() -> None:
    async with VirtualAir() as gone:
        spec = gone.backend  # a port that nobody serves once this air is closed
    async with bleak_backend(spec) as choice:
        with pytest.raises(BleakBluetoothNotAvailableError):
            await BleakScanner.discover(0.1, **choice.scanner_kwargs())


def test_bluez_is_bleaks_default() -> None:
    choice = bleak_backend("bluez")
    assert (choice.scanner, choice.client, choice.bumble_transport) == (None, None, None)
    assert choice.scanner_kwargs() == {} and choice.client_kwargs() == {}


def test_bumble_spec_binds_the_transport() -> None:
    choice = bleak_backend("bumble:usb:0")
    assert choice.bumble_transport == "usb:0"
    assert choice.scanner is not None and issubclass(choice.scanner, BumbleScanner)
    assert choice.client is not None and issubclass(choice.client, BumbleClient)
    assert (choice.scanner.transport, choice.client.transport) == ("usb:0", "usb:0")
    assert choice.scanner_kwargs() == {"backend": choice.scanner}
    assert choice.client_kwargs() == {"backend": choice.client}
    # The same classes every time, and a backend_id that names the radio.
    assert bleak_backend("bumble:usb:0").scanner is choice.scanner
    assert BleakScanner(**choice.scanner_kwargs()).backend_id == "BumbleScanner(usb:0)"


@pytest.mark.parametrize(
    "spec",
    [
        "bumble:serial:/dev/ttyACM0",
        "bumble:serial:/dev/ttyACM0,1000000",
        "bumble:usb:2fe3:000b",
        "bumble:pyusb:0",
        "bumble:hci-socket",
        "bumble:hci-socket:0",
        "bumble:tcp-client:127.0.0.1:9000",
        "bumble:unix:/run/hci.sock",
    ],
)
def test_valid_bumble_specs(spec: str) -> None:
    assert bleak_backend(spec).bumble_transport == spec.removeprefix("bumble:")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "unknown BLE backend ''"),
        ("BlueZ", "unknown BLE backend 'BlueZ': expected 'bluez' or 'bumble:<transport>'"),
        ("corebluetooth", "unknown BLE backend"),
        ("bumble", "unknown BLE backend 'bumble'"),
        ("bumble:", "unknown Bumble transport ''"),
        ("bumble:bluetooth:0", "unknown Bumble transport 'bluetooth'"),
        ("bumble:tcp-server:_:9000", "unknown Bumble transport 'tcp-server'"),
        ("bumble:usb", "needs parameters: usb:<index> or usb:<vid>:<pid>"),
        ("bumble:serial:", "needs parameters: serial:<device>"),
        ("bumble:tcp-client:localhost", "expected tcp-client:<host>:<port>"),
        ("bumble:tcp-client:127.0.0.1:http", "expected tcp-client:<host>:<port>"),
        ("bumble:tcp-client:127.0.0.1:70000", "a port 1..65535"),
    ],
)
def test_invalid_specs_are_clear_value_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        bleak_backend(spec)


async def test_unbound_classes_refuse_to_start() -> None:
    with pytest.raises(BleakError, match="bumble_backend_classes"):
        await BleakScanner(backend=BumbleScanner).start()
