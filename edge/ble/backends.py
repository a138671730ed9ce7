"""`[ble] backend` of the site config -> what the lock driver passes to bleak as `backend=`.

- `"bluez"`: bleak's default backend (BlueZ over D-Bus on Linux), the production default.
- `"bumble:<transport>"`: the Bumble backend (`edge.ble.bumble_backend`) on a Bumble HCI
  transport: `usb:<index or vid:pid>` or `pyusb:...` (a USB dongle without BlueZ),
  `serial:<device>[,<speed>]` (a UART controller), `hci-socket:<index>` (a kernel HCI socket),
  `tcp-client:<host>:<port>` or `unix:<path>` (an HCI controller served over a socket, such as
  the simulator's virtual air).

The driver uses bleak's public API only:

    async with bleak_backend(config.ble.backend) as backend:  # closes a Bumble radio at the end
        async with BleakScanner(on_advertisement, **backend.scanner_kwargs()):
            ...
        found = await BleakScanner.find_device_by_filter(match, 10, **backend.scanner_kwargs())
        async with BleakClient(device, on_disconnect, **backend.client_kwargs()) as client:
            ...

`scanner_kwargs()` / `client_kwargs()` are `{}` for BlueZ and `{"backend": <class>}` for Bumble,
typed so that they also fit bleak's typed class methods (whose `backend` may not be None).

"bluez" without BlueZ: bleak talks to BlueZ over the system D-Bus, and a gateway with a USB dongle
and no BlueZ (the machine these tests run on, too) has neither. `start_scanner` turns the three
ways bleak 3.x says so into one `NoBluezAdapter` (a `DeviceUnreachable`) whose message names the
fix, a Bumble backend (`BUMBLE_FIX`); `scan ble`, `check` and the lock driver all start their
scanner through it:

- no system D-Bus: the socket connect raises `OSError` (`FileNotFoundError` when the socket
  does not exist, `ConnectionRefusedError` when nobody listens on it);
- D-Bus but no BlueZ: `BleakDBusError` `org.freedesktop.DBus.Error.ServiceUnknown`;
- BlueZ but no adapter, or none with the BLE central role: `BleakBluetoothNotAvailableError`
  with reason `NO_BLUETOOTH` or `NO_BLE_CENTRAL_ROLE`.

Anything else (an adapter powered off, access denied, a Bumble transport that fails) stays a
`BleakError` with bleak's own words.
"""

from dataclasses import dataclass
from types import TracebackType
from typing import Self, TypedDict

from bleak import BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDBusError,
)

from edge.ble.bumble_backend import bumble_backend_classes
from edge.ble.bumble_host import close_host
from edge.errors import DeviceUnreachable

BLUEZ = "bluez"
BUMBLE_PREFIX = "bumble:"
BUMBLE_FIX = (
    "set [ble] backend to a Bumble controller, e.g. bumble:usb:0 or bumble:tcp-client:HOST:PORT"
)
"""What to do when "bluez" has no BlueZ, in the site config's words."""
_DBUS_NO_SERVICE = "org.freedesktop.DBus.Error.ServiceUnknown"
_NO_ADAPTER = frozenset(
    {
        BleakBluetoothNotAvailableReason.NO_BLUETOOTH,
        BleakBluetoothNotAvailableReason.NO_BLE_CENTRAL_ROLE,
    }
)

# The transports a gateway can open its radio on, with the shape of their parameters.
BUMBLE_TRANSPORTS = {
    "usb": "usb:<index> or usb:<vid>:<pid>",
    "pyusb": "pyusb:<index> or pyusb:<vid>:<pid>",
    "serial": "serial:<device>[,<speed>]",
    "hci-socket": "hci-socket[:<index>]",
    "tcp-client": "tcp-client:<host>:<port>",
    "unix": "unix:<path>",
}


class NoBluezAdapter(DeviceUnreachable):
    """The "bluez" backend on a machine without BlueZ, or with no BLE adapter under it."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"no BlueZ adapter ({reason}); {BUMBLE_FIX}")
        self.reason = reason


class ScannerBackendArgs(TypedDict, total=False):
    """The `backend=` keyword of BleakScanner and its class methods, when not the default."""

    backend: type[BaseBleakScanner]


class ClientBackendArgs(TypedDict, total=False):
    """The `backend=` keyword of BleakClient, when not the default."""

    backend: type[BaseBleakClient]


@dataclass(frozen=True)
class BleakBackendChoice:
    """The `backend=` arguments for BleakScanner and BleakClient (None: bleak's default)."""

    spec: str
    scanner: type[BaseBleakScanner] | None = None
    client: type[BaseBleakClient] | None = None
    bumble_transport: str | None = None

    def scanner_kwargs(self) -> ScannerBackendArgs:
        """Keywords for BleakScanner(...), discover() and find_device_by_*()."""
        return {"backend": self.scanner} if self.scanner is not None else {}

    def client_kwargs(self) -> ClientBackendArgs:
        """Keywords for BleakClient(...)."""
        return {"backend": self.client} if self.client is not None else {}

    async def aclose(self) -> None:
        """Close the Bumble radio if one was opened (its links end); no-op for BlueZ."""
        if self.bumble_transport is not None:
            await close_host(self.bumble_transport)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def bleak_backend(spec: str) -> BleakBackendChoice:
    """Parse a `[ble] backend` value; ValueError says what is wrong and what is accepted."""
    if spec == BLUEZ:
        return BleakBackendChoice(spec=BLUEZ)
    if not spec.startswith(BUMBLE_PREFIX):
        raise ValueError(
            f"unknown BLE backend {spec!r}: expected {BLUEZ!r} or 'bumble:<transport>' "
            f"with <transport> one of {', '.join(BUMBLE_TRANSPORTS.values())}"
        )
    transport = spec.removeprefix(BUMBLE_PREFIX)
    _check_transport(spec, transport)
    scanner, client = bumble_backend_classes(transport)
    return BleakBackendChoice(spec=spec, scanner=scanner, client=client, bumble_transport=transport)


async def start_scanner(scanner: BleakScanner, choice: BleakBackendChoice) -> None:
    """Start listening; a "bluez" backend without BlueZ raises `NoBluezAdapter`."""
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


def _check_transport(spec: str, transport: str) -> None:
    scheme, _, params = transport.partition(":")
    shape = BUMBLE_TRANSPORTS.get(scheme)
    if shape is None:
        raise ValueError(
            f"BLE backend {spec!r}: unknown Bumble transport {scheme!r}; expected one of "
            f"{', '.join(BUMBLE_TRANSPORTS.values())}"
        )
    if not params and scheme != "hci-socket":
        raise ValueError(f"BLE backend {spec!r}: the transport needs parameters: {shape}")
    if scheme == "tcp-client":
        host, _, port = params.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"BLE backend {spec!r}: expected {shape}, with a port 1..65535")
