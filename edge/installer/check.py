"""`tollgate-edge check`: try every configured device once, the way the agent would reach it.

The installer's last step before starting the service: each probe uses the real driver or
transport (a Modbus poll of every point, opening the serial port and, for an IT-100, a 000 poll
answered by 500, an MQTT connect with the configured TLS and credentials plus a subscription to
each device topic, a BLE scan for the configured lock ids, GET /healthz of the collector). All
probes run at once, each within the timeout, so one dead device costs its timeout, not the sum.

A probe never raises: every failure becomes a `ProbeResult` with the reason, so the table shows
all problems in one go. A serial port the running agent holds (the agent opens its ports
exclusively: serial panels and Modbus RTU lines alike) is reported as held, by the agent when the
lock's pid is the one in `data_dir/status.json`, not probed behind the agent's back.
"""

import asyncio
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from edge.config import (
    It100DeviceConfig,
    LinesDeviceConfig,
    ModbusDeviceConfig,
    SiteConfig,
)
from edge.config_ble import BleLockDeviceConfig
from edge.config_mqtt import MqttConfig, MqttDeviceConfig
from edge.errors import DeviceUnreachable, GatewayError, PortHeld

OK = "\N{CHECK MARK}"
FAILED = "\N{BALLOT X}"
# Opening a BLE radio (a USB dongle, BlueZ over D-Bus) takes a while before listening starts.
BLE_SETUP = 10.0
IT100_POLL = "000"
CLOUD = "http"  # the driver column of the collector's row
IT100_ACK = "500"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One row of the table: the device, where it is, and why it failed (None when it worked)."""

    device: str
    driver: str
    address: str
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the device answered as configured."""
        return self.reason is None


async def check_site(config: SiteConfig, *, within: float) -> list[ProbeResult]:
    """Probe the cloud and every device once, concurrently; rows in config order."""
    probes: list[Awaitable[list[ProbeResult]]] = [_probe_cloud(config, within)]
    data_dir = config.gateway.data_dir
    for device in config.device:
        if isinstance(device, ModbusDeviceConfig):
            probe = _modbus(device)
            if device.transport == "rtu":  # a serial port too: its holder is named the same way
                probe = _held_named(probe, data_dir)
            probes.append(_single(device.id, "modbus", device.url, within, probe))
        elif isinstance(device, It100DeviceConfig):
            probe = _held_named(_it100(device), data_dir)
            probes.append(_single(device.id, "it100", device.port, within, probe))
        elif isinstance(device, LinesDeviceConfig):
            probe = _held_named(_serial(device), data_dir)
            probes.append(_single(device.id, "lines", device.port, within, probe))
    mqtt = [d for d in config.device if isinstance(d, MqttDeviceConfig)]
    if mqtt and config.mqtt is not None:
        probes.append(_probe_mqtt(config.mqtt, mqtt, within))
    locks = [d for d in config.device if isinstance(d, BleLockDeviceConfig)]
    if locks:
        probes.append(_probe_locks(config.ble.backend, locks, within))
    rows = [row for group in await asyncio.gather(*probes) for row in group]
    order = {device.id: i for i, device in enumerate(config.device)}
    return sorted(rows, key=lambda row: -1 if row.driver == CLOUD else order[row.device])


async def _single(
    device: str,
    driver: str,
    address: str,
    within: float,
    probe: Callable[[], Awaitable[None]],
) -> list[ProbeResult]:
    return [ProbeResult(device, driver, address, await _reason(probe, within))]


