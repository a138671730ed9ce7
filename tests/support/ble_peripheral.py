"""TinyPeripheral: a small Bumble GATT server on the virtual air, for the BLE radio tests.

One service: a 300-byte readable value (longer than any single ATT response, so reading it
needs Read Blob), a 512-byte one (the ATT maximum), a write-only characteristic that records
what it receives, a notifying one, one whose reads are refused (an ATT error) and one whose
reads wait until released. Its
advertising data carries its name and manufacturer data under company id 0xFFFF (the SIG's id
for tests), with the peripheral's index as payload. `wait_until` polls the air's state.
"""

import asyncio
from collections.abc import Callable

from bumble.core import AdvertisingData
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service

from firmware_sims.ble_air import VirtualAir

SERVICE_UUID = "7a6f0001-0000-4000-8000-00805f9b34fb"
LONG_UUID = "7a6f0002-0000-4000-8000-00805f9b34fb"
MAX_UUID = "7a6f0003-0000-4000-8000-00805f9b34fb"
WRITE_UUID = "7a6f0004-0000-4000-8000-00805f9b34fb"
NOTIFY_UUID = "7a6f0005-0000-4000-8000-00805f9b34fb"
GUARDED_UUID = "7a6f0006-0000-4000-8000-00805f9b34fb"
STALL_UUID = "7a6f0007-0000-4000-8000-00805f9b34fb"
COMPANY_ID = 0xFFFF


GENEROUS = 20.0  # seconds: a bound for waits, never a measured duration


async def wait_until(condition: Callable[[], bool], what: str, limit: float = GENEROUS) -> None:
    """Poll a condition of the air (a correctness wait, not a speed assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"gave up after {limit}s waiting for {what}")
        await asyncio.sleep(0.02)


def address_of(index: int) -> str:
    """The random static address of peripheral `index`."""
    return f"C1:00:00:00:00:{index:02X}"


def pattern(size: int, seed: int) -> bytes:
    """A value whose every byte depends on its offset, so a cut or a shift shows."""
    return bytes((seed * 7 + offset) % 251 for offset in range(size))


class TinyPeripheral:
    """A peripheral with a known GATT table, advertising on the air."""

    def __init__(self, device: Device, index: int) -> None:
        self.device = device
        self.index = index
        self.name = f"tiny-{index}"
        self.long_value = pattern(300, index)
        self.max_value = pattern(512, index + 100)
        self.written: list[bytes] = []
        self.stalled = 0  # reads of STALL_UUID waiting for `release`
        self.release = asyncio.Event()
        self.notifying = Characteristic(
            NOTIFY_UUID, Characteristic.Properties.NOTIFY, Characteristic.READABLE, b""
        )
        device.add_service(
            Service(
                SERVICE_UUID,
                [
                    Characteristic(
                        LONG_UUID,
                        Characteristic.Properties.READ,
                        Characteristic.READABLE,
                        self.long_value,
                    ),
                    Characteristic(
                        MAX_UUID,
                        Characteristic.Properties.READ,
                        Characteristic.READABLE,
                        self.max_value,
                    ),
                    Characteristic(
                        WRITE_UUID,
                        Characteristic.Properties.WRITE,
                        Characteristic.WRITEABLE,
                        CharacteristicValue(write=self._on_write),
                    ),
                    self.notifying,
                    Characteristic(
                        STALL_UUID,
                        Characteristic.Properties.READ,
                        Characteristic.READABLE,
                        CharacteristicValue(read=self._stall),
                    ),
                    Characteristic(
                        GUARDED_UUID,
                        Characteristic.Properties.READ,
                        Characteristic.READ_REQUIRES_AUTHORIZATION,
                        b"secret",
                    ),
                ],
            )
        )

    @classmethod
    async def start(cls, air: VirtualAir, index: int) -> "TinyPeripheral":
        """Put peripheral `index` on the air and start advertising (again after each link)."""
        device = await air.add_peripheral(f"tiny-{index}", address_of(index))
        peripheral = cls(device, index)
        await device.start_advertising(
            advertising_data=peripheral.advertising_data(),
            auto_restart=True,
            advertising_interval_min=100,
            advertising_interval_max=100,
        )
        return peripheral

    def advertising_data(self) -> bytes:
        """Name and manufacturer data, in the advertising data itself (see VirtualAir)."""
        return bytes(
            AdvertisingData(
                [
                    (AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode()),
                    (
                        AdvertisingData.MANUFACTURER_SPECIFIC_DATA,
                        COMPANY_ID.to_bytes(2, "little") + bytes([self.index]),
                    ),
                ]
            )
        )

    async def _stall(self, connection: Connection) -> bytes:
        self.stalled += 1
        await self.release.wait()
        self.stalled -= 1
        return b"late"

    def _on_write(self, connection: Connection, value: bytes) -> None:
        self.written.append(value)

    @property
    def connections(self) -> list[Connection]:
        """The peripheral's links right now."""
        return list(self.device.connections.values())

    async def notify(self, value: bytes) -> None:
        """Notify every subscriber."""
        await self.device.notify_subscribers(self.notifying, value)

    async def disconnect_all(self) -> None:
        """Drop every link from the peripheral's side (the lock walks away)."""
        for connection in self.connections:
            await connection.disconnect()
