"""VirtualAir: the radio space BLE simulators live in, with the gateway's radio served over HCI.

Bumble's `LocalLink` is the air: every `Controller` attached to it hears the others' advertising
and carries their connections. The simulator process owns one `VirtualAir`:

- each simulated peripheral (a lock) is a Bumble `Device` on a controller of its own, made by
  `add_peripheral()`; the simulator then puts its GATT services and advertising on that Device;
- one more controller is the gateway's radio. It is served as a raw HCI transport on a TCP port
  (the H4 framing of a UART dongle), so the agent, in another process, opens it with
  `backend = "bumble:tcp-client:127.0.0.1:<port>"` exactly as it would open `usb:0`.

A gateway can die at any moment (SIGKILL) and come back: when its TCP connection drops, the
gateway's controller does what a powered-off dongle does to the air, every link it held ends
(the peripherals see a supervision timeout and advertise again), and the next host to connect
starts from a clean radio. One host at a time, like a USB dongle: a second connection while one
is attached is closed at once.

Bumble 0.0.236's virtual `Controller` keeps its links, scanning and pending connection across
HCI_Reset, and never answers LE_Create_Connection_Cancel with the Connection Complete event the
spec requires, so a host that times out a connect waits forever. `AirController` adds both.

`add_central()` is the in-process mode for tests: a Bumble Device on the same air with no TCP in
between.

The virtual controller sends the advertising data as its scan response too (it has no separate
scan response), so a peripheral must put its name and manufacturer data in the advertising
data itself. Peripherals advertise with random static addresses (top two bits 1), because the
link routes a connection's data by each controller's random address.
"""

import asyncio
import contextlib
import logging
from types import TracebackType
from typing import Self

from bumble import core, hci, ll
from bumble.controller import Controller
from bumble.device import Connection, Device
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import PacketParser

from edge.lifecycle import Lifecycle

log = logging.getLogger(__name__)

# What a peer sees when the other end of a link vanishes (the gateway's radio lost power).
# Bluetooth Core Vol 1, Part F, 2.8: Connection Timeout.
LINK_LOST = hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR


class AirController(Controller):
    """Bumble's virtual controller with the reset and cancel behaviour a real one has."""

    def drop_links(self, reason: int = LINK_LOST) -> None:
        """End every LE link (peers are told), stop scanning, advertising and connecting."""
        for connection in list(self.le_connections.values()):
            with contextlib.suppress(core.InvalidArgumentError):  # the peer left the air
                connection.send_ll_control_pdu(ll.TerminateInd(reason))
        self.le_connections.clear()
        self.pending_le_connection = None
        self.le_scan_enable = False
        self.le_legacy_advertiser.stop()
        for advertising_set in self.advertising_sets.values():
            advertising_set.stop()

    def on_hci_reset_command(
        self, command: hci.HCI_Reset_Command
    ) -> hci.HCI_StatusReturnParameters:
        """Bluetooth Core Vol 4, Part E, 7.3.2: a reset ends all links and activities."""
        self.drop_links()
        return super().on_hci_reset_command(command)

    def on_hci_le_create_connection_cancel_command(
        self, command: hci.HCI_LE_Create_Connection_Cancel_Command
    ) -> hci.HCI_StatusReturnParameters:
        """Vol 4, Part E, 7.8.13: a cancel is followed by LE Connection Complete (0x02)."""
        pending = self.pending_le_connection
        if pending is None:
            return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR)
        self.pending_le_connection = None
        failed = hci.HCI_LE_Connection_Complete_Event(
            status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
            connection_handle=0,
            role=hci.Role.CENTRAL,
            peer_address_type=pending.peer_address.address_type,
            peer_address=pending.peer_address,
            connection_interval=0,
            peripheral_latency=0,
            supervision_timeout=0,
            central_clock_accuracy=0,
        )
        # After the Command Complete that the caller sends when this returns.
        asyncio.get_running_loop().call_soon(self.send_hci_packet, failed)
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)


