"""Battery BLE lock values <-> bytes: the pure, sync codec under the BLE lock driver.

A lock (a waste-bin lock that weighs each pour, a door lock) keeps a log of what happened and
says, in its advertisement, how far the log goes (`counter`, the highest seq it ever wrote). The
gateway connects only when the counter moved past what it committed, reads the oldest
unacknowledged entries from the event-log characteristic, commits them, then writes the highest
committed seq to the acknowledge characteristic so the lock can free them. The layouts, the
gateway's algorithm and why it holds across dropped links: docs/ble-lock-protocol.md.

All integers are little-endian. Amounts travel as a signed integer and a power-of-ten exponent,
so `1234, -3` is exactly `Decimal("1.234")`: no float ever touches a billed quantity.

Every decoder raises `LockProtocolError` with a `reason` ("truncated", "bad_version",
"count_mismatch", "unknown_code" or "malformed") and the offending bytes.
"""

import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise
from typing import Final, Literal

from edge.errors import FrameError

ProtocolReason = Literal["truncated", "bad_version", "count_mismatch", "unknown_code", "malformed"]
Action = Literal["opened", "closed"]
Unit = Literal["kg", "l", "g", "ml"]

VERSION: Final = 1
# Bluetooth SIG company id reserved for tests and internal use ("Bluetooth SIG Assigned
# Numbers", section 7: Company Identifiers, 0xFFFF); the payload's version byte says it is ours.
COMPANY_ID: Final = 0xFFFF
NAME_PREFIX: Final = "TG-LOCK-"

SERVICE_UUID: Final = "b1e5f0a0-7011-4a7e-8c0c-5e7e00000000"
EVENT_LOG_UUID: Final = "b1e5f0a0-7011-4a7e-8c0c-5e7e00000001"
ACK_UUID: Final = "b1e5f0a0-7011-4a7e-8c0c-5e7e00000002"
STATUS_UUID: Final = "b1e5f0a0-7011-4a7e-8c0c-5e7e00000003"

# The lock refuses an acknowledge above its counter with this ATT application error
# (Core Specification Vol 3, Part F, 3.4.1.1: 0x80-0x9F are application errors).
ACK_ABOVE_COUNTER_ERROR: Final = 0x80

_ADVERT = struct.Struct("<BIIB")  # version, lock id, counter, battery
_PAGE_HEADER = struct.Struct("<BB")  # version, count
_ENTRY = struct.Struct("<IQBIibB")  # seq, lock time ms, action, badge, amount, exponent, unit
_ACK = struct.Struct("<I")  # seq
_STATUS = struct.Struct("<BBBBBQII")  # version, battery, fw x3, lock clock ms, counter, acked

ADVERT_SIZE: Final = _ADVERT.size
ENTRY_SIZE: Final = _ENTRY.size
STATUS_SIZE: Final = _STATUS.size
# A page is read with ATT long reads and an attribute value holds at most 512 bytes
# (Core Specification Vol 3, Part F, 3.2.9): 2 + 22 * 23 = 508.
MAX_ENTRIES_PER_READ: Final = 22
MAX_PAGE_SIZE: Final = _PAGE_HEADER.size + MAX_ENTRIES_PER_READ * ENTRY_SIZE

ACTION_CODES: Final[dict[Action, int]] = {"opened": 1, "closed": 2}
UNIT_CODES: Final[dict[Unit | None, int]] = {None: 0, "kg": 1, "l": 2, "g": 3, "ml": 4}
_ACTIONS: Final = {code: action for action, code in ACTION_CODES.items()}
_UNITS: Final = {code: unit for unit, code in UNIT_CODES.items()}

_U32_MAX: Final = 2**32 - 1
_U64_MAX: Final = 2**64 - 1
_I32 = range(-(2**31), 2**31)
_I8 = range(-128, 128)


class LockProtocolError(FrameError):
    """Bytes from a lock that do not fit the lock protocol; `reason` says why."""

    def __init__(self, message: str, *, reason: ProtocolReason, data: bytes) -> None:
        super().__init__(f"{message}: {data.hex()}")
        self.detail = message
        self.reason: ProtocolReason = reason
        self.data = data


def _check_range(name: str, value: int, high: int, low: int = 0) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be in {low}..{high}, got {value}")


@dataclass(frozen=True, slots=True)
class LockAdvert:
    """What a lock advertises: who it is, how far its log goes, how full its battery is."""

    lock_id: int
    counter: int
    battery: int

    def __post_init__(self) -> None:
        _check_range("lock_id", self.lock_id, _U32_MAX)
        _check_range("counter", self.counter, _U32_MAX)
        _check_range("battery", self.battery, 100)


