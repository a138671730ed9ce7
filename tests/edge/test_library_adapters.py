"""The library adapters against the libraries as installed: a pymodbus upgrade or an aiomqtt
upgrade that takes away (or stops honouring) an internal our drivers rely on fails here, with a
message naming the adapter, before it fails a poll.

- `edge.drivers.pymodbus_internals.RequestLimits`: a real pymodbus client against a real
  pymodbus server (the RTU panel on a pseudo-terminal, whose absent units never answer).
- `edge.drivers.pymodbus_internals.OpenFailure`: a real RTU client opening a pseudo-terminal
  that is locked (an flock, as pyserial's `exclusive=True` takes it), missing, then free.
- `edge.drivers.modbus._BadCrcWatch` (public `trace_packet=` hook, pymodbus's own RTU framer):
  real frames through pymodbus's `FramerRTU`.
- `edge.drivers.aiomqtt_internals`: a real aiomqtt client against the shared Mosquitto.

The tests of each adapter's own check use plain stand-in objects that lack the internal: that
is the point of them (no installed library lacks it).
"""

import asyncio
import errno
import fcntl
import os
import re
from collections.abc import AsyncIterator
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import aiomqtt
import paho.mqtt.client as paho
import pytest
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.framer import FramerRTU

from edge.drivers.aiomqtt_internals import acknowledge, enable_manual_acks
from edge.drivers.modbus import _BadCrcWatch
from edge.drivers.pymodbus_internals import OpenFailure, RequestLimits
from edge.errors import LibraryMismatch
from firmware_sims.modbus_panel import ModbusPanel, Scenario, SimGauge
from tests.support.mqtt import forget_session, unique

PYMODBUS = version("pymodbus")
AIOMQTT = f"aiomqtt {version('aiomqtt')} with paho-mqtt {version('paho-mqtt')}"
READ_HOLDING = 0x03

# --- pymodbus: RequestLimits ---------------------------------------------------------------


async def test_request_limits_find_their_internals_on_both_client_kinds() -> None:
    """The shape: `ctx.retries` (int) and `ctx.comm_params.timeout_connect` (seconds)."""
    clients = [
        AsyncModbusTcpClient("127.0.0.1", port=9, timeout=1, retries=0, reconnect_delay=0),
        AsyncModbusSerialClient("/dev/null", timeout=1, retries=0, reconnect_delay=0),
    ]
    for client in clients:
        RequestLimits(client).set(timeout=0.25, retries=4)  # raises LibraryMismatch if not
        where = f"pymodbus_internals.RequestLimits on {type(client).__name__}, pymodbus {PYMODBUS}"
        assert client.ctx.retries == 4, where
        assert client.ctx.comm_params.timeout_connect == 0.25, where


@pytest.fixture
async def rtu_panel() -> AsyncIterator[ModbusPanel]:
    """A real pymodbus RTU server on a pty: unit 1 answers, every other unit stays silent."""
    scenario = Scenario(gauges=(SimGauge("g", "holding", 0, "uint16", initial=7),))
    async with ModbusPanel(scenario=scenario, rtu=True, units=(1,)) as panel:
        yield panel


async def test_request_limits_govern_the_requests_of_a_real_client(rtu_panel: ModbusPanel) -> None:
    """Built with a 60 s timeout and no retries, the client follows what the adapter sets: the
    server sees 1 + retries attempts at a silent unit, each cut short by the set timeout (the
    wait_for limit is a hang guard far above both, not a speed assertion)."""
    client = AsyncModbusSerialClient(
        rtu_panel.serial_path, baudrate=9600, timeout=60, retries=0, reconnect_delay=0
    )
    limits = RequestLimits(client)
    where = f"edge.drivers.pymodbus_internals.RequestLimits with pymodbus {PYMODBUS}"
    try:
        limits.set(timeout=2, retries=0)
        assert await client.connect(), f"cannot open {rtu_panel.serial_path}"
        answer = await client.read_holding_registers(0, count=1, device_id=1)
        assert answer.registers == [7]
        for retries in (2, 0):
            limits.set(timeout=0.2, retries=retries)
            before = rtu_panel.requests[READ_HOLDING]
            try:
                async with asyncio.timeout(20):
                    with pytest.raises(ModbusIOException):
                        await client.read_holding_registers(0, count=1, device_id=2)
            except TimeoutError:
                pytest.fail(f"{where}: the set timeout (0.2 s) no longer bounds a request")
            attempts = rtu_panel.requests[READ_HOLDING] - before
            assert attempts == retries + 1, f"{where}: set retries={retries}, sent {attempts}"
    finally:
        client.close()


