"""BumbleHost: one Bumble host stack on one HCI transport, shared by the scanner and clients.

A radio (a USB dongle, a UART controller, the simulator's TCP port) can be opened by one host
at a time, and one host can scan and hold several LE connections as central. So there is one
`BumbleHost` per transport spec per process (`shared_host()`), opened on first use and kept
until `close_host()` (the backend choice's `aclose()`): opening a dongle resets it, which
would drop every other lock's connection.

The host serializes connection attempts (a controller initiates one LE connection at a time)
and counts the scanners that listen, scanning while at least one does. When the transport is
lost (dongle unplugged, simulator gone) every connection ends with its disconnected callback;
the next use opens the transport again, and while scanners are listening a background task
reopens it at once (retrying with a doubling delay), so a long-running scanner hears again.

Bumble raises its own exceptions; everything that leaves this module is a bleak exception, so
the driver catches only those.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator

from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDeviceNotFoundError,
    BleakError,
)
from bumble import core, hci
from bumble.device import Advertisement, Connection, Device
from bumble.transport import open_transport
from bumble.transport.common import Transport

log = logging.getLogger(__name__)

# How long the controller gets to answer the reset and setup commands of power-on.
POWER_ON_TIMEOUT = 10.0
# Extra time a timed-out connect gets to see the controller confirm the cancel.
CANCEL_GRACE = 5.0
# How long closing waits for the controller to confirm the reset that ends every link.
CLOSE_TIMEOUT = 2.0
# Reopening a lost radio while scanners listen: first delay, doubling up to the maximum.
RECOVER_INITIAL = 0.5
RECOVER_MAX = 30.0

AdvertisementListener = Callable[[Advertisement], None]


@contextlib.contextmanager
def bleak_errors(what: str) -> Iterator[None]:
    """Re-raise Bumble's exceptions as BleakError, naming the operation."""
    try:
        yield
    except core.BaseBumbleError as exc:
        raise BleakError(f"{what}: {exc!r}") from exc


