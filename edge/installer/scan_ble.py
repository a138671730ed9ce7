"""`tollgate-edge scan ble`: which locks are in range, with their id, counter and battery.

The installer runs it at the bin store before writing the config: it listens to advertisements
for a few seconds (no connection is made, so no lock's battery is spent) and lists every lock
that speaks the Tollgate lock protocol (docs/ble-lock-protocol.md).

With the default backend, "bluez", a gateway without BlueZ cannot scan: bleak talks to BlueZ
over the system D-Bus. That is the usual case on a box with a USB dongle and no BlueZ (and the
case of the machine these tests run on). bleak 3.x says so in three ways, all mapped here to one
`NoBluezAdapter` (a `DeviceUnreachable`) naming the fix, a Bumble backend (`edge.ble.backends`):

- no system D-Bus: the socket connect raises `OSError` (`FileNotFoundError` when the socket
  does not exist, `ConnectionRefusedError` when nobody listens on it);
- D-Bus but no BlueZ: `BleakDBusError` `org.freedesktop.DBus.Error.ServiceUnknown`;
- BlueZ but no adapter, or none with the BLE central role: `BleakBluetoothNotAvailableError`
  with reason `NO_BLUETOOTH` or `NO_BLE_CENTRAL_ROLE`.

Anything else (an adapter powered off, access denied, a Bumble transport that fails) stays a
`BleakError` with bleak's own words.
"""

import asyncio
from dataclasses import dataclass

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDBusError,
)

from edge.ble.backends import BLUEZ, BleakBackendChoice, bleak_backend
from edge.codecs.ble_lock import COMPANY_ID, LockProtocolError, decode_advert
from edge.errors import DeviceUnreachable

# The fix, as the `scan ble` command line takes it.
NO_BLUEZ_FIX = (
    "scan through a Bumble controller with --backend bumble:usb:0 or bumble:tcp-client:HOST:PORT"
)
_DBUS_NO_SERVICE = "org.freedesktop.DBus.Error.ServiceUnknown"
_NO_ADAPTER = frozenset(
    {
        BleakBluetoothNotAvailableReason.NO_BLUETOOTH,
        BleakBluetoothNotAvailableReason.NO_BLE_CENTRAL_ROLE,
    }
)


class NoBluezAdapter(DeviceUnreachable):
    """The "bluez" backend on a machine without BlueZ, or with no BLE adapter under it."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"no BlueZ adapter ({reason}); set [ble] backend to a Bumble controller, "
            "e.g. bumble:usb:0 or bumble:tcp-client:HOST:PORT"
        )
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SeenLock:
    """One lock heard during the scan (its latest advertisement)."""

    lock_id: int
    counter: int
    battery: int
    address: str
    name: str | None
    rssi: int


async def scan_locks(backend: str, *, seconds: float) -> list[SeenLock]:
    """Listen for `seconds` and return the locks heard, by lock id."""
    heard: dict[int, SeenLock] = {}

    def on_advert(device: BLEDevice, data: AdvertisementData) -> None:
        payload = data.manufacturer_data.get(COMPANY_ID)
        if payload is None:
            return
        try:
            advert = decode_advert(bytes(payload))
        except LockProtocolError:
            return
        heard[advert.lock_id] = SeenLock(
            advert.lock_id,
            advert.counter,
            advert.battery,
            device.address,
            data.local_name,
            data.rssi,
        )

    async with bleak_backend(backend) as choice:
        scanner = BleakScanner(on_advert, **choice.scanner_kwargs())
        await _start(scanner, choice)
        try:
            await asyncio.sleep(seconds)
        finally:
            await scanner.stop()
    return [heard[lock_id] for lock_id in sorted(heard)]


async def _start(scanner: BleakScanner, choice: BleakBackendChoice) -> None:
    """Start listening; a BlueZ backend without BlueZ raises `NoBluezAdapter`."""
    try:
        await scanner.start()
    except (OSError, BleakDBusError, BleakBluetoothNotAvailableError) as exc:
        reason = _no_bluez(exc) if choice.spec == BLUEZ else None
        if reason is None:
            raise
        raise NoBluezAdapter(reason) from exc


def _no_bluez(exc: Exception) -> str | None:
    """Why BlueZ is not there, or None when `exc` says something else."""
    if isinstance(exc, OSError):
        return f"cannot reach the system D-Bus: {exc.strerror or exc}"
    if isinstance(exc, BleakDBusError):
        return (
            "BlueZ is not running on the system D-Bus"
            if exc.dbus_error == _DBUS_NO_SERVICE
            else None
        )
    if isinstance(exc, BleakBluetoothNotAvailableError) and exc.reason in _NO_ADAPTER:
        return f"BlueZ: {exc.args[0]}"
    return None


def format_locks(locks: list[SeenLock]) -> str:
    """The table the installer reads (and a line saying so when nothing was heard)."""
    if not locks:
        return "no locks heard (out of range, asleep, or another radio backend?)\n"
    header = (
        f"{'lock_id':>10}  {'counter':>8}  {'battery':>7}  {'rssi':>5}  address            name"
    )
    rows = [
        f"{lock.lock_id:>10}  {lock.counter:>8}  {lock.battery:>6}%  {lock.rssi:>5}  "
        f"{lock.address:<17}  {lock.name or '-'}"
        for lock in locks
    ]
    return "\n".join([header, *rows]) + "\n"