def split_amount(amount: Decimal) -> tuple[int, int]:
    """`amount` as (integer, exponent) for the wire: i32 x 10^i8; ValueError if it cannot be.

    The Decimal's own exponent is kept (`Decimal("2.50")` travels as 250, -2); only when that
    does not fit are trailing zeros moved into the exponent, by hand, because
    `Decimal.normalize` would round to the context's precision.
    """
    sign, digits, raw_exponent = amount.as_tuple()
    if not isinstance(raw_exponent, int):  # "n", "N" or "F": NaN, sNaN or Infinity
        raise ValueError(f"amount must be finite, got {amount}")
    exponent: int = raw_exponent
    integer = int("".join(map(str, digits))) * (-1 if sign else 1)
    if integer == 0:
        exponent = max(min(exponent, _I8.stop - 1), _I8.start)
    while integer % 10 == 0 and integer != 0 and not _fits(integer, exponent):
        integer, exponent = integer // 10, exponent + 1
    if not _fits(integer, exponent):
        raise ValueError(f"amount {amount} does not fit a 32-bit integer times 10^-128..10^127")
    return integer, exponent


def _fits(integer: int, exponent: int) -> bool:
    return integer in _I32 and exponent in _I8


def join_amount(integer: int, exponent: int) -> Decimal:
    """The exact Decimal `integer x 10^exponent` (no rounding, no float)."""
    digits = tuple(int(digit) for digit in str(abs(integer)))
    return Decimal((1 if integer < 0 else 0, digits, exponent))


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One entry of a lock's log: who opened or closed it, when by its clock, what it measured.

    A door lock measures nothing: its entries carry amount 0 and unit None.
    """

    seq: int
    lock_time_ms: int
    action: Action
    badge: int = 0
    amount: Decimal = Decimal(0)
    unit: Unit | None = None

    def __post_init__(self) -> None:
        _check_range("seq", self.seq, _U32_MAX, low=1)
        _check_range("lock_time_ms", self.lock_time_ms, _U64_MAX)
        _check_range("badge", self.badge, _U32_MAX)
        if self.action not in ACTION_CODES:
            raise ValueError(f"action must be 'opened' or 'closed', got {self.action!r}")
        if self.unit not in UNIT_CODES:
            raise ValueError(f"unit must be one of kg, l, g, ml or None, got {self.unit!r}")
        if not isinstance(self.amount, Decimal):
            raise TypeError(f"amount must be a Decimal, got {type(self.amount).__name__}")
        split_amount(self.amount)


@dataclass(frozen=True, slots=True)
class LockStatus:
    """The status characteristic: battery, firmware, the lock's clock and its log bounds."""

    battery: int
    firmware: tuple[int, int, int]
    lock_clock_ms: int
    counter: int
    acked: int

    def __post_init__(self) -> None:
        _check_range("battery", self.battery, 100)
        if len(self.firmware) != 3:
            raise ValueError(f"firmware must be (major, minor, patch), got {self.firmware}")
        for part in self.firmware:
            _check_range("firmware part", part, 255)
        _check_range("lock_clock_ms", self.lock_clock_ms, _U64_MAX)
        _check_range("counter", self.counter, _U32_MAX)
        _check_range("acked", self.acked, self.counter)

    @property
    def firmware_version(self) -> str:
        """The firmware as "major.minor.patch"."""
        return ".".join(str(part) for part in self.firmware)


def lock_name(lock_id: int) -> str:
    """The complete local name a lock puts in its scan response."""
    _check_range("lock_id", lock_id, _U32_MAX)
    return f"{NAME_PREFIX}{lock_id}"


def encode_advert(advert: LockAdvert) -> bytes:
    """The 10-byte manufacturer-data payload (after the company id) of a lock's advertisement."""
    return _ADVERT.pack(VERSION, advert.lock_id, advert.counter, advert.battery)


def decode_advert(payload: bytes) -> LockAdvert:
    """Parse the manufacturer-data payload (company id stripped); raises `LockProtocolError`."""
    _check_version(payload, "advertisement")
    _check_size(payload, ADVERT_SIZE, "advertisement")
    _, lock_id, counter, battery = _ADVERT.unpack(payload)
    with _out_of_range(payload):
        return LockAdvert(lock_id, counter, battery)


def encode_entry(entry: LogEntry) -> bytes:
    """The 23 bytes of one log entry."""
    integer, exponent = split_amount(entry.amount)
    return _ENTRY.pack(
        entry.seq,
        entry.lock_time_ms,
        ACTION_CODES[entry.action],
        entry.badge,
        integer,
        exponent,
        UNIT_CODES[entry.unit],
    )