class _HciPeer(asyncio.Protocol):
    """One TCP connection carrying H4 packets between a remote host and the gateway controller."""

    def __init__(self, air: "VirtualAir") -> None:
        self._air = air
        self._transport: asyncio.Transport | None = None
        self._parser = PacketParser(self._air.gateway_controller)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if not self._air.attach(self):
            log.warning("a gateway host is already attached; refusing a second one")
            transport.close()
            return
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except core.InvalidPacketError:
            log.warning("bad HCI packet from the gateway host; dropping its connection")
            if self._transport is not None:
                self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._transport = None
            self._air.detach(self)

    def on_packet(self, packet: bytes) -> None:
        """Controller -> host; packets queued for a host that is gone are dropped."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(packet)

    def close(self) -> None:
        """Drop the connection (the air is closing)."""
        if self._transport is not None:
            self._transport.close()


def _forget_restarts(device: Device) -> None:
    # Bumble restarts advertising when a link ends (auto_restart); a device leaving the air
    # must not: the restart would wait for a controller that is gone.
    for connection in device.connections.values():
        connection.remove_all_listeners(Connection.EVENT_DISCONNECTION)


def _static_random(address: str) -> hci.Address:
    parsed = hci.Address(address, hci.Address.RANDOM_DEVICE_ADDRESS)
    if not parsed.is_static:
        raise ValueError(
            f"{address!r} is not a random static address (the first byte must be C0..FF)"
        )
    return parsed


class VirtualAir:
    """The air: peripherals on a LocalLink, and the gateway's radio on an HCI TCP port."""

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = 0) -> None:
        """`port=0` binds a free port; `port=None` serves no TCP (in-process use only)."""
        self._bind = (host, port)
        self._lifecycle = Lifecycle("VirtualAir")
        self._link = LocalLink()  # type: ignore[no-untyped-call]
        self._controllers: dict[Device, AirController] = {}
        self._gateway: AirController | None = None
        self._server: asyncio.Server | None = None
        self._peer: _HciPeer | None = None
        self._port: int | None = None
        self.gateway_sessions = 0

    async def __aenter__(self) -> Self:
        self._lifecycle.enter()
        self._gateway = AirController("gateway", link=self._link)
        host, port = self._bind
        if port is not None:
            self._server = await asyncio.get_running_loop().create_server(
                lambda: _HciPeer(self), host, port
            )
            self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lifecycle.close()
        for device in self._controllers:
            _forget_restarts(device)
        if self._server is not None:
            self._server.close()
        if self._peer is not None:
            self._peer.close()
        if self._server is not None:
            await self._server.wait_closed()
        for device in list(self._controllers):
            await self.remove(device)
        self.gateway_controller.drop_links()
        self._link.remove_controller(self.gateway_controller)

    @property
    def gateway_controller(self) -> AirController:
        """The controller a gateway host drives over TCP."""
        if self._gateway is None:
            raise RuntimeError("VirtualAir is not open: use it inside `async with`")
        return self._gateway

    @property
    def port(self) -> int:
        """The TCP port the gateway's radio is served on (the one bound when `port=0`)."""
        if self._port is None:
            raise RuntimeError("this VirtualAir serves no TCP port (open, with port not None)")
        return self._port

    @property
    def transport(self) -> str:
        """The Bumble transport spec a gateway opens, e.g. `tcp-client:127.0.0.1:40123`."""
        return f"tcp-client:{self._bind[0]}:{self.port}"

    @property
    def backend(self) -> str:
        """What goes in the site config: `[ble] backend = "bumble:tcp-client:..."`."""
        return f"bumble:{self.transport}"

    @property
    def gateway_attached(self) -> bool:
        """Whether a gateway host is connected to the HCI port right now."""
        return self._peer is not None

    def drop_gateway(self) -> None:
        """Cut the gateway host's connection, as when its dongle is pulled out."""
        if self._peer is not None:
            self._peer.close()

    def attach(self, peer: _HciPeer) -> bool:
        """A host connected: give it the gateway controller, unless one already has it."""
        if self._peer is not None or self._lifecycle.state != "open":
            return False
        self._peer = peer
        self.gateway_sessions += 1
        self.gateway_controller.host = peer
        return True

    def detach(self, peer: _HciPeer) -> None:
        """The host is gone (closed or killed): the radio stops, its links end."""
        if self._peer is not peer:
            return
        self._peer = None
        self.gateway_controller.host = None
        self.gateway_controller.drop_links()
        log.info("gateway host detached; its links are dropped")

    async def add_peripheral(self, name: str, address: str) -> Device:
        """A powered-on Device on its own controller; the caller adds GATT and advertising."""
        return await self._add_device(name, _static_random(address))

    async def add_central(
        self, name: str = "central", address: str = "C0:00:00:00:00:01"
    ) -> Device:
        """A powered-on Device in this process (no TCP), for tests that scan and connect."""
        return await self._add_device(name, _static_random(address))

    async def remove(self, device: Device) -> None:
        """Take a device off the air (out of range, battery out): its peers lose their links."""
        controller = self._controllers.pop(device)
        _forget_restarts(device)
        controller.drop_links()
        # Flushing cancels advertising restarts still in flight; the controller stays
        # attached to its host so that commands already sent get their answers.
        await device.power_off()
        self._link.remove_controller(controller)

    async def _add_device(self, name: str, address: hci.Address) -> Device:
        self._lifecycle.require_open()
        if any(device.random_address == address for device in self._controllers):
            raise ValueError(f"{address} is already on the air")
        controller = AirController(name, link=self._link)
        device = Device(
            name=name,
            address=address,
            host=Host(controller_source=controller, controller_sink=controller),
        )
        self._controllers[device] = controller
        await device.power_on()
        return device
