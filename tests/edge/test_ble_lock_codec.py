"""The BLE lock codec against known bytes, property round trips and every refusal (no I/O).

Layouts: docs/ble-lock-protocol.md. All integers little-endian.
"""

import re
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.codecs.ble_lock import (
    ADVERT_SIZE,
    ENTRY_SIZE,
    MAX_ENTRIES_PER_READ,
    MAX_PAGE_SIZE,
    STATUS_SIZE,
    LockAdvert,
    LockProtocolError,
    LockStatus,
    LogEntry,
    decode_ack,
    decode_advert,
    decode_entry,
    decode_log_page,
    decode_status,
    encode_ack,
    encode_advert,
    encode_entry,
    encode_log_page,
    encode_status,
    join_amount,
    lock_name,
    split_amount,
)
from edge.errors import FrameError

# seq 1, lock time 1_780_000_000_123 ms, closed, badge 4242, 1234 x 10^-3, kg
ENTRY = LogEntry(
    seq=1,
    lock_time_ms=1_780_000_000_123,
    action="closed",
    badge=4242,
    amount=Decimal("1.234"),
    unit="kg",
)
ENTRY_BYTES = bytes.fromhex(
    "01000000"  # seq u32
    "7b8844709e010000"  # lock_time_ms u64
    "02"  # action: closed
    "92100000"  # badge u32: 4242
    "d2040000"  # amount i32: 1234
    "fd"  # exponent i8: -3
    "01"  # unit: kg
)
# lock 1001, counter 17, battery 87 %
ADVERT_BYTES = bytes.fromhex("01e90300001100000057")
STATUS = LockStatus(
    battery=55, firmware=(2, 7, 1), lock_clock_ms=1_780_000_000_500, counter=40, acked=22
)
STATUS_BYTES = bytes.fromhex("0137020701f48944709e0100002800000016000000")


def test_sizes_fit_one_att_attribute() -> None:
    assert (ADVERT_SIZE, ENTRY_SIZE, STATUS_SIZE) == (10, 23, 21)
    assert MAX_PAGE_SIZE == 2 + 22 * 23 == 508  # an attribute value holds at most 512 bytes
    assert MAX_ENTRIES_PER_READ == 22


def test_entry_known_bytes() -> None:
    assert encode_entry(ENTRY) == ENTRY_BYTES
    assert decode_entry(ENTRY_BYTES) == ENTRY


def test_advert_known_bytes() -> None:
    advert = LockAdvert(lock_id=1001, counter=17, battery=87)
    assert encode_advert(advert) == ADVERT_BYTES
    assert decode_advert(ADVERT_BYTES) == advert


def test_status_known_bytes() -> None:
    assert encode_status(STATUS) == STATUS_BYTES
    assert decode_status(STATUS_BYTES) == STATUS
    assert STATUS.firmware_version == "2.7.1"


def test_page_known_bytes_and_empty_page() -> None:
    assert encode_log_page([ENTRY]) == b"\x01\x01" + ENTRY_BYTES
    assert decode_log_page(b"\x01\x01" + ENTRY_BYTES) == [ENTRY]
    assert encode_log_page([]) == b"\x01\x00"
    assert decode_log_page(b"\x01\x00") == []


def test_ack_known_bytes() -> None:
    assert encode_ack(0x01020304) == bytes.fromhex("04030201")
    assert decode_ack(bytes.fromhex("04030201")) == 0x01020304


def test_lock_name() -> None:
    assert lock_name(1001) == "TG-LOCK-1001"


@pytest.mark.parametrize(
    ("integer", "exponent", "text"),
    [
        (1234, -3, "1.234"),
        (-1234, -3, "-1.234"),
        (250, -2, "2.50"),  # the exponent is kept: 2.50, not 2.5
        (0, -3, "0.000"),
        (7, 0, "7"),
        (5, 3, "5E+3"),
        (1, -127, "1E-127"),
        (2**31 - 1, -128, "2.147483647E-119"),
        (-(2**31), 127, "-2.147483648E+136"),
    ],
)
def test_amounts_are_exact_decimals(integer: int, exponent: int, text: str) -> None:
    amount = join_amount(integer, exponent)
    assert str(amount) == text
    assert amount == Decimal(text)
    assert split_amount(amount) == (integer, exponent)


def test_amount_that_is_too_long_moves_trailing_zeros_into_the_exponent() -> None:
    assert split_amount(Decimal("3000000000")) == (300000000, 1)  # 3e9 passes i32
    assert split_amount(Decimal("0E+200")) == (0, 127)


