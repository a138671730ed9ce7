"""A bleak backend on Bumble: BumbleScanner and BumbleClient, bound to one HCI transport.

bleak picks a backend per platform (BlueZ over D-Bus on Linux) but takes any
`BaseBleakScanner` / `BaseBleakClient` subclass as `backend=`. These two run bleak's API over a
Bumble host (`edge.ble.bumble_host`) on a transport spec such as `usb:0`,
`serial:/dev/ttyACM0` or `tcp-client:127.0.0.1:9000` (the simulator's virtual controller), so
the lock driver is the same code on BlueZ, on a USB dongle without BlueZ and in tests.

`bumble_backend_classes(transport)` gives the pair bound to a transport (subclasses that carry
it, because bleak builds the backend itself and its typed helpers take no extra arguments).

Behaviour matches the BlueZ backend where a driver can tell: the disconnected callback fires
for every disconnection (ours and the peer's), reads return the whole value (Bumble reads on
with Read Blob while a response fills the MTU, so values up to 512 bytes arrive complete),
writes longer than the MTU use Prepare/Execute Write, and every failure is a BleakError
(`BleakGATTProtocolError` for an ATT error response, `BleakDeviceNotFoundError` when the peer
does not answer a connect in time). Pairing is not supported.
"""

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Literal, TypeVar

from bleak.args import SizedBuffer
from bleak.assigned_numbers import gatt_char_props_to_strs
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError, BleakGATTProtocolError
from bleak.uuids import normalize_uuid_str
from bumble import att, core, hci
from bumble.core import AdvertisingData
from bumble.device import Advertisement, Connection
from bumble.gatt_client import CharacteristicProxy, ServiceProxy

from edge.ble.bumble_host import BumbleHost, bleak_errors, shared_host

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# The ATT MTU asked for after connecting: 247 fills one LE data packet of 251 bytes
# (Data Length Extension), which most controllers support; longer values still need Read Blob.
ATT_MTU = 247

_UUID_LISTS = {
    AdvertisingData.Type.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS: 2,
    AdvertisingData.Type.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS: 2,
    AdvertisingData.Type.COMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS: 4,
    AdvertisingData.Type.INCOMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS: 4,
    AdvertisingData.Type.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS: 16,
    AdvertisingData.Type.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS: 16,
}
_SERVICE_DATA = {
    AdvertisingData.Type.SERVICE_DATA_16_BIT_UUID: 2,
    AdvertisingData.Type.SERVICE_DATA_32_BIT_UUID: 4,
    AdvertisingData.Type.SERVICE_DATA_128_BIT_UUID: 16,
}


def uuid_text(uuid: core.UUID) -> str:
    """A Bumble UUID as bleak writes UUIDs (128-bit, lower case)."""
    return normalize_uuid_str(uuid.to_hex_str("-"))


def advertisement_data(advertisement: Advertisement) -> AdvertisementData:
    """Bleak's view of one advertisement (with its scan response merged in by Bumble)."""
    names: dict[int, str] = {}
    manufacturer: dict[int, bytes] = {}
    service_data: dict[str, bytes] = {}
    uuids: list[str] = []
    tx_power: int | None = None
    for ad_type, payload in advertisement.data.ad_structures:
        if ad_type in (AdvertisingData.COMPLETE_LOCAL_NAME, AdvertisingData.SHORTENED_LOCAL_NAME):
            names[ad_type] = payload.decode("utf-8", errors="replace")
        elif ad_type == AdvertisingData.MANUFACTURER_SPECIFIC_DATA and len(payload) >= 2:
            manufacturer[int.from_bytes(payload[:2], "little")] = payload[2:]
        elif (size := _UUID_LISTS.get(ad_type)) is not None:
            uuids += [uuid_text(u) for u in AdvertisingData.uuid_list_to_objects(payload, size)]
        elif (size := _SERVICE_DATA.get(ad_type)) is not None and len(payload) >= size:
            service_data[uuid_text(core.UUID.from_bytes(payload[:size]))] = payload[size:]
        elif ad_type == AdvertisingData.TX_POWER_LEVEL and len(payload) == 1:
            tx_power = int.from_bytes(payload, "little", signed=True)
    return AdvertisementData(
        local_name=names.get(AdvertisingData.COMPLETE_LOCAL_NAME)
        or names.get(AdvertisingData.SHORTENED_LOCAL_NAME),
        manufacturer_data=manufacturer,
        service_data=service_data,
        service_uuids=list(dict.fromkeys(uuids)),
        tx_power=tx_power,
        rssi=advertisement.rssi,
        platform_data=(advertisement,),
    )


