"""`tollgate-edge scan ble`: which locks are in range, with their id, counter and battery.

The installer runs it at the bin store before writing the config: it listens to advertisements
for a few seconds (no connection is made, so no lock's battery is spent) and lists every lock
that speaks the Tollgate lock protocol (docs/ble-lock-protocol.md).

With the default backend, "bluez", a gateway without BlueZ cannot scan (no system D-Bus, no
org.bluez on it, or no adapter under it): the scanner starts through
`edge.ble.backends.start_scanner`, which raises `NoBluezAdapter` naming the fix, a Bumble
backend; the command says it in its own words, `NO_BLUEZ_FIX` (its --backend option).
"""

import asyncio
from dataclasses import dataclass

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from edge.ble.backends import bleak_backend, start_scanner
from edge.codecs.ble_lock import COMPANY_ID, LockProtocolError, decode_advert

# The fix, as the `scan ble` command line takes it.
NO_BLUEZ_FIX = (
    "scan through a Bumble controller with --backend bumble:usb:0 or bumble:tcp-client:HOST:PORT"
)


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
        await start_scanner(scanner, choice)  # NoBluezAdapter: "bluez" without BlueZ
        try:
            await asyncio.sleep(seconds)
        finally:
            await scanner.stop()
    return [heard[lock_id] for lock_id in sorted(heard)]


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
