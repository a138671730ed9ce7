"""DSC PowerSeries IT-100 frames <-> bytes: the pure, sync codec under the IT-100 driver.

A frame is ASCII: a 3-digit command, its data, a 2-digit hex checksum and CR LF, for example
`6521012` + checksum + `\\r\\n` (partition 1 armed away). The checksum is the low byte of the sum
of the ASCII codes of command and data, written as two uppercase hex digits; lowercase is accepted
on input. Source: DSC "IT-100 Data Interface Module Developer's Guide", section 3 (communications
protocol: framing and checksum) and section 4 (command and data tables),
https://cms.dsc.com/download.php?t=1&id=16238

Decoding checks the framing and, for the commands we know, the shape of the data (a 652 carries a
partition digit and an arm-mode digit). Unknown commands decode fine: whether they matter is the
driver's business (`is_known`). The table also lists the panel's legitimate traffic that has no
usage meaning (time broadcasts, LED and LCD updates, troubles, ...) with free data: the driver
counts those apart from unknown commands and never reads their data. Every rejected line
raises `It100FrameError` with a `reason` ("bad_checksum", "truncated" or "malformed") and the
raw line in its message.
"""

import re
from dataclasses import dataclass
from typing import Literal

from edge.errors import FrameError

FrameReason = Literal["bad_checksum", "truncated", "malformed"]

TERMINATOR = b"\r\n"
_COMMAND = re.compile(r"^\d{3}$")
_HEX = re.compile(r"^[0-9A-Fa-f]{2}$")
# 3 command digits + 2 checksum digits: the shortest frame (no data).
_MIN_LENGTH = 5


class It100FrameError(FrameError):
    """A line from the panel that is not a valid IT-100 frame; `reason` says why."""

    def __init__(self, message: str, *, reason: FrameReason, line: bytes) -> None:
        super().__init__(f"{message}: {line!r}")
        self.reason: FrameReason = reason
        self.line = line


@dataclass(frozen=True, slots=True)
class Command:
    """One entry of the command table: what it means and the shape of its data.

    `data` has one letter per character: `P` a partition digit (1-8), `M` an arm-mode digit
    (0-3), `D` any digit (zone, user code, error code); `*` alone means any data (traffic we
    never read).
    """

    code: str
    meaning: str
    data: str = ""

    def accepts(self, data: str) -> bool:
        """Whether `data` has this command's shape."""
        if self.data == ANY_DATA:
            return True
        return len(data) == len(self.data) and all(
            char in _SHAPES[shape] for shape, char in zip(self.data, data, strict=True)
        )


_SHAPES = {"P": "12345678", "M": "0123", "D": "0123456789"}
ANY_DATA = "*"

_NO_USAGE = {
    "510": "keypad LED state",  # 510/511: the DSC TPI's LED bitfields, sent by IT-100 clones
    "511": "keypad LED flash state",
    "550": "time/date broadcast",
    "560": "ring detected",
    "561": "indoor temperature broadcast",
    "562": "outdoor temperature broadcast",
    "570": "broadcast labels",
    "580": "baud rate set",
    "605": "zone fault",
    "606": "zone fault restore",
    "658": "keypad lockout",
    "659": "keypad blanking",
    "660": "command output in progress",
    "670": "invalid access code",
    "671": "function not available",
    "672": "failure to arm",
    "800": "panel battery trouble",
    "801": "panel battery trouble restore",
    "802": "panel AC trouble",
    "803": "panel AC restore",
    "806": "system bell trouble",
    "807": "system bell trouble restore",
    "840": "trouble status (LED on)",
    "841": "trouble status restore (LED off)",
    "842": "fire trouble alarm",
    "843": "fire trouble alarm restore",
    "896": "keybus fault",
    "897": "keybus fault restore",
    "900": "code required",
    "901": "LCD update",
    "902": "LCD cursor",
    "903": "LED status",
    "904": "beep status",
    "905": "tone status",
    "906": "buzzer status",
    "907": "door chime status",
    "908": "software version",
}

