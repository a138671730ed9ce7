"""The BLE radio layer: which bleak backend a site uses, and a bleak backend on Bumble.

`bleak_backend(spec)` turns the site config's `[ble] backend` into the `backend=` arguments of
BleakScanner and BleakClient: bleak's default (BlueZ) or the Bumble backend on an HCI transport
(a USB or UART dongle without BlueZ, or the simulator's virtual controller in tests).
"""

from edge.ble.backends import BleakBackendChoice, bleak_backend

__all__ = ["BleakBackendChoice", "bleak_backend"]
