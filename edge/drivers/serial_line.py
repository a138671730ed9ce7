"""SerialLine: one open serial port, read line by line, over pyserial-asyncio-fast.

The boundary between pyserial and the drivers: every pyserial or OS outcome becomes either bytes
or one of our `DriverError`s, so no `serial.SerialException` leaves this module. A port that
disappears (USB adapter or cable pulled, pty closed) shows up as EIO or EOF on read and is
raised as `DeviceUnreachable`. The port is opened with the configured baud rate, byte size,
parity and stop bits; pyserial also puts it in raw mode, so CR LF arrive unchanged.
"""

import asyncio
import contextlib
from types import TracebackType
from typing import Self

from serial_asyncio_fast import open_serial_connection

from edge.config import SerialPortConfig
from edge.errors import DeviceUnreachable
from edge.lifecycle import Lifecycle

# Longest line we buffer; a longer run without LF is handed over in pieces (and then rejected).
LINE_LIMIT = 4096


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
                limit=LINE_LIMIT,
            )
        except (OSError, ValueError) as exc:  # serial.SerialException is an OSError
            self._lifecycle.close()
            raise DeviceUnreachable(f"serial port {config.port}: cannot open: {exc}") from exc
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