def test_request_limits_refuse_a_client_without_the_internals() -> None:
    """Plain stand-ins for a pymodbus that moved them: the check names adapter and version."""
    missing_ctx = SimpleNamespace()
    bad_retries = SimpleNamespace(ctx=SimpleNamespace(retries="3", comm_params=None))
    no_timeout = SimpleNamespace(ctx=SimpleNamespace(retries=3, comm_params=SimpleNamespace()))
    cases = [
        (missing_ctx, r"SimpleNamespace has no `ctx`"),
        (bad_retries, r"`ctx\.retries` is '3', not the int retry count"),
        (no_timeout, r"`ctx\.comm_params\.timeout_connect` is None, not seconds"),
    ]
    for stand_in, detail in cases:
        with pytest.raises(LibraryMismatch) as caught:
            RequestLimits(stand_in)  # type: ignore[arg-type]
        message = str(caught.value)
        assert message.startswith(
            f"edge.drivers.pymodbus_internals.RequestLimits does not fit pymodbus {PYMODBUS}: "
        )
        assert "(checked with pymodbus 3.16.1;" in message
        assert re.search(detail, message), message


# --- pymodbus: OpenFailure ------------------------------------------------------------------


async def test_open_failure_keeps_why_a_real_client_did_not_open(tmp_path: Path) -> None:
    """pymodbus opens the port exclusively and drops the reason; the adapter keeps it: EAGAIN
    while another open file holds the flock, ENOENT for a missing port, None once it opens."""
    where = f"edge.drivers.pymodbus_internals.OpenFailure with pymodbus {PYMODBUS}"
    master, slave = os.openpty()
    port = os.ttyname(slave)
    holder = os.open(port, os.O_RDWR | os.O_NOCTTY)
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    client = AsyncModbusSerialClient(port, timeout=1, retries=0, reconnect_delay=0)
    failure = OpenFailure(client)
    missing = AsyncModbusSerialClient(
        str(tmp_path / "ttyUSB9"), timeout=1, retries=0, reconnect_delay=0
    )
    missing_failure = OpenFailure(missing)
    try:
        assert failure.error is None
        assert not await client.connect(), f"{where}: pymodbus opened a port another file locks"
        assert failure.error is not None, f"{where}: the failed open's OSError was not kept"
        assert failure.error.errno in (errno.EAGAIN, errno.EWOULDBLOCK), failure.error
        assert not await missing.connect()
        assert missing_failure.error is not None, f"{where}: the failed open's OSError was lost"
        assert missing_failure.error.errno == errno.ENOENT, missing_failure.error
        os.close(holder)
        holder = -1
        assert await client.connect(), f"cannot open {port} once it is free"
        assert failure.error is None, f"{where}: an open that worked left an error behind"
    finally:
        client.close()
        for fd in (holder, master, slave):
            if fd >= 0:
                os.close(fd)


def test_open_failure_refuses_a_client_without_the_internals() -> None:
    """Plain stand-ins for a pymodbus without `ctx` or without its `call_create` opener."""
    cases = [
        (SimpleNamespace(), r"SimpleNamespace has no `ctx`"),
        (
            SimpleNamespace(ctx=SimpleNamespace(call_create=None)),
            r"`ctx\.call_create` is None, not the connect coroutine factory",
        ),
    ]
    for stand_in, detail in cases:
        with pytest.raises(LibraryMismatch) as caught:
            OpenFailure(stand_in)  # type: ignore[arg-type]
        message = str(caught.value)
        assert message.startswith(
            f"edge.drivers.pymodbus_internals.OpenFailure does not fit pymodbus {PYMODBUS}: "
        )
        assert "(checked with pymodbus 3.16.1;" in message
        assert re.search(detail, message), message


# --- pymodbus: the CRC watch (public trace_packet hook) --------------------------------------


def _rtu_answer(value: int) -> bytes:
    """Unit 1's answer to "read 1 holding register": 01 03 02 <value>, then its CRC."""
    body = bytes([0x01, 0x03, 0x02]) + value.to_bytes(2, "big")
    return body + FramerRTU.compute_CRC(body).to_bytes(2, "big")


