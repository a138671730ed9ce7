"""It100Panel and LinesPanel: simulated alarm panels on a real pseudo-terminal.

`PtyLink` is the cable: `os.openpty()` gives a master (the panel's end) and a slave (what a
driver opens as its serial port). The slave is put in raw mode so CR LF pass unchanged, and a
symlink at `link_path` points at the slave's name, so the port a driver is configured with stays
the same when the panel is unplugged and replugged (a new pty gets a new /dev/pts/N). `unplug()`
closes both ends and removes the symlink: a driver reading the slave gets EIO, as when a USB
serial adapter is pulled. The link keeps its own slave descriptor open while plugged, so the
master never sees a hang-up when a driver closes and reopens the port.

`It100Panel` speaks the IT-100 protocol (see `edge.codecs.it100`): it writes the frames of its
scenario with correct checksums (or a bad one on purpose), answers 000 poll and 001 status
request with 500 acknowledge (the status request also with its dump: each partition's 650/652
state and its 841 trouble LED off), commands in the order they came, and a frame with a bad
checksum with 501. `emitted` is every frame it sent with a good checksum,
`corrupted` every line it sent with a bad one, `received` every command it got: the truth a
test compares a driver's output with.

Faults. The scenario injects three kinds: `checksum` (a `BadChecksum` step, and every
`bad_checksum_every`-th scenario frame when that is set), `unknown` (an `UnknownCommand` step)
and `drop` (the `Unplug` and `Replug` steps of a cable pull). `faults` says which the panel
injects (all by default, `frozenset()` for none); a step of a kind left out is skipped, its
tick still passes. Each fault injected is recorded in `injected` and handed to `on_fault` right
after its bytes are written (or the link changed): an `InjectedFault` whose `str()` is one line,
"fault: bad checksum on 609 007: sent 6090074A instead of 60900749".

`LinesPanel` is a printer-port panel: free text lines such as
"2026-11-21 10:00:01 ALARM ZONE 004 PARTITION 1".

Frames written before a driver opens the port are lost (pyserial flushes the input on open),
so tests open the driver first and then `play()` steps.
"""

import asyncio
import contextlib
import os
import tty
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Self, get_args

from edge.codecs.it100 import Frame, It100FrameError, decode_frame, encode_bad_frame, encode_frame

Fault = Literal["checksum", "unknown", "drop"]
FAULTS: tuple[Fault, ...] = get_args(Fault)
ALL_FAULTS: frozenset[Fault] = frozenset(FAULTS)