@pytest.mark.parametrize(
    "amount",
    ["12345678901", "1.0000000000000000000000000000001", "1E-200", "5E+130", "NaN", "Infinity"],
)
def test_amounts_that_do_not_fit_are_refused_never_rounded(amount: str) -> None:
    with pytest.raises(ValueError, match="amount"):
        split_amount(Decimal(amount))
    with pytest.raises(ValueError, match="amount"):
        LogEntry(seq=1, lock_time_ms=0, action="closed", amount=Decimal(amount), unit="kg")


def test_entry_refuses_a_float_amount() -> None:
    with pytest.raises(TypeError, match="Decimal"):
        LogEntry(seq=1, lock_time_ms=0, action="closed", amount=1.5, unit="kg")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"seq": 0}, "seq must be in 1.."),
        ({"seq": 2**32}, "seq must be in 1.."),
        ({"lock_time_ms": -1}, "lock_time_ms"),
        ({"badge": 2**32}, "badge"),
        ({"action": "jammed"}, "action must be"),
        ({"unit": "lb"}, "unit must be"),
    ],
)
def test_entry_validates_when_built(fields: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"seq": 1, "lock_time_ms": 0, "action": "opened"} | fields
    with pytest.raises(ValueError, match=message):
        LogEntry(**values)  # type: ignore[arg-type]


def test_status_and_advert_validate_when_built() -> None:
    with pytest.raises(ValueError, match="battery"):
        LockAdvert(lock_id=1, counter=0, battery=101)
    with pytest.raises(ValueError, match=r"acked must be in 0\.\.3"):
        LockStatus(battery=1, firmware=(1, 0, 0), lock_clock_ms=0, counter=3, acked=4)
    with pytest.raises(ValueError, match="firmware"):
        LockStatus(battery=1, firmware=(1, 0), lock_clock_ms=0, counter=0, acked=0)  # type: ignore[arg-type]


def test_page_of_more_than_22_entries_is_refused_when_encoding() -> None:
    entries = [LogEntry(seq=n, lock_time_ms=n, action="opened") for n in range(1, 24)]
    with pytest.raises(ValueError, match="at most 22"):
        encode_log_page(entries)


# Decoding refusals: each names what is wrong.


def _entry(**fields: int) -> bytes:
    """ENTRY_BYTES with some fields replaced (raw integers, to build bad entries)."""
    raw = bytearray(ENTRY_BYTES)
    offsets = {"action": (12, 1), "unit": (22, 1), "seq": (0, 4)}
    for name, value in fields.items():
        start, size = offsets[name]
        raw[start : start + size] = value.to_bytes(size, "little")
    return bytes(raw)


@pytest.mark.parametrize(
    ("decode", "data", "reason", "message"),
    [
        (decode_advert, b"", "truncated", "empty advertisement"),
        (decode_advert, ADVERT_BYTES[:9], "truncated", "advertisement of 9 bytes, it has 10"),
        (decode_advert, ADVERT_BYTES + b"\x00", "malformed", "advertisement of 11 bytes"),
        (decode_advert, b"\x02" + ADVERT_BYTES[1:], "bad_version", "advertisement version 2"),
        (decode_advert, ADVERT_BYTES[:9] + b"\xb4", "malformed", "battery must be in 0..100"),
        (decode_status, STATUS_BYTES[:20], "truncated", "status of 20 bytes, it has 21"),
        (decode_status, b"\x00" + STATUS_BYTES[1:], "bad_version", "status version 0"),
        (
            decode_status,
            STATUS_BYTES[:13] + (5).to_bytes(4, "little") + (6).to_bytes(4, "little"),
            "malformed",
            "acked must be in 0..5, got 6",
        ),
        (decode_ack, b"\x01\x00", "truncated", "acknowledge of 2 bytes, it has 4"),
        (decode_ack, b"\x01\x00\x00\x00\x00", "malformed", "acknowledge of 5 bytes"),
        (decode_entry, ENTRY_BYTES[:22], "truncated", "log entry of 22 bytes, it has 23"),
        (decode_entry, _entry(action=3), "unknown_code", "seq 1: unknown action code 3"),
        (decode_entry, _entry(unit=9), "unknown_code", "seq 1: unknown unit code 9"),
        (decode_entry, _entry(seq=0), "malformed", "seq must be in 1.."),
        (decode_log_page, b"", "truncated", "empty log page"),
        (decode_log_page, b"\x01", "truncated", "log page of 1 byte"),
        (decode_log_page, b"\x07\x00", "bad_version", "log page version 7"),
        (
            decode_log_page,
            b"\x01\x02" + ENTRY_BYTES,
            "count_mismatch",
            "count says 2 entries (46 bytes) but 23 bytes follow the header",
        ),
        (
            decode_log_page,
            b"\x01\x01" + ENTRY_BYTES + b"\x00",
            "count_mismatch",
            "count says 1 entries (23 bytes) but 24 bytes follow the header",
        ),
        (
            decode_log_page,
            b"\x01\x00" + ENTRY_BYTES,
            "count_mismatch",
            "count says 0 entries (0 bytes) but 23 bytes follow",
        ),
        (decode_log_page, b"\x01\x17", "malformed", "count says 23 entries, a page holds at most"),
        (
            decode_log_page,
            b"\x01\x02" + ENTRY_BYTES + _entry(action=4),
            "unknown_code",
            "entry 2 of 2: seq 1: unknown action code 4",
        ),
        (
            decode_log_page,
            b"\x01\x02" + ENTRY_BYTES + ENTRY_BYTES,
            "malformed",
            "seq 1 follows seq 1: a page is in ascending seq order",
        ),
    ],
)
def test_decode_refusals_name_what_is_wrong(
    decode: Callable[[bytes], object], data: bytes, reason: str, message: str
) -> None:
    with pytest.raises(LockProtocolError, match=re.escape(message)) as error:
        decode(data)
    assert error.value.reason == reason
    assert error.value.data == data
    assert data.hex() in str(error.value)  # the raw bytes travel in the message
    assert isinstance(error.value, FrameError)  # counted like any undecodable device answer


