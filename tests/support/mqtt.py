"""MQTT test parts on real transports: a private Mosquitto process, a TCP proxy that can cut a
connection abruptly (no DISCONNECT, as when a gateway loses power), and session clean-up."""

import asyncio
import contextlib
import ipaddress
import os
import re
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiomqtt
import orjson
import pytest

from firmware_sims.mqtt_device import ExpectedEvent
from tests.support.waiting import eventually, free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
IN_CI = os.environ.get("CI", "").lower() == "true"


def unique(label: str) -> str:
    """A name no other test (or earlier run) uses: client ids, topic prefixes."""
    return f"{label}-{uuid.uuid4().hex[:10]}"


async def forget_session(url: str, client_id: str) -> None:
    """End a persistent session on the broker (connect once with a clean session)."""
    host, port = _host_port(url)
    with contextlib.suppress(aiomqtt.MqttError):
        async with aiomqtt.Client(host, port, identifier=client_id, clean_session=True, timeout=5):
            pass


def _host_port(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[1]
    host, _, port = rest.rpartition(":")
    return host, int(port)


def require_mosquitto() -> str:
    """The Mosquitto binary; a failure under CI=true, a skip elsewhere."""
    if not Path(MOSQUITTO).exists():
        if IN_CI:
            pytest.fail(f"Mosquitto is required under CI=true but {MOSQUITTO} is missing")
        pytest.skip(f"Mosquitto not installed at {MOSQUITTO}")
    return MOSQUITTO


class PrivateMosquitto:
    """A Mosquitto process of one test: loopback port, persistence, every packet logged.

    Stopping it is a clean broker shutdown (SIGTERM): it saves sessions and queued messages to
    its persistence file and loads them again on `start()`, like a broker restart in service.
    """

    def __init__(
        self, workdir: Path, *, extra_config: str = "", allow_anonymous: bool = True
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / "mosquitto.log"
        self.config_path = workdir / "mosquitto.conf"
        self.extra_config = extra_config
        self.allow_anonymous = allow_anonymous
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"{self.extra_config}"
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            f"log_dest file {self.log_path}\n"
            "log_type all\n"
            "user root\n"
        )
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        self._process = await asyncio.create_subprocess_exec(
            require_mosquitto(),
            "-c",
            str(self.config_path),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await eventually(self._listening, what=f"mosquitto on port {self.port}")

    async def stop(self) -> None:
        """Shut the broker down cleanly (it saves its sessions)."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(15):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()

    async def _listening(self) -> bool:
        if self._process is None or self._process.returncode is not None:
            raise AssertionError(f"mosquitto exited:\n{self.log_text()[-2000:]}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        await writer.wait_closed()
        return True

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def packets(self, client_id: str) -> list[tuple[str, int]]:
        """("PUBLISH", mid) sent to `client_id` and ("PUBACK", mid) received from it, in order."""
        pattern = re.compile(
            rf"Sending PUBLISH to {re.escape(client_id)} \(d\d, q1, r\d, m(\d+),"
            rf"|Received PUBACK from {re.escape(client_id)} \(Mid: (\d+)"
        )
        found = []
        for match in pattern.finditer(self.log_text()):
            if match.group(1) is not None:
                found.append(("PUBLISH", int(match.group(1))))
            else:
                found.append(("PUBACK", int(match.group(2))))
        return found


class TcpProxy:
    """Forwards TCP connections to a target; `cut()` resets them all at once, like a power cut."""

    def __init__(self, target: str) -> None:
        self.target = _host_port(target)
        self.port = 0
        self.refusing = False
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)

    def cut(self, *, refuse: bool = True) -> None:
        """Reset every connection (RST, no FIN); with `refuse`, new ones too until `restore`."""
        self.refusing = refuse
        for pair in list(self._links):
            for writer in pair:
                _reset(writer)
        self._links.clear()

    def restore(self) -> None:
        self.refusing = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        pair = (writer, up_writer)
        self._links.add(pair)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(_pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    with contextlib.suppress(OSError):
        sink.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


Summary = tuple[str, str, str, str | None, Decimal | None, str | None, datetime, str]


def stored_summary(event: dict[str, Any]) -> Summary:
    """An outbox or cloud event as the simulator would describe it (quantities as Decimal)."""
    quantity = event["quantity"]
    return (
        event["device_id"],
        event["name"],
        event["kind"],
        event["channel"],
        None if quantity is None else Decimal(quantity),
        event["unit"],
        datetime.fromisoformat(event["occurred_at"]),
        event["attrs"]["message_id"],
    )


def expected_summary(event: ExpectedEvent) -> Summary:
    """What the simulator published, in the same shape."""
    return (
        event.device_id,
        event.name,
        event.kind,
        event.channel,
        event.quantity,
        event.unit,
        event.occurred_at,
        event.message_id,
    )


def outbox_events(data_dir: Path) -> list[dict[str, Any]]:
    """Every event in the outbox file, in seq order (what another process sees: committed)."""
    path = data_dir / "outbox.sqlite"
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute("SELECT wire FROM events ORDER BY seq").fetchall()
    except sqlite3.OperationalError:  # the agent has not created its tables yet
        return []
    finally:
        db.close()
    return [orjson.loads(wire) for (wire,) in rows]


def write_password_file(path: Path, username: str, password: str) -> Path:
    """A Mosquitto password file (hashed by mosquitto_passwd)."""
    subprocess.run(
        [
            shutil.which("mosquitto_passwd") or "mosquitto_passwd",
            "-b",
            "-c",
            str(path),
            username,
            password,
        ],
        check=True,
        capture_output=True,
    )
    return path


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and a server certificate for `localhost` and 127.0.0.1 (PEM files)."""

    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """Issue a CA and a server certificate signed by it, valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tollgate test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return files