class PtyLink:
    """A pseudo-terminal whose slave is reachable through a stable symlink."""

    def __init__(self, link_path: Path) -> None:
        self.link_path = link_path
        self._master: int | None = None
        self._slave: int | None = None
        self._pending = bytearray()
        self._incoming = bytearray()
        self._lines: asyncio.Queue[bytes] = asyncio.Queue()
        self._writing = False

    @property
    def plugged(self) -> bool:
        """Whether the pty exists (the cable is in)."""
        return self._master is not None

    @property
    def slave_name(self) -> str:
        """The /dev/pts/N the symlink points at."""
        if self._slave is None:
            raise RuntimeError("the link is unplugged")
        return os.ttyname(self._slave)

    def plug(self) -> None:
        """Create a new pty and point the symlink at its slave."""
        if self.plugged:
            raise RuntimeError("the link is already plugged")
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        temporary = self.link_path.with_name(f".{self.link_path.name}.{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        temporary.symlink_to(os.ttyname(slave))
        temporary.replace(self.link_path)  # atomic: the link never points nowhere
        asyncio.get_running_loop().add_reader(master, self._read_ready)

    def unplug(self) -> None:
        """Close the pty and remove the symlink: a driver on it sees the port vanish."""
        master, slave = self._master, self._slave
        self._master = self._slave = None
        self._pending.clear()
        self._incoming.clear()
        loop = asyncio.get_running_loop()
        if master is not None:
            loop.remove_reader(master)
            if self._writing:
                loop.remove_writer(master)
                self._writing = False
            os.close(master)
        if slave is not None:
            os.close(slave)
        with contextlib.suppress(FileNotFoundError):
            self.link_path.unlink()

    def write(self, data: bytes) -> None:
        """Send bytes to whoever has the port open (dropped while unplugged)."""
        if self._master is None:
            return
        self._pending += data
        self._flush()

    async def read_line(self) -> bytes:
        """The next line the driver sent, LF included."""
        return await self._lines.get()

    def _flush(self) -> None:
        master = self._master
        if master is None:
            return
        while self._pending:
            try:
                written = os.write(master, self._pending)
            except BlockingIOError:
                break
            del self._pending[:written]
        loop = asyncio.get_running_loop()
        if self._pending and not self._writing:
            loop.add_writer(master, self._flush)
            self._writing = True
        elif not self._pending and self._writing:
            loop.remove_writer(master)
            self._writing = False

    def _read_ready(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO: nobody holds the slave (cannot happen while we keep ours open)
            return
        self._incoming += data
        while (end := self._incoming.find(b"\n")) >= 0:
            self._lines.put_nowait(bytes(self._incoming[: end + 1]))
            del self._incoming[: end + 1]


# Scenario steps of the IT-100 panel.


@dataclass(frozen=True, slots=True)
class Arm:
    """A user arms a partition: 652 (partition armed, mode) and 700 (user closing)."""

    partition: int = 1
    user_code: str = "0040"
    mode: int = 0  # 0 away, 1 stay, 2 zero-entry away, 3 zero-entry stay


@dataclass(frozen=True, slots=True)
class AutoArm:
    """The panel arms a partition by itself (auto-arm): 652 and 701 (special closing)."""

    partition: int = 1
    mode: int = 0


@dataclass(frozen=True, slots=True)
class TimeBroadcast:
    """The panel's time/date broadcast, 550 hhmmMMDDYY: traffic without usage meaning."""

    stamp: str = "1030112126"


@dataclass(frozen=True, slots=True)
class Disarm:
    """A user disarms a partition: 655 (partition disarmed) and 750 (user opening)."""

    partition: int = 1
    user_code: str = "0040"


@dataclass(frozen=True, slots=True)
class Alarm:
    """A zone goes into alarm: 601 (zone alarm) and 654 (partition in alarm)."""

    partition: int = 1
    zone: int = 4


@dataclass(frozen=True, slots=True)
class ZoneOpen:
    """A zone opens: 609."""

    zone: int = 5


@dataclass(frozen=True, slots=True)
class ZoneRestore:
    """A zone closes again: 610."""

    zone: int = 5


@dataclass(frozen=True, slots=True)
class BadChecksum:
    """Line noise: a frame written with a wrong checksum."""

    command: str = "609"
    data: str = "007"


@dataclass(frozen=True, slots=True)
class UnknownCommand:
    """A frame with a command the driver does not know (good checksum)."""

    command: str = "999"
    data: str = "1"


@dataclass(frozen=True, slots=True)
class Pause:
    """Nothing happens for `ticks` extra ticks."""

    ticks: int = 1


@dataclass(frozen=True, slots=True)
class Unplug:
    """Pull the serial cable: the pty closes and the symlink goes away."""


@dataclass(frozen=True, slots=True)
class Replug:
    """Plug the cable back in (a new pty behind the same symlink)."""


Step = (
    Arm
    | AutoArm
    | TimeBroadcast
    | Disarm
    | Alarm
    | ZoneOpen
    | ZoneRestore
    | BadChecksum
    | UnknownCommand
    | Pause
    | Unplug
    | Replug
)


@dataclass(frozen=True, slots=True)
class Scenario:
    """Steps played one per tick (seconds)."""

    steps: tuple[Step, ...]
    tick: float = 0.5


def default_scenario(*, tick: float = 0.5) -> Scenario:
    """Two partitions armed and disarmed, an alarm, zone traffic, line noise, a cable pull."""
    return Scenario(
        steps=(
            Arm(partition=1, user_code="0040", mode=0),
            Pause(),
            Alarm(partition=1, zone=4),
            Disarm(partition=1, user_code="0040"),
            ZoneOpen(zone=5),
            ZoneRestore(zone=5),
            Arm(partition=2, user_code="0041", mode=1),
            BadChecksum(),
            UnknownCommand(),
            Disarm(partition=2, user_code="0041"),
            Pause(),
            Unplug(),
            Pause(),
            Replug(),
            Pause(),
        ),
        tick=tick,
    )


@dataclass(frozen=True, slots=True)
class InjectedFault:
    """One fault the panel injected: its kind, what happened, and the line sent (if any)."""

    kind: Fault
    what: str
    line: bytes | None = None

    def __str__(self) -> str:
        return f"fault: {self.what}"


def fault_of(step: Step) -> Fault | None:
    """The kind of fault a scenario step injects, None for a step of normal traffic."""
    match step:
        case BadChecksum():
            return "checksum"
        case UnknownCommand():
            return "unknown"
        case Unplug() | Replug():
            return "drop"
        case _:
            return None


def frames_of(step: Step) -> list[Frame]:
    """The frames a step writes (a `BadChecksum` step's frame goes out corrupted)."""
    match step:
        case Arm(partition=p, user_code=user, mode=mode):
            return [Frame("652", f"{p}{mode}"), Frame("700", f"{p}{user}")]
        case AutoArm(partition=p, mode=mode):
            return [Frame("652", f"{p}{mode}"), Frame("701", f"{p}")]
        case TimeBroadcast(stamp=stamp):
            return [Frame("550", stamp)]
        case Disarm(partition=p, user_code=user):
            return [Frame("655", f"{p}"), Frame("750", f"{p}{user}")]
        case Alarm(partition=p, zone=zone):
            return [Frame("601", f"{p}{zone:03d}"), Frame("654", f"{p}")]
        case ZoneOpen(zone=zone):
            return [Frame("609", f"{zone:03d}")]
        case ZoneRestore(zone=zone):
            return [Frame("610", f"{zone:03d}")]
        case BadChecksum(command=command, data=data) | UnknownCommand(command=command, data=data):
            return [Frame(command, data)]
        case Pause() | Unplug() | Replug():
            return []


class It100Panel:
    """A DSC panel behind an IT-100 module, on a pty reachable at `link_path`."""

    def __init__(
        self,
        *,
        link_path: Path,
        scenario: Scenario | None = None,
        bad_checksum_every: int | None = None,
        faults: Iterable[str] = ALL_FAULTS,
        on_fault: Callable[[InjectedFault], None] | None = None,
    ) -> None:
        if bad_checksum_every is not None and bad_checksum_every < 1:
            raise ValueError("bad_checksum_every must be at least 1")
        chosen = frozenset(faults)
        if not chosen <= ALL_FAULTS:
            raise ValueError(
                f"unknown fault(s) {sorted(chosen - ALL_FAULTS)}; expected some of {list(FAULTS)}"
            )
        self.link = PtyLink(link_path)
        self.scenario = scenario or default_scenario()
        self.bad_checksum_every = bad_checksum_every
        self.faults: frozenset[str] = chosen
        self.injected: list[InjectedFault] = []
        self._on_fault = on_fault
        self.partitions: dict[int, int | None] = {1: None}  # partition -> arm mode (None: ready)
        self.emitted: list[Frame] = []
        self.corrupted: list[bytes] = []
        self.received: list[Frame] = []
        self.rejected: list[bytes] = []
        self._reject_next = 0
        self._sent_scenario_frames = 0
        self._received_changed = asyncio.Condition()
        self._server: asyncio.Task[None] | None = None

    @property
    def link_path(self) -> Path:
        """The stable path a driver opens."""
        return self.link.link_path

    async def __aenter__(self) -> Self:
        """Plug the cable and start answering commands."""
        self.replug()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Unplug and stop."""
        await self._stop_server()
        if self.link.plugged:
            self.link.unplug()

    def unplug(self) -> None:
        """Pull the cable: the pty closes and the symlink goes away."""
        self.link.unplug()

    def replug(self) -> None:
        """Plug in again: a new pty, the symlink re-pointed at it."""
        self.link.plug()
        if self._server is None:
            self._server = asyncio.create_task(self._serve(), name="it100-panel")

    def reject_next_commands(self, count: int = 1) -> None:
        """Answer the next `count` commands with 501, as if they came with a bad checksum."""
        self._reject_next += count

    async def wait_for_command(self, command: str, *, count: int = 1) -> None:
        """Wait until `count` frames of `command` have been received (and answered)."""
        async with self._received_changed:
            await self._received_changed.wait_for(
                lambda: sum(frame.command == command for frame in self.received) >= count
            )

    async def wait_for_rejected(self, count: int = 1) -> None:
        """Wait until `count` commands have been answered with 501."""
        async with self._received_changed:
            await self._received_changed.wait_for(lambda: len(self.rejected) >= count)

    async def play(self, steps: Iterable[Step], *, tick: float = 0) -> None:
        """Write the frames of `steps`, sleeping `tick` seconds after each step."""
        for step in steps:
            self.apply(step)
            ticks = step.ticks if isinstance(step, Pause) else 1
            if tick > 0:
                await asyncio.sleep(tick * ticks)
            else:
                await asyncio.sleep(0)

    async def run_forever(self) -> None:
        """Play the scenario in a loop until cancelled."""
        while True:
            await self.play(self.scenario.steps, tick=self.scenario.tick)

    def apply(self, step: Step) -> None:
        """Change the panel's state for one step and write its frames (a fault step of a kind
        not in `faults` does nothing)."""
        kind = fault_of(step)
        if kind is not None and kind not in self.faults:
            return
        match step:
            case Arm(partition=p, mode=mode) | AutoArm(partition=p, mode=mode):
                self.partitions[p] = mode
            case Disarm(partition=p):
                self.partitions[p] = None
            case Unplug():
                self.unplug()
                self._report(InjectedFault("drop", f"link drop: {self.link_path} unplugged"))
            case Replug():
                self.replug()
                self._report(
                    InjectedFault("drop", f"link drop over: {self.link_path} plugged in again")
                )
        for frame in frames_of(step):
            self._sent_scenario_frames += 1
            every = self.bad_checksum_every
            noisy = (
                every is not None
                and "checksum" in self.faults
                and self._sent_scenario_frames % every == 0
            )
            corrupt = noisy or isinstance(step, BadChecksum)
            line = self.send(frame, corrupt=corrupt)
            if corrupt:
                self._report(_bad_checksum(frame, line))
            elif isinstance(step, UnknownCommand):
                self._report(
                    InjectedFault(
                        "unknown", f"unknown command {frame.command}: sent {_shown(line)}", line
                    )
                )

    def _report(self, fault: InjectedFault) -> None:
        self.injected.append(fault)
        if self._on_fault is not None:
            self._on_fault(fault)

    def send(self, frame: Frame, *, corrupt: bool = False) -> bytes:
        """Write one frame, with a good checksum unless `corrupt`; returns the line written."""
        if corrupt:
            line = encode_bad_frame(frame.command, frame.data)
            self.corrupted.append(line)
        else:
            line = encode_frame(frame.command, frame.data)
            self.emitted.append(frame)
        self.link.write(line)
        return line

    def status_frames(self) -> list[Frame]:
        """The dump a 001 status request gets: per partition 652 when armed, else 650, then
        its trouble LED (841: off)."""
        status = [
            Frame("650", f"{p}") if mode is None else Frame("652", f"{p}{mode}")
            for p, mode in sorted(self.partitions.items())
        ]
        return [*status, *(Frame("841", f"{p}") for p in sorted(self.partitions))]

    async def _serve(self) -> None:
        while True:
            line = await self.link.read_line()
            await self._answer(line)

    async def _answer(self, line: bytes) -> None:
        try:
            frame: Frame | None = decode_frame(line)
        except It100FrameError:
            frame = None
        if frame is None or self._reject_next > 0:
            self._reject_next -= frame is not None
            self.send(Frame("501"))
            self.rejected.append(line)
        else:
            self.send(Frame("500", frame.command))
            if frame.command == "001":
                for status in self.status_frames():
                    self.send(status)
            self.received.append(frame)
        async with self._received_changed:
            self._received_changed.notify_all()

    async def _stop_server(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await server


def _bad_checksum(frame: Frame, line: bytes) -> InjectedFault:
    right = _shown(encode_frame(frame.command, frame.data))
    what = f"bad checksum on {frame.command} {frame.data}".rstrip()
    return InjectedFault("checksum", f"{what}: sent {_shown(line)} instead of {right}", line)


def _shown(line: bytes) -> str:
    return line.rstrip(b"\r\n").decode("ascii", "backslashreplace")


DEFAULT_PRINTER_LINES: Sequence[str] = (
    "2026-11-21 10:00:01 ARMED PARTITION 1 USER 0040",
    "2026-11-21 10:05:12 ALARM ZONE 004 PARTITION 1",
    "2026-11-21 10:06:40 DISARMED PARTITION 1 USER 0040",
    "2026-11-21 10:07:00 AC POWER OK",
)


class LinesPanel:
    """A printer-port panel writing free text lines on a pty reachable at `link_path`."""

    def __init__(
        self, *, link_path: Path, lines: Sequence[str] = DEFAULT_PRINTER_LINES, tick: float = 0.5
    ) -> None:
        self.link = PtyLink(link_path)
        self.lines = tuple(lines)
        self.tick = tick
        self.emitted: list[bytes] = []

    @property
    def link_path(self) -> Path:
        """The stable path a driver opens."""
        return self.link.link_path

    async def __aenter__(self) -> Self:
        """Plug the cable."""
        self.link.plug()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Unplug."""
        if self.link.plugged:
            self.link.unplug()

    def unplug(self) -> None:
        """Pull the cable."""
        self.link.unplug()

    def replug(self) -> None:
        """Plug in again on a new pty."""
        self.link.plug()

    def write_line(self, text: str, *, encoding: str = "ascii") -> None:
        """Print one line (CR LF added)."""
        self.write_raw(text.encode(encoding) + b"\r\n")

    def write_raw(self, data: bytes) -> None:
        """Write bytes as they are (for undecodable or unterminated output)."""
        self.emitted.append(data)
        self.link.write(data)

    async def run_forever(self) -> None:
        """Print the lines in a loop, one per tick, until cancelled."""
        while True:
            for text in self.lines:
                self.write_line(text)
                await asyncio.sleep(self.tick)