# Properties: whatever a lock can say decodes to the same values, and back to the same bytes.

amounts = st.builds(join_amount, st.integers(-(2**31), 2**31 - 1), st.integers(-128, 127))
entries = st.builds(
    LogEntry,
    seq=st.integers(1, 2**32 - 1),
    lock_time_ms=st.integers(0, 2**64 - 1),
    action=st.sampled_from(["opened", "closed"]),
    badge=st.integers(0, 2**32 - 1),
    amount=amounts,
    unit=st.sampled_from([None, "kg", "l", "g", "ml"]),
)


@st.composite
def pages(draw: st.DrawFn) -> list[LogEntry]:
    """Up to 22 entries with ascending seqs, as a lock serves them."""
    chosen = draw(st.lists(entries, max_size=MAX_ENTRIES_PER_READ))
    seqs = sorted(
        draw(st.sets(st.integers(1, 2**32 - 1), min_size=len(chosen), max_size=len(chosen)))
    )
    return [
        LogEntry(seq, e.lock_time_ms, e.action, e.badge, e.amount, e.unit)
        for seq, e in zip(seqs, chosen, strict=True)
    ]


@given(entries)
def test_entry_round_trip(entry: LogEntry) -> None:
    data = encode_entry(entry)
    assert len(data) == ENTRY_SIZE
    decoded = decode_entry(data)
    assert decoded == entry
    assert decoded.amount.as_tuple() == entry.amount.as_tuple()  # same digits, same exponent
    assert encode_entry(decoded) == data


@given(pages())
def test_page_round_trip(page: list[LogEntry]) -> None:
    data = encode_log_page(page)
    assert len(data) == 2 + len(page) * ENTRY_SIZE <= MAX_PAGE_SIZE
    assert decode_log_page(data) == page


@given(st.binary(min_size=ENTRY_SIZE, max_size=ENTRY_SIZE))
def test_any_23_bytes_decode_or_are_refused_cleanly(data: bytes) -> None:
    try:
        entry = decode_entry(data)
    except LockProtocolError:
        return
    assert encode_entry(entry) == data


@given(
    st.builds(
        LockAdvert,
        lock_id=st.integers(0, 2**32 - 1),
        counter=st.integers(0, 2**32 - 1),
        battery=st.integers(0, 100),
    )
)
def test_advert_round_trip(advert: LockAdvert) -> None:
    assert decode_advert(encode_advert(advert)) == advert


@given(
    st.integers(0, 2**32 - 1).flatmap(
        lambda counter: st.builds(
            LockStatus,
            battery=st.integers(0, 100),
            firmware=st.tuples(*[st.integers(0, 255)] * 3),
            lock_clock_ms=st.integers(0, 2**64 - 1),
            counter=st.just(counter),
            acked=st.integers(0, counter),
        )
    )
)
def test_status_round_trip(status: LockStatus) -> None:
    assert decode_status(encode_status(status)) == status


@given(st.integers(0, 2**32 - 1))
def test_ack_round_trip(seq: int) -> None:
    assert decode_ack(encode_ack(seq)) == seq