# Application-to-computer (panel -> gateway) and computer-to-application commands of the
# Developer's Guide, section 4. Only what the mapping or the link handling needs is listed;
# anything else decodes as an unknown command and is counted by the driver.
COMMANDS: dict[str, Command] = {
    c.code: c
    for c in (
        Command("000", "poll"),
        Command("001", "status request"),
        Command("500", "command acknowledge", "DDD"),
        Command("501", "command error (bad checksum)"),
        Command("502", "system error", "DDD"),
        Command("601", "zone alarm", "PDDD"),
        Command("602", "zone alarm restore", "PDDD"),
        Command("603", "zone tamper", "PDDD"),
        Command("604", "zone tamper restore", "PDDD"),
        Command("609", "zone open", "DDD"),
        Command("610", "zone restored", "DDD"),
        Command("621", "fire key alarm"),
        Command("622", "fire key restore"),
        Command("623", "auxiliary key alarm"),
        Command("624", "auxiliary key restore"),
        Command("625", "panic key alarm"),
        Command("626", "panic key restore"),
        Command("650", "partition ready", "P"),
        Command("651", "partition not ready", "P"),
        Command("652", "partition armed", "PM"),
        Command("653", "partition ready, force arming enabled", "P"),
        Command("654", "partition in alarm", "P"),
        Command("655", "partition disarmed", "P"),
        Command("656", "exit delay in progress", "P"),
        Command("657", "entry delay in progress", "P"),
        Command("673", "partition busy", "P"),
        Command("700", "user closing", "PDDDD"),
        Command("701", "special closing", "P"),
        Command("702", "partial closing", "P"),
        Command("750", "user opening", "PDDDD"),
        Command("751", "special opening", "P"),
        # Traffic without usage meaning (section 5): known, so it is not counted as unknown.
        *(Command(code, meaning, ANY_DATA) for code, meaning in _NO_USAGE.items()),
    )
}

# What a 001 status request is answered with, after its 500: "zone, partition and trouble
# status" (Developer's Guide, 001), the keypad LEDs and the software version. A dump holds
# nothing else, and reports each partition once (`PARTITION_STATUS`, partition digit first).
PARTITION_STATUS = frozenset({"650", "651", "652", "653", "654", "656", "657", "673"})
STATUS_FRAMES = PARTITION_STATUS | frozenset(
    {"609", "610", "510", "511", "903", "908", "840", "841", "842", "843", "896", "897"}
    | {"800", "801", "802", "803", "806", "807"}
)

# Data digit of 652 (Developer's Guide, 652 "Partition Armed - Descriptive Mode").
ARM_MODES = {"0": "away", "1": "stay", "2": "zero_entry_away", "3": "zero_entry_stay"}


@dataclass(frozen=True, slots=True)
class Frame:
    """One IT-100 frame: a 3-digit command and its data (checksum and CR LF stripped)."""

    command: str
    data: str = ""

    def __post_init__(self) -> None:
        if not _COMMAND.match(self.command):
            raise ValueError(f"command must be 3 digits, got {self.command!r}")
        if not self.data.isascii() or not self.data.isprintable():
            raise ValueError(f"data must be printable ASCII, got {self.data!r}")


def is_known(command: str) -> bool:
    """Whether `command` is in the table (unknown ones are counted, not mapped)."""
    return command in COMMANDS


def checksum(text: str) -> str:
    """Low byte of the sum of the ASCII codes, as 2 uppercase hex digits."""
    return f"{sum(text.encode('ascii')) & 0xFF:02X}"


def encode_frame(command: str, data: str = "") -> bytes:
    """Bytes of one frame: command + data + checksum + CR LF."""
    frame = Frame(command, data)
    body = frame.command + frame.data
    return (body + checksum(body)).encode("ascii") + TERMINATOR


def encode_bad_frame(command: str, data: str = "") -> bytes:
    """A frame whose checksum is off by one (for simulators and tests of the error path)."""
    body = Frame(command, data).command + data
    wrong = f"{(int(checksum(body), 16) + 1) & 0xFF:02X}"
    return (body + wrong).encode("ascii") + TERMINATOR


def decode_frame(line: bytes) -> Frame:
    """Parse one line (CR LF optional) into a `Frame`; raises `It100FrameError`."""
    stripped = line.rstrip(b"\r\n")
    if not stripped.isascii():
        raise It100FrameError("not ASCII", reason="malformed", line=line)
    text = stripped.decode("ascii")
    if len(text) < _MIN_LENGTH:
        raise It100FrameError(
            f"{len(text)} characters, a frame has at least 5", reason="truncated", line=line
        )
    body, sent = text[:-2], text[-2:]
    command, data = body[:3], body[3:]
    if not _COMMAND.match(command):
        raise It100FrameError("command is not 3 digits", reason="malformed", line=line)
    if not _HEX.match(sent) or not data.isprintable():
        raise It100FrameError("checksum is not 2 hex digits", reason="malformed", line=line)
    if sent.upper() != checksum(body):
        raise It100FrameError(
            f"checksum {sent} does not match {checksum(body)}", reason="bad_checksum", line=line
        )
    known = COMMANDS.get(command)
    if known is not None and not known.accepts(data):
        reason: FrameReason = "truncated" if len(data) < len(known.data) else "malformed"
        raise It100FrameError(
            f"data {data!r} does not fit command {command} ({known.meaning})",
            reason=reason,
            line=line,
        )
    return Frame(command, data)
