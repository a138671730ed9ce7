"""SerialLine: one open serial port, read line by line, over pyserial-asyncio-fast.

The boundary between pyserial and the drivers: every pyserial or OS outcome becomes either bytes
or one of our `DriverError`s, so no `serial.SerialException` leaves this module. A port that
disappears (USB adapter or cable pulled, pty closed) shows up as EIO or EOF on read and is
raised as `DeviceUnreachable`. The port is opened with the configured baud rate, byte size,
parity and stop bits; pyserial also puts it in raw mode, so CR LF arrive unchanged.

The port is opened exclusively (pyserial's `exclusive=True`: an flock on Linux), so a second
opener, such as `tollgate-edge check` while the agent runs, is refused at once instead of
sharing the line and stealing the agent's bytes (pyserial then calls one of the two readers
"disconnected"). Opening fails with one of three named reasons: the port is held by another
process (`PortHeld`, with the holder's pid from /proc/locks when it is there), there is no such
device, or permission is denied.
"""

import asyncio
import contextlib
import errno
import grp
import os
from pathlib import Path
from types import TracebackType
from typing import Self

from serial_asyncio_fast import open_serial_connection

from edge.config import SerialPortConfig
from edge.errors import DeviceUnreachable, PortHeld
from edge.lifecycle import Lifecycle

# Longest line we buffer; a longer run without LF is handed over in pieces (and then rejected).
LINE_LIMIT = 4096
# What the kernel says when opening fails: flock refused (EAGAIN = EWOULDBLOCK on Linux) or a
# tty in TIOCEXCL mode (EBUSY); no device behind the name; not allowed.
HELD = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY})
ABSENT = frozenset({errno.ENOENT, errno.ENXIO, errno.ENODEV})
DENIED = frozenset({errno.EACCES, errno.EPERM})
# Every lock on the system, one a line: "1: FLOCK  ADVISORY  WRITE 812 00:1a:3 0 EOF".
PROC_LOCKS = Path("/proc/locks")


class SerialLine:
    """An open serial port; `async with` opens it, `read_line()` and `write()` use it."""

    def __init__(self, config: SerialPortConfig) -> None:
        self._config = config
        self._lifecycle = Lifecycle(f"SerialLine on {config.port}")
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Self:
        """Open the port; raises `DeviceUnreachable` if it cannot."""
        self._lifecycle.enter()
        config = self._config
        try:
            self._reader, self._writer = await open_serial_connection(
                url=config.port,
                baudrate=config.baudrate,
                bytesize=config.bytesize,
                parity=config.parity,
                stopbits=config.stopbits,
                exclusive=True,
                limit=LINE_LIMIT,
            )
        except (OSError, ValueError) as exc:  # serial.SerialException is an OSError
            self._lifecycle.close()
            raise open_error(config.port, exc) from exc
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the port and wait until pyserial has let go of it."""
        self._lifecycle.close()
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            # A lost port finishes closing with its error; it is already reported by read_line.
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def read_line(self) -> bytes:
        """The next line, LF included; raises `DeviceUnreachable` when the port is gone."""
        reader = self._open()[0]
        try:
            return await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            raise DeviceUnreachable(f"serial port {self._config.port}: closed (EOF)") from exc
        except asyncio.LimitOverrunError as exc:
            # No LF within LINE_LIMIT bytes: hand over what is there, the caller rejects it.
            return await reader.readexactly(max(exc.consumed, 1))
        except OSError as exc:
            raise DeviceUnreachable(f"serial port {self._config.port}: lost: {exc}") from exc

    async def write(self, data: bytes) -> None:
        """Send bytes; raises `DeviceUnreachable` when the port is gone."""
        writer = self._open()[1]
        try:
            writer.write(data)
            await writer.drain()
        except OSError as exc:  # ConnectionResetError from drain, SerialException
            raise DeviceUnreachable(f"serial port {self._config.port}: lost: {exc}") from exc

    def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            raise RuntimeError(f"SerialLine on {self._config.port} is {self._lifecycle.state}")
        return self._reader, self._writer


def open_error(port: str, exc: OSError | ValueError) -> DeviceUnreachable:
    """Why `port` did not open, in the installer's words (pyserial keeps the OS errno)."""
    code = getattr(exc, "errno", None)
    if code in HELD:
        return PortHeld(port, holder=lock_holder(port))
    if code in ABSENT:
        return DeviceUnreachable(f"serial port {port}: no such device (unplugged? another name?)")
    if code in DENIED:
        return DeviceUnreachable(f"serial port {port}: permission denied{_group_hint(port)}")
    return DeviceUnreachable(f"serial port {port}: cannot open: {exc}")


def lock_holder(port: str) -> int | None:
    """The pid holding an flock on `port`, read from /proc/locks; None when it is not listed."""
    try:
        found = os.stat(port)
        table = PROC_LOCKS.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    where = f"{os.major(found.st_dev):02x}:{os.minor(found.st_dev):02x}:{found.st_ino}"
    for line in table.splitlines():
        fields = line.split()  # a waiter's line has "->" after the id: fields[1] is not FLOCK
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == where:
            pid = int(fields[4]) if fields[4].isdigit() else 0
            return pid or None  # 0: the holder is outside our pid namespace
    return None


def _group_hint(port: str) -> str:
    """The " (group dialout may open it: ...)" suffix when the port's group may use it."""
    try:
        found = os.stat(port)
        group = grp.getgrgid(found.st_gid).gr_name
    except (OSError, KeyError):
        return ""
    if found.st_mode & 0o060 != 0o060:
        return ""
    return f" (group {group} may open it: run as a member of {group})"