def decode_entry(data: bytes) -> LogEntry:
    """Parse the 23 bytes of one log entry; raises `LockProtocolError`."""
    _check_size(data, ENTRY_SIZE, "log entry")
    seq, lock_time_ms, action_code, badge, integer, exponent, unit_code = _ENTRY.unpack(data)
    action = _ACTIONS.get(action_code)
    if action is None:
        raise LockProtocolError(
            f"seq {seq}: unknown action code {action_code}", reason="unknown_code", data=data
        )
    if unit_code not in _UNITS:
        raise LockProtocolError(
            f"seq {seq}: unknown unit code {unit_code}", reason="unknown_code", data=data
        )
    amount = join_amount(integer, exponent)
    with _out_of_range(data):
        return LogEntry(seq, lock_time_ms, action, badge, amount, _UNITS[unit_code])


def encode_log_page(entries: Sequence[LogEntry]) -> bytes:
    """The event-log value: version, count and at most `MAX_ENTRIES_PER_READ` entries."""
    if len(entries) > MAX_ENTRIES_PER_READ:
        raise ValueError(f"a page holds at most {MAX_ENTRIES_PER_READ} entries, got {len(entries)}")
    header = _PAGE_HEADER.pack(VERSION, len(entries))
    return header + b"".join(encode_entry(entry) for entry in entries)


def decode_log_page(value: bytes) -> list[LogEntry]:
    """Parse an event-log value into its entries (oldest first); raises `LockProtocolError`."""
    _check_version(value, "log page")
    if len(value) < _PAGE_HEADER.size:
        raise LockProtocolError(
            "log page of 1 byte, it has at least 2 (version, count)", reason="truncated", data=value
        )
    count = value[1]
    if count > MAX_ENTRIES_PER_READ:
        raise LockProtocolError(
            f"count says {count} entries, a page holds at most {MAX_ENTRIES_PER_READ}",
            reason="malformed",
            data=value,
        )
    body = value[_PAGE_HEADER.size :]
    if len(body) != count * ENTRY_SIZE:
        raise LockProtocolError(
            f"count says {count} entries ({count * ENTRY_SIZE} bytes) "
            f"but {len(body)} bytes follow the header",
            reason="count_mismatch",
            data=value,
        )
    entries = [_decode_page_entry(value, body, index, count) for index in range(count)]
    _check_ascending(value, entries)
    return entries


def _decode_page_entry(value: bytes, body: bytes, index: int, count: int) -> LogEntry:
    """One entry of a page; a refusal names its place and carries the whole page."""
    try:
        return decode_entry(body[index * ENTRY_SIZE : (index + 1) * ENTRY_SIZE])
    except LockProtocolError as exc:
        raise LockProtocolError(
            f"entry {index + 1} of {count}: {exc.detail}", reason=exc.reason, data=value
        ) from exc


def encode_ack(seq: int) -> bytes:
    """The acknowledge value: the highest lock seq the gateway has committed."""
    _check_range("ack seq", seq, _U32_MAX)
    return _ACK.pack(seq)


def decode_ack(value: bytes) -> int:
    """Parse an acknowledge value; raises `LockProtocolError`."""
    _check_size(value, _ACK.size, "acknowledge")
    (seq,) = _ACK.unpack(value)
    return int(seq)


def encode_status(status: LockStatus) -> bytes:
    """The 21-byte status value."""
    return _STATUS.pack(
        VERSION,
        status.battery,
        *status.firmware,
        status.lock_clock_ms,
        status.counter,
        status.acked,
    )


def decode_status(value: bytes) -> LockStatus:
    """Parse a status value; raises `LockProtocolError`."""
    _check_version(value, "status")
    _check_size(value, STATUS_SIZE, "status")
    _, battery, major, minor, patch, clock_ms, counter, acked = _STATUS.unpack(value)
    with _out_of_range(value):
        return LockStatus(battery, (major, minor, patch), clock_ms, counter, acked)


def _check_version(data: bytes, what: str) -> None:
    if not data:
        raise LockProtocolError(f"empty {what}", reason="truncated", data=data)
    if data[0] != VERSION:
        raise LockProtocolError(
            f"{what} version {data[0]}, only version {VERSION} is known",
            reason="bad_version",
            data=data,
        )


def _check_size(data: bytes, size: int, what: str) -> None:
    if len(data) != size:
        raise LockProtocolError(
            f"{what} of {len(data)} bytes, it has {size}",
            reason="truncated" if len(data) < size else "malformed",
            data=data,
        )


def _check_ascending(value: bytes, entries: Sequence[LogEntry]) -> None:
    """A page lists distinct seqs oldest first; anything else is a broken lock, not a log."""
    for before, after in pairwise(entries):
        if after.seq <= before.seq:
            raise LockProtocolError(
                f"seq {after.seq} follows seq {before.seq}: a page is in ascending seq order",
                reason="malformed",
                data=value,
            )


@contextmanager
def _out_of_range(data: bytes) -> Iterator[None]:
    """A value object refusing decoded fields (battery 180, acked past counter) is malformed."""
    try:
        yield
    except ValueError as exc:
        raise LockProtocolError(str(exc), reason="malformed", data=data) from exc