async def _reason(probe: Callable[[], Awaitable[None]], within: float) -> str | None:
    """Run one probe within `within`; its failure as one line (None when it passed)."""
    try:
        async with asyncio.timeout(within):
            await probe()
    except TimeoutError:
        return f"no answer within {within:g}s"
    except GatewayError as exc:
        return str(exc)
    except (OSError, ssl.SSLError, httpx.HTTPError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _modbus(device: ModbusDeviceConfig) -> Callable[[], Awaitable[None]]:
    async def probe() -> None:
        from edge.drivers.modbus import ModbusDriver  # imports pymodbus

        async with ModbusDriver(device) as driver:
            await driver.poll()

    return probe


def _serial(device: LinesDeviceConfig) -> Callable[[], Awaitable[None]]:
    async def probe() -> None:
        from edge.drivers.serial_line import SerialLine

        async with SerialLine(device):
            pass

    return probe


def _it100(device: It100DeviceConfig) -> Callable[[], Awaitable[None]]:
    async def probe() -> None:
        from edge.codecs.it100 import It100FrameError, decode_frame, encode_frame
        from edge.drivers.serial_line import SerialLine

        async with SerialLine(device) as line:
            await line.write(encode_frame(IT100_POLL))
            while True:  # the panel may be streaming events: wait for the acknowledge
                try:
                    frame = decode_frame(await line.read_line())
                except It100FrameError:
                    continue
                if frame.command == IT100_ACK and frame.data == IT100_POLL:
                    return

    return probe


def _held_named(
    probe: Callable[[], Awaitable[None]], data_dir: Path
) -> Callable[[], Awaitable[None]]:
    """`probe`, with a held port's holder named: the running agent when the pids agree."""

    async def named() -> None:
        try:
            await probe()
        except PortHeld as exc:
            raise DeviceUnreachable(_held_reason(exc, _agent_pid(data_dir))) from exc

    return named


def _held_reason(exc: PortHeld, agent: int | None) -> str:
    where = f"serial port {exc.port}: held by another process"
    if agent is not None and exc.holder == agent:
        return f"{where}, the running agent (pid {agent}); `tollgate-edge status` shows its reads"
    if exc.holder is not None:
        return str(exc)
    if agent is not None:
        return f"{where} (the running agent, pid {agent}?)"
    return f"{where} (the running agent?)"


def _agent_pid(data_dir: Path) -> int | None:
    """The pid in the agent's status.json when that process is alive and running."""
    from edge.status import STATUS_FILE, read_status  # the agent's modules: only when needed

    try:
        status = read_status(data_dir / STATUS_FILE)
    except GatewayError:
        return None
    pid = status.get("pid")
    if not isinstance(pid, int) or pid <= 0 or status.get("state") == "stopped":
        return None
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, run by another user (the tollgate service user)
        return pid
    return pid


async def _probe_cloud(config: SiteConfig, within: float) -> list[ProbeResult]:
    url = f"{config.gateway.cloud_url}/healthz"

    async def probe() -> None:
        async with httpx.AsyncClient(timeout=within) as client:
            response = await client.get(url)
        if response.status_code != 200:
            raise GatewayError(f"GET {url} answered {response.status_code}")

    return [ProbeResult("cloud", CLOUD, url, await _reason(probe, within))]


async def _probe_mqtt(
    config: MqttConfig, devices: list[MqttDeviceConfig], within: float
) -> list[ProbeResult]:
    """Connect once and subscribe to each device's topic; a refused topic fails its device."""
    refused: dict[str, str] = {}

    async def probe() -> None:
        import aiomqtt

        client = aiomqtt.Client(
            config.host,
            config.port,
            # Not the agent's own id: the check must not take over its persistent session.
            identifier=f"{config.client_id}-check"[:64],
            clean_session=True,
            timeout=within,
            username=config.username,
            password=await asyncio.to_thread(_read_password, config),
            tls_context=await asyncio.to_thread(_tls_context, config) if config.tls else None,
        )
        try:
            async with client:
                for device in devices:
                    granted = await client.subscribe(device.topic, qos=1)
                    if any(_refused(code) for code in granted):
                        refused[device.id] = f"the broker refused a subscription to {device.topic}"
        except aiomqtt.MqttError as exc:
            raise DeviceUnreachable(f"MQTT broker {config.url}: {exc}") from exc

    reason = await _reason(probe, within)
    return [
        ProbeResult(d.id, "mqtt", f"{config.url} {d.topic}", reason or refused.get(d.id))
        for d in devices
    ]


def _read_password(config: MqttConfig) -> str | None:
    if config.password_file is None:
        return None
    try:
        return config.password_file.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise DeviceUnreachable(
            f"cannot read password_file {config.password_file}: {exc.strerror}"
        ) from exc


def _tls_context(config: MqttConfig) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
        if config.cert_file is not None and config.key_file is not None:
            context.load_cert_chain(config.cert_file, config.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise DeviceUnreachable(f"cannot load the MQTT TLS files: {exc}") from exc
    return context


def _refused(code: object) -> bool:
    """A SUBACK return code of 0x80 or more refuses the subscription (MQTT 3.1.1 3.9.3)."""
    value = getattr(code, "value", code)
    return isinstance(value, int) and value >= 0x80


async def _probe_locks(
    backend: str, locks: list[BleLockDeviceConfig], within: float
) -> list[ProbeResult]:
    """One scan for `within` on the configured radio; a lock not heard fails its row."""
    heard: set[int] = set()

    async def probe() -> None:
        from bleak.exc import BleakError

        from edge.installer.scan_ble import scan_locks  # imports bleak

        try:
            heard.update(lock.lock_id for lock in await scan_locks(backend, seconds=within))
        except (BleakError, ValueError) as exc:
            raise DeviceUnreachable(f"BLE radio {backend!r}: {exc}") from exc

    reason = await _reason(probe, within + BLE_SETUP)
    return [
        ProbeResult(
            lock.id,
            "ble-lock",
            lock.address,
            reason or _unheard(lock, heard, within),
        )
        for lock in locks
    ]


def _unheard(lock: BleLockDeviceConfig, heard: set[int], within: float) -> str | None:
    return None if lock.lock_id in heard else f"lock {lock.lock_id} not heard in {within:g}s"


def format_results(results: list[ProbeResult]) -> str:
    """The table the installer reads: device, driver, address, then a tick or the reason."""
    width = max([len(row.device) for row in results] + [6])
    address_width = min(max([len(row.address) for row in results] + [7]), 48)
    lines = [f"{'device':{width}}  {'driver':8}  {'address':{address_width}}  result"]
    for row in results:
        result = OK if row.ok else f"{FAILED} {row.reason}"
        lines.append(
            f"{row.device:{width}}  {row.driver:8}  {row.address:{address_width}}  {result}"
        )
    failed = sum(not row.ok for row in results)
    lines.append(f"{len(results) - failed} of {len(results)} ok")
    return "\n".join(lines) + "\n"
