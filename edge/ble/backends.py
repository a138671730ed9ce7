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
"""

from dataclasses import dataclass
from types import TracebackType
from typing import Self, TypedDict

from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner

from edge.ble.bumble_backend import bumble_backend_classes
from edge.ble.bumble_host import close_host

BLUEZ = "bluez"
BUMBLE_PREFIX = "bumble:"

# The transports a gateway can open its radio on, with the shape of their parameters.
BUMBLE_TRANSPORTS = {
    "usb": "usb:<index> or usb:<vid>:<pid>",
    "pyusb": "pyusb:<index> or pyusb:<vid>:<pid>",
    "serial": "serial:<device>[,<speed>]",
    "hci-socket": "hci-socket[:<index>]",
    "tcp-client": "tcp-client:<host>:<port>",
    "unix": "unix:<path>",
}


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
