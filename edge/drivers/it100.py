"""It100Driver: reads a DSC PowerSeries panel through its IT-100 serial interface.

The panel streams what happens; the driver turns each line into a `Frame`
(`edge.codecs.it100`), each frame into a usage draft or nothing (`edge.codecs.it100_mapping`),
and keeps the link honest:

- every command we send (000 poll, 001 status request) is answered by 500 "command
  acknowledge" with the command as data; a 501 "command error" means the panel got our frame
  with a bad checksum, so the command is sent again, once;
- a poll goes out every `poll_interval`, and a panel that sends nothing at all for three poll
  intervals is `DeviceTimeout`;
- a bad line (bad checksum, truncated, malformed, unknown command) is counted in
  `DeviceHealth.protocol`, logged with its raw bytes, and skipped: it never ends the stream;
- a good frame that means no usage (LED and LCD updates, time broadcasts, troubles, partition
  ready, ...) is counted as `ignored_frames`, without a log line.

Status reports. The 001 status request (sent at every connect) is answered with 500 "001" and
then a dump of the panel's state as it is: zone status (609/610), one partition status frame
per enabled partition (650-657, 673: a 652 for an armed one), troubles and LEDs. The protocol
has no end-of-dump frame, so the driver makes one: as soon as the 500 "001" arrives it sends a
000 poll, which the panel acknowledges after it has written the dump (it answers commands in
order). The dump is the frames between those two acknowledgements, and it ends earlier at the
first frame a dump never holds (700 user closing, 601 alarm, 655 disarmed, ...) or at a second
status frame for a partition it already reported. Drafts made from dump frames carry
`attrs["report"] = "status"`: the cloud's sessionizer takes them as confirmations of an open
session, never as new starts, so a restart never changes what is billed.

A real arming is never taken for a report: it comes with its closing frame (700 user closing,
701 special closing) right after the 652, `ArmingPairs` merges the two into one event and drops
the mark; and a lone 652 outside the dump is a real arming as well.

A driver is used once: `async with It100Driver(...)` opens the port, `events()` yields drafts
until the link fails (`DeviceUnreachable` on a cable pull), exit closes. Reconnecting is the
agent's job.
"""

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncGenerator, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from edge.codecs.it100 import (
    PARTITION_STATUS,
    STATUS_FRAMES,
    Frame,
    It100FrameError,
    decode_frame,
    encode_frame,
)
from edge.codecs.it100_mapping import ArmingPairs, is_known, map_frame
from edge.config import It100DeviceConfig
from edge.drivers.serial_line import SerialLine
from edge.errors import DeviceTimeout, DriverError
from edge.health import DeviceHealth
from edge.lifecycle import Lifecycle
from shared.events import ClockState, EventDraft

log = logging.getLogger(__name__)

POLL = "000"
STATUS_REQUEST = "001"
ACK = "500"
COMMAND_ERROR = "501"
SYSTEM_ERROR = "502"
# Silence for this many poll intervals means the panel (or the IT-100 module) is gone.
SILENT_POLLS = 3
# A user arming sends 652 and 700 back to back; a lone 652 is let go after this quiet time.
PAIR_WINDOW = 0.5
# The mark on drafts made from the answer to a status request (see the module docstring).
STATUS_REPORT = {"report": "status"}