def _unbound(cls: type) -> BleakError:
    return BleakError(f"{cls.__name__} has no transport: use bumble_backend_classes(transport)")


class BumbleScanner(BaseBleakScanner):
    """bleak's scanner over the shared Bumble host of `transport`."""

    transport: ClassVar[str | None] = None

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"] = "active",
        **kwargs: Any,
    ) -> None:
        """Take what BleakScanner passes; `bluez=` / `cb=` options do not apply here."""
        super().__init__(detection_callback, service_uuids)
        self._active = scanning_mode == "active"
        self._host: BumbleHost | None = None

    async def start(self) -> None:
        """Open the radio if needed and listen to advertisements."""
        if self.transport is None:
            raise _unbound(type(self))
        if self._host is not None:
            return
        host = await shared_host(self.transport)
        self.seen_devices = {}
        await host.add_listener(self._on_advertisement, active=self._active)
        self._host = host

    async def stop(self) -> None:
        """Stop listening (the radio stays open for the clients)."""
        host, self._host = self._host, None
        if host is not None:
            await host.remove_listener(self._on_advertisement)

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        data = advertisement_data(advertisement)
        if not self.is_allowed_uuid(data.service_uuids):
            return
        address = advertisement.address.to_string(with_type_qualifier=False)
        known = self.seen_devices.get(address)
        name = data.local_name or (known[0].name if known else None)
        # details: the typed address, so a client connects with the right address type.
        device = self.create_or_update_device(address, address, name, advertisement.address, data)
        self.call_detection_callbacks(device, data)


