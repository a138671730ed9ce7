"""LinesDriver: reads a printer-port panel line by line and maps each line by a regex.

Each line is decoded with the configured encoding and mapped by `edge.codecs.lines.LineMapper`.
A line that cannot be decoded, does not match ("unmatched") or matches but makes no valid event
(the mapper's reason) is counted in `DeviceHealth.protocol`, logged with its raw bytes and
skipped; it never ends the stream. Printer ports are silent between events, so there is no poll
and no silence timeout: only a lost port (`DeviceUnreachable`) ends `events()`.
"""

import codecs
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from edge.codecs.lines import LineMapError, LineMapper
from edge.config import LinesDeviceConfig
from edge.drivers.serial_line import SerialLine
from edge.errors import ConfigError
from edge.health import DeviceHealth
from edge.lifecycle import Lifecycle
from shared.events import ClockState, EventDraft

log = logging.getLogger(__name__)


class LinesDriver:
    """Streams the usage events of one printer-port panel; one instance per connection."""

    def __init__(
        self,
        config: LinesDeviceConfig,
        *,
        health: DeviceHealth,
        clock: Callable[[], ClockState],
    ) -> None:
        try:
            codecs.lookup(config.encoding)
        except LookupError as exc:
            raise ConfigError(
                f"device {config.id!r}: unknown encoding {config.encoding!r}"
            ) from exc
        self._config = config
        self._health = health
        self._clock = clock
        self._mapper = LineMapper(config)
        self._lifecycle = Lifecycle(f"LinesDriver for {config.id!r}")
        self._stack = AsyncExitStack()
        self._line: SerialLine | None = None

    @property
    def config(self) -> LinesDeviceConfig:
        """The device this driver reads."""
        return self._config

    async def __aenter__(self) -> Self:
        """Open the port; raises `DeviceUnreachable` if it cannot."""
        self._lifecycle.enter()
        try:
            self._line = await self._stack.enter_async_context(SerialLine(self._config))
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the port."""
        await self._close()

    async def events(self) -> AsyncGenerator[EventDraft, None]:
        """Yield a draft for every line that maps, until the link fails."""
        if self._line is None:
            raise RuntimeError(f"LinesDriver for {self._config.id!r} is {self._lifecycle.state}")
        while True:
            raw = await self._line.read_line()
            draft = self._handle(raw)
            if draft is not None:
                yield draft

    def _handle(self, raw: bytes) -> EventDraft | None:
        observed_at = datetime.now(UTC)
        try:
            text = raw.decode(self._config.encoding).rstrip("\r\n")
        except UnicodeDecodeError as exc:
            self._reject("undecodable", raw, str(exc))
            return None
        if not text.strip():
            return None
        try:
            draft = self._mapper.map_line(text, observed_at=observed_at, clock=self._clock())
        except LineMapError as exc:
            self._reject(exc.reason, raw, str(exc))
            return None
        if draft is None:
            self._reject("unmatched", raw, "line does not match the pattern", level=logging.DEBUG)
        return draft

    def _reject(
        self, reason: str, raw: bytes, message: str, *, level: int = logging.WARNING
    ) -> None:
        self._health.count(reason)
        log.log(
            level,
            "lines line skipped",
            extra={
                "fields": {
                    "device_id": self._config.id,
                    "port": self._config.port,
                    "reason": reason,
                    "line": raw.decode("ascii", "backslashreplace"),
                    "error": message,
                }
            },
        )

    async def _close(self) -> None:
        self._lifecycle.close()
        self._line = None
        await self._stack.aclose()