def test_bad_crc_watch_counts_what_pymodbus_framer_drops() -> None:
    """pymodbus's `FramerRTU.decode` still reports a bad CRC as "consumed, no frame"."""
    bad: list[int] = []
    watch = _BadCrcWatch()
    watch.on_bad_crc = lambda: bad.append(1)
    good = _rtu_answer(7)
    corrupted = good[:-1] + bytes([good[-1] ^ 0xFF])
    where = f"edge.drivers.modbus._BadCrcWatch with pymodbus {PYMODBUS}"
    assert watch(False, good) == good and not bad, f"{where}: a sound frame counted as bad"
    assert watch(False, good[:4]) == good[:4] and not bad, f"{where}: half a frame counted"
    assert watch(True, corrupted) == corrupted and not bad, f"{where}: a sent frame counted"
    assert watch(False, corrupted) == corrupted, where
    assert bad == [1], f"{where}: pymodbus's RTU framer no longer drops a bad CRC as we read it"


# --- aiomqtt: manual acknowledgement -----------------------------------------------------------


def _client(broker: str, identifier: str) -> aiomqtt.Client:
    parts = urlsplit(broker)
    return aiomqtt.Client(
        parts.hostname or "127.0.0.1",
        parts.port or 1883,
        identifier=identifier,
        clean_session=False,
        timeout=10,
    )


async def _next_message(client: aiomqtt.Client, *, missing: str) -> aiomqtt.Message:
    try:
        async with asyncio.timeout(15):  # a hang guard, not a speed assertion
            return await anext(aiter(client.messages))
    except TimeoutError:
        pytest.fail(missing)


async def test_manual_acks_hold_the_puback_until_acknowledge(mqtt_broker: str) -> None:
    """A real aiomqtt client on the shared Mosquitto, in a persistent session: a QoS 1 message
    never acknowledged comes again on the next connection; once acknowledged it does not (the
    next message after reconnecting is a new one)."""
    gateway, topic = unique("adapter-gw"), f"{unique('tollgate-test')}/adapters"
    where = f"edge.drivers.aiomqtt_internals with {AIOMQTT}"

    async def publish(payload: bytes) -> None:
        async with _client(mqtt_broker, unique("adapter-device")) as device:
            await device.publish(topic, payload, qos=1)

    try:
        first = _client(mqtt_broker, gateway)
        enable_manual_acks(first)
        async with first:
            await first.subscribe(topic, qos=1)
            await publish(b"one")
            received = await _next_message(first, missing="the broker delivered nothing")
            assert received.payload == b"one"
        again = _client(mqtt_broker, gateway)
        enable_manual_acks(again)
        async with again:
            redelivered = await _next_message(
                again, missing=f"{where}: paho acknowledged the message by itself"
            )
            assert redelivered.payload == b"one", f"{where}: paho acknowledged by itself"
            result = acknowledge(again, mid=redelivered.mid, qos=redelivered.qos)
            assert result == paho.MQTT_ERR_SUCCESS, f"{where}: ack returned {result!r}"
        last = _client(mqtt_broker, gateway)
        enable_manual_acks(last)
        async with last:
            await publish(b"two")
            following = await _next_message(last, missing="the broker delivered nothing")
            assert following.payload == b"two", f"{where}: the acknowledged message came again"
            acknowledge(last, mid=following.mid, qos=following.qos)
    finally:
        await forget_session(mqtt_broker, gateway)


class _PahoWithoutAck(paho.Client):
    """A paho client of a release that dropped `ack` (a stand-in)."""

    ack = None  # type: ignore[assignment]


def test_manual_acks_refuse_a_client_without_its_paho_client() -> None:
    """Plain stand-ins for an aiomqtt that renamed `_client` or wraps something else, and for a
    paho-mqtt without `ack`."""
    no_ack = _PahoWithoutAck(paho.CallbackAPIVersion.VERSION2)
    cases = [
        (SimpleNamespace(), "enable_manual_acks", "SimpleNamespace._client is NoneType, not a"),
        (SimpleNamespace(_client=object()), "acknowledge", "._client is object, not a paho"),
        (SimpleNamespace(_client=no_ack), "acknowledge", "its paho client has no `ack()`"),
    ]
    for stand_in, adapter, detail in cases:
        with pytest.raises(LibraryMismatch) as caught:
            if adapter == "enable_manual_acks":
                enable_manual_acks(stand_in)  # type: ignore[arg-type]
            else:
                acknowledge(stand_in, mid=1, qos=1)  # type: ignore[arg-type]
        message = str(caught.value)
        adapter_name = f"edge.drivers.aiomqtt_internals.{adapter}"
        assert message.startswith(f"{adapter_name} does not fit {AIOMQTT}: "), message
        assert detail in message, message
        assert "(checked with aiomqtt 2.5.1, paho-mqtt 2.2.0;" in message