class BumbleClient(BaseBleakClient):
    """bleak's client for one peripheral, over the shared Bumble host of `transport`."""

    transport: ClassVar[str | None] = None

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None,
        timeout: float,
        services: set[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Take what BleakClient passes; `bluez=` / `winrt=` options do not apply here."""
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        self._typed_address: hci.Address | None = None
        self._name: str | None = None
        if isinstance(address_or_ble_device, BLEDevice):
            self._name = address_or_ble_device.name
            if isinstance(address_or_ble_device.details, hci.Address):
                self._typed_address = address_or_ble_device.details
        self._service_filter = [core.UUID(u) for u in services] if services else []
        self._connection: Connection | None = None
        self._subscribers: dict[int, Callable[[bytes], None]] = {}

    @property
    def name(self) -> str:
        """The advertised name, or the address with dashes (as bleak does)."""
        return self._name or self.address.replace(":", "-")

    @property
    def mtu_size(self) -> int:
        """The ATT MTU of the connection (23 before the exchange)."""
        return self._connection.att_mtu if self._connection else att.ATT_DEFAULT_MTU

    @property
    def is_connected(self) -> bool:
        """Whether the link is up."""
        return self._connection is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        """Connect, exchange the MTU and discover the services; BleakError on failure."""
        if self.transport is None:
            raise _unbound(type(self))
        if self._connection is not None:
            return
        if pair:
            log.info("the Bumble backend does not pair; connecting without pairing")
        timeout = float(kwargs.get("timeout", self._timeout))
        host = await shared_host(self.transport)
        address = self._typed_address or host.address_of(self.address)
        connection = await host.connect(address, within=timeout)
        self._connection = connection
        connection.on(Connection.EVENT_DISCONNECTION, self._on_disconnection)
        try:
            await self._gatt("exchanging the MTU", self._exchange_mtu(connection))
            self.services = await self._gatt("discovering services", self._discover(connection))
        except BaseException:
            await self.disconnect()
            raise

    async def _exchange_mtu(self, connection: Connection) -> None:
        try:
            await connection.gatt_client.request_mtu(ATT_MTU)
        except att.ATT_Error:
            log.info("%s refused the MTU exchange; staying at %d", self.address, self.mtu_size)

    async def _discover(self, connection: Connection) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        for service in await connection.gatt_client.discover_services(self._service_filter):
            await self._add_service(collection, service)
        return collection

    async def _add_service(
        self, collection: BleakGATTServiceCollection, service: ServiceProxy
    ) -> None:
        bleak_service = BleakGATTService(service, service.handle, uuid_text(service.uuid))
        collection.add_service(bleak_service)
        for characteristic in await service.discover_characteristics():
            bleak_characteristic = BleakGATTCharacteristic(
                characteristic,
                characteristic.handle,
                uuid_text(characteristic.uuid),
                sorted(gatt_char_props_to_strs(characteristic.properties)),
                lambda: self.mtu_size - 3,
                bleak_service,
            )
            collection.add_characteristic(bleak_characteristic)
            for descriptor in await characteristic.discover_descriptors():
                collection.add_descriptor(
                    BleakGATTDescriptor(
                        descriptor,
                        descriptor.handle,
                        uuid_text(descriptor.type),
                        bleak_characteristic,
                    )
                )

    def _on_disconnection(self, reason: int) -> None:
        if self._connection is None:
            return
        log.debug("%s disconnected (reason 0x%02X)", self.address, reason)
        self._connection = None
        self._subscribers.clear()
        self.services = None
        if self._disconnected_callback is not None:
            try:
                self._disconnected_callback()
            except Exception:
                # Raised inside Bumble's event dispatch, it would break the host.
                log.exception("disconnected callback of %s failed", self.address)

    async def disconnect(self) -> None:
        """End the link; afterwards `is_connected` is False and the callback has fired."""
        connection = self._connection
        if connection is None:
            return
        try:
            async with asyncio.timeout(self._timeout):
                await connection.disconnect()
        except (TimeoutError, core.BaseBumbleError) as exc:
            # The link may be gone already (its event not yet seen) or the radio lost.
            log.debug("disconnecting %s: %r", self.address, exc)
        finally:
            self._on_disconnection(hci.HCI_ErrorCode.CONNECTION_TERMINATED_BY_LOCAL_HOST_ERROR)

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """Not supported: the locks use application-level authentication."""
        raise BleakError("the Bumble backend does not support pairing")

    async def unpair(self) -> None:
        """Not supported (nothing is ever paired)."""
        raise BleakError("the Bumble backend does not support pairing")

    def _require_connection(self) -> Connection:
        if self._connection is None:
            raise BleakError(f"not connected to {self.address}")
        return self._connection

    async def _gatt(self, what: str, operation: Awaitable[_T]) -> _T:
        """Await a GATT operation, mapping Bumble's failures (and a dropped link) to bleak's."""
        try:
            with bleak_errors(f"{what} on {self.address}"):
                try:
                    return await operation
                except att.ATT_Error as exc:
                    raise BleakGATTProtocolError(exc.error_code) from exc
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            # Bumble cancels the pending request when the link drops: not our cancellation.
            raise BleakError(f"{what} on {self.address}: disconnected") from None

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        """Read the whole value (Read, then Read Blob while it fills the MTU)."""
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        connection = self._require_connection()
        value = await self._gatt("reading", connection.gatt_client.read_value(proxy))
        return bytearray(value)

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        """Read a descriptor's whole value."""
        connection = self._require_connection()
        value = await self._gatt("reading", connection.gatt_client.read_value(descriptor.handle))
        return bytearray(value)

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        """Write with or without response; long writes with response are split by Bumble."""
        connection = self._require_connection()
        write = connection.gatt_client.write_value(characteristic.handle, bytes(data), response)
        await self._gatt("writing", write)

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        """Write a descriptor (always with response)."""
        connection = self._require_connection()
        write = connection.gatt_client.write_value(descriptor.handle, bytes(data), True)
        await self._gatt("writing", write)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        """Subscribe (notifications preferred over indications, as bleak asks)."""
        connection = self._require_connection()
        proxy: CharacteristicProxy[bytes] = characteristic.obj

        def deliver(value: bytes) -> None:
            callback(bytearray(value))

        await self._gatt("subscribing", connection.gatt_client.subscribe(proxy, deliver, True))
        self._subscribers[characteristic.handle] = deliver

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        """Unsubscribe."""
        connection = self._require_connection()
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        deliver = self._subscribers.pop(characteristic.handle, None)
        await self._gatt("unsubscribing", connection.gatt_client.unsubscribe(proxy, deliver))


@functools.cache
def bumble_backend_classes(transport: str) -> tuple[type[BumbleScanner], type[BumbleClient]]:
    """The scanner and client classes bound to `transport` (the same classes on every call)."""

    class Scanner(BumbleScanner):
        pass

    class Client(BumbleClient):
        pass

    Scanner.transport = Client.transport = transport
    # bleak reports the class name as its backend_id: make it say which radio.
    Scanner.__name__ = Scanner.__qualname__ = f"BumbleScanner({transport})"
    Client.__name__ = Client.__qualname__ = f"BumbleClient({transport})"
    return Scanner, Client