class It100Driver:
    """Streams the usage events of one IT-100 panel; one instance per connection."""

    def __init__(
        self,
        config: It100DeviceConfig,
        *,
        health: DeviceHealth,
        clock: Callable[[], ClockState],
    ) -> None:
        self._config = config
        self._health = health
        self._clock = clock
        self._lifecycle = Lifecycle(f"It100Driver for {config.id!r}")
        self._stack = AsyncExitStack()
        self._line: SerialLine | None = None
        self._last_sent: str | None = None
        self._resent = False
        self._dump: set[str] | None = None  # partitions reported so far, while in a dump
        self._pairs = ArmingPairs()
        self.awaiting_ack: str | None = None
        self.acknowledged: Counter[str] = Counter()

    @property
    def config(self) -> It100DeviceConfig:
        """The device this driver reads."""
        return self._config

    async def __aenter__(self) -> Self:
        """Open the port and ask for the panel's status; raises `DeviceUnreachable`."""
        self._lifecycle.enter()
        try:
            self._line = await self._stack.enter_async_context(SerialLine(self._config))
            if self._config.status_on_connect:
                await self._send(STATUS_REQUEST)
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
        """Yield usage drafts as the panel reports them, polling meanwhile, until the link fails."""
        loop = asyncio.get_running_loop()
        interval = self._config.poll_interval
        heard = loop.time()
        next_poll = heard + interval
        pair_deadline = float("inf")
        while True:
            if loop.time() >= heard + SILENT_POLLS * interval:
                raise DeviceTimeout(
                    f"{self._where()}: no answer for {SILENT_POLLS} poll intervals "
                    f"({SILENT_POLLS * interval:g}s)"
                )
            if loop.time() >= next_poll:
                await self._send(POLL)
                next_poll = loop.time() + interval
            deadline = min(next_poll, heard + SILENT_POLLS * interval, pair_deadline)
            try:
                async with asyncio.timeout_at(deadline):
                    raw = await self._serial().read_line()
            except TimeoutError:
                if loop.time() >= pair_deadline:  # the partner frame is not coming
                    for ready in self._pairs.flush():
                        yield ready
                    pair_deadline = float("inf")
                continue
            except DriverError:
                for ready in self._pairs.flush():  # never lose a held event with the link
                    yield ready
                raise
            heard = loop.time()
            draft = await self._handle(raw)
            if draft is not None:
                for ready in self._pairs.push(draft):
                    yield ready
                pair_deadline = loop.time() + PAIR_WINDOW if self._pairs.holding else float("inf")

    async def _handle(self, raw: bytes) -> EventDraft | None:
        """One line from the panel: link traffic is handled here, the rest is mapped."""
        observed_at = datetime.now(UTC)
        try:
            frame = decode_frame(raw)
        except It100FrameError as exc:
            self._reject(exc.reason, raw, str(exc))
            return None
        if frame.command in (ACK, COMMAND_ERROR, SYSTEM_ERROR):
            await self._handle_link(frame, raw)
            return None
        if not is_known(frame.command):
            self._reject("unknown_command", raw, f"unknown command {frame.command}")
            return None
        reported = self._in_dump(frame)
        try:
            draft = map_frame(
                frame,
                device_id=self._config.id,
                observed_at=observed_at,
                clock=self._clock(),
                zone_events=self._config.zone_events,
            )
        except It100FrameError as exc:
            self._reject(exc.reason, raw, str(exc))
            return None
        if draft is None:
            self._health.count("ignored_frames")
            return None
        if reported:
            return draft.model_copy(update={"attrs": {**draft.attrs, **STATUS_REPORT}})
        return draft

    def _in_dump(self, frame: Frame) -> bool:
        """Whether `frame` belongs to the status dump in progress (and the dump goes on)."""
        dump = self._dump
        if dump is None:
            return False
        partition = frame.data[:1] if frame.command in PARTITION_STATUS else None
        if frame.command not in STATUS_FRAMES or partition in dump:
            self._dump = None  # a live event: the dump is over
            return False
        if partition is not None:
            dump.add(partition)
        return True

    async def _handle_link(self, frame: Frame, raw: bytes) -> None:
        if frame.command == ACK:
            self.acknowledged[frame.data] += 1
            if frame.data == self.awaiting_ack:
                self.awaiting_ack = None
            if frame.data == STATUS_REQUEST:
                # The dump follows; the 500 to this poll comes after it and closes it.
                self._dump = set()
                await self._send(POLL)
            else:
                self._dump = None
        elif frame.command == COMMAND_ERROR:
            await self._resend(raw)
        else:
            self._reject("system_error", raw, f"panel reports system error {frame.data}")

    async def _resend(self, raw: bytes) -> None:
        # The panel got our last frame with a bad checksum (noise on the line): send it again,
        # once; a second 501 for the same command is counted and the command dropped.
        self._health.count("command_error")
        command = self._last_sent
        if command is None or self._resent:
            self._reject("command_rejected", raw, f"panel rejected command {command} again")
            return
        self._health.count("resent")
        log.info(
            "it100 command resent after 501",
            extra={"fields": {"device_id": self._config.id, "command": command}},
        )
        await self._send(command, resend=True)

    async def _send(self, command: str, *, resend: bool = False) -> None:
        if self.awaiting_ack is not None and not resend:
            self._health.count("missing_ack")
        self._last_sent = command
        self._resent = resend
        self.awaiting_ack = command
        await self._serial().write(encode_frame(command))

    def _reject(self, reason: str, raw: bytes, message: str) -> None:
        self._health.count(reason)
        log.warning(
            "it100 line skipped",
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

    def _serial(self) -> SerialLine:
        if self._line is None:
            raise RuntimeError(f"It100Driver for {self._config.id!r} is {self._lifecycle.state}")
        return self._line

    async def _close(self) -> None:
        self._lifecycle.close()
        self._line = None
        await self._stack.aclose()

    def _where(self) -> str:
        return f"device {self._config.id!r} on {self._config.port}"