class BumbleHost:
    """A Bumble Device (the host side of HCI) on one transport, for one event loop."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        self.state = "unopened"  # -> open -> (lost -> open)* -> closed
        self._open_lock = asyncio.Lock()
        self._connect_lock = asyncio.Lock()
        self._scan_lock = asyncio.Lock()
        self._hci: Transport | None = None
        self._device: Device | None = None
        self._listeners: list[AdvertisementListener] = []
        self._scan_active = True
        self._seen: dict[str, hci.Address] = {}
        self._recovery: asyncio.Task[None] | None = None

    @property
    def device(self) -> Device:
        """The Bumble Device; a BleakError when the radio is not open."""
        if self.state != "open" or self._device is None:
            raise BleakError(f"Bumble radio {self.transport!r} is {self.state}")
        return self._device

    async def ensure_open(self) -> None:
        """Open the transport and power the controller on; again after the transport was lost."""
        async with self._open_lock:
            if self.state == "closed":
                raise BleakError(f"Bumble radio {self.transport!r} is closed")
            if self.state == "open":
                return
            await self._release_transport()
            await self._open()
            self.state = "open"
            if self._listeners:  # scanners that were listening when the radio was lost
                with bleak_errors("restarting the scan"):
                    await self.device.start_scanning(
                        active=self._scan_active, filter_duplicates=False
                    )

    async def _open(self) -> None:
        try:
            hci_transport = await open_transport(self.transport)
        except Exception as exc:
            # Each transport fails its own way (OSError, USB, serial, Bumble errors): for the
            # driver they all mean that this radio is not there.
            raise BleakBluetoothNotAvailableError(
                f"cannot open Bumble transport {self.transport!r}: {exc!r}",
                BleakBluetoothNotAvailableReason.NO_BLUETOOTH,
            ) from exc
        device = Device.with_hci(
            "tollgate-gateway",
            hci.Address.generate_static_address(),
            hci_transport.source,
            hci_transport.sink,
        )
        try:
            async with asyncio.timeout(POWER_ON_TIMEOUT):
                await device.power_on()
        except BaseException as exc:
            await hci_transport.close()
            if isinstance(exc, TimeoutError | core.BaseBumbleError):
                raise BleakBluetoothNotAvailableError(
                    f"the controller on {self.transport!r} did not power on: {exc!r}",
                    BleakBluetoothNotAvailableReason.UNKNOWN,
                ) from exc
            raise
        device.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        hci_transport.source.terminated.add_done_callback(self._on_transport_lost)
        self._hci, self._device = hci_transport, device
        log.info("Bumble radio %s open (address %s)", self.transport, device.random_address)

    def _on_transport_lost(self, terminated: "asyncio.Future[None]") -> None:
        if (
            self.state != "open"
            or self._hci is None
            or terminated is not self._hci.source.terminated
        ):
            return
        # Bumble has already ended the connections (their clients saw a disconnection).
        self.state = "lost"
        log.warning("Bumble radio %s lost its transport", self.transport)
        if self._listeners and self._recovery is None:
            self._recovery = self.loop.create_task(self._recover(), name=f"bumble:{self.transport}")

    async def _recover(self) -> None:
        """Reopen a lost radio for the scanners still listening, with a doubling delay."""
        delay = RECOVER_INITIAL
        try:
            while self.state == "lost":
                await asyncio.sleep(delay)
                try:
                    await self.ensure_open()
                except BleakError as exc:
                    log.warning("Bumble radio %s still gone: %s", self.transport, exc)
                    delay = min(delay * 2, RECOVER_MAX)
        finally:
            self._recovery = None

    async def _release_transport(self) -> None:
        device, hci_transport = self._device, self._hci
        self._device = self._hci = None
        if device is not None:
            device.remove_listener(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        if hci_transport is not None:
            await hci_transport.close()
            # Let the transport report its end before the loop may close.
            await asyncio.wait([hci_transport.source.terminated], timeout=CLOSE_TIMEOUT)

    async def close(self) -> None:
        """Reset the controller (ending every link) and close the transport, for good."""
        if self._recovery is not None:
            self._recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery
        async with self._open_lock:
            was_open, self.state = self.state == "open", "closed"
            if was_open and self._device is not None:
                await self._power_off_quietly(self._device)
            await self._release_transport()

    async def _power_off_quietly(self, device: Device) -> None:
        # A controller keeps its links when its host goes away; a reset ends them now rather
        # than at the peers' supervision timeout. Powering off then ends the Bumble
        # connections, so their clients see a disconnection. Best effort: the transport may
        # be gone already.
        with contextlib.suppress(TimeoutError, core.BaseBumbleError, OSError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await device.host.send_sync_command(hci.HCI_Reset_Command())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await device.power_off()

    def address_of(self, address: str) -> hci.Address:
        """The typed address of a peer seen advertising, or a random one parsed from text."""
        if (seen := self._seen.get(address.upper())) is not None:
            return seen
        try:
            return hci.Address(address, hci.Address.RANDOM_DEVICE_ADDRESS)
        except (core.InvalidArgumentError, ValueError) as exc:
            raise BleakError(f"{address!r} is not a Bluetooth address") from exc

    async def add_listener(self, listener: AdvertisementListener, *, active: bool) -> None:
        """Deliver advertisements to `listener`; the first listener starts scanning."""
        async with self._scan_lock:
            if not self._listeners:
                self._scan_active = active
                with bleak_errors("starting the scan"):
                    await self.device.start_scanning(active=active, filter_duplicates=False)
            self._listeners.append(listener)

    async def remove_listener(self, listener: AdvertisementListener) -> None:
        """Stop delivering to `listener`; the last one stops scanning (if the radio is open)."""
        async with self._scan_lock:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)
            if not self._listeners and self.state == "open" and self.device.is_scanning:
                with bleak_errors("stopping the scan"):
                    await self.device.stop_scanning()

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        self._seen[advertisement.address.to_string(with_type_qualifier=False)] = (
            advertisement.address
        )
        for listener in list(self._listeners):
            try:
                listener(advertisement)
            except Exception:
                # A scanner's callback must not break the host's packet processing.
                log.exception("advertisement listener failed")

    async def connect(self, address: hci.Address, *, within: float) -> Connection:
        """Connect as central, one attempt at a time; `within` includes waiting for the turn."""
        text = address.to_string(with_type_qualifier=False)
        deadline = self.loop.time() + within
        async with self._connect_lock:
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                raise BleakDeviceNotFoundError(text, f"no turn to connect to {text} in {within}s")
            device = self.device  # after the wait: the radio may have been reopened meanwhile
            try:
                async with asyncio.timeout(remaining + CANCEL_GRACE):
                    return await device.connect(address, timeout=remaining)
            except core.TimeoutError as exc:
                raise BleakDeviceNotFoundError(
                    text, f"{text} did not answer within {within}s"
                ) from exc
            except TimeoutError as exc:
                raise BleakError(
                    f"the controller on {self.transport!r} did not cancel the connection to "
                    f"{text}; reopen the radio"
                ) from exc
            except core.BaseBumbleError as exc:
                raise BleakError(f"connecting to {text} failed: {exc!r}") from exc


_hosts: dict[str, BumbleHost] = {}


async def shared_host(transport: str) -> BumbleHost:
    """The open host for `transport` in this process, opening it (again) when needed."""
    host = _hosts.get(transport)
    if host is None or host.state == "closed" or host.loop is not asyncio.get_running_loop():
        host = _hosts[transport] = BumbleHost(transport)
    await host.ensure_open()
    return host


async def close_host(transport: str) -> None:
    """Close the host for `transport` if one is open; later use opens a new one."""
    host = _hosts.pop(transport, None)
    if host is not None and host.loop is asyncio.get_running_loop():
        await host.close()
