"""The IT-100 frame codec, with byte tables (DSC IT-100 Developer's Guide, sections 3 and 4)."""

import pytest

from edge.codecs.it100 import (
    Frame,
    It100FrameError,
    checksum,
    decode_frame,
    encode_bad_frame,
    encode_frame,
    is_known,
)
from edge.errors import FrameError


def test_checksum_is_the_low_byte_of_the_ascii_sum() -> None:
    # "000": 3 * 0x30 = 0x90; "6521": 0x36+0x35+0x32+0x31 = 0xCE; "65210": 0xCE + 0x30 = 0xFE.
    assert checksum("000") == "90"
    assert checksum("6521") == "CE"
    assert checksum("65210") == "FE"
    # The sum passes 0xFF: only the low byte counts.
    assert checksum("7001" + "9999") == f"{sum(b'70019999') & 0xFF:02X}"


@pytest.mark.parametrize(
    ("command", "data", "wire"),
    [
        ("000", "", b"00090\r\n"),
        ("001", "", b"00191\r\n"),
        ("652", "10", b"65210FE\r\n"),
        ("500", "000", b"500000" + f"{sum(b'500000') & 0xFF:02X}".encode() + b"\r\n"),
        ("700", "10040", b"70010040" + f"{sum(b'70010040') & 0xFF:02X}".encode() + b"\r\n"),
    ],
)
def test_encode_frame(command: str, data: str, wire: bytes) -> None:
    assert encode_frame(command, data) == wire
    assert decode_frame(wire) == Frame(command, data)


@pytest.mark.parametrize(
    ("wire", "frame"),
    [
        (b"65210FE\r\n", Frame("652", "10")),
        (b"65210fe\r\n", Frame("652", "10")),  # lowercase checksum is accepted
        (b"65210FE", Frame("652", "10")),  # the terminator is optional
        (b"65210FE\n", Frame("652", "10")),
        (encode_frame("601", "1004"), Frame("601", "1004")),
        (encode_frame("655", "1"), Frame("655", "1")),
        (encode_frame("750", "20041"), Frame("750", "20041")),
        (encode_frame("609", "005"), Frame("609", "005")),
        (encode_frame("625"), Frame("625", "")),
        (encode_frame("999", "xyz"), Frame("999", "xyz")),  # unknown commands decode fine
    ],
)
def test_decode_good_frames(wire: bytes, frame: Frame) -> None:
    assert decode_frame(wire) == frame


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"65210FF\r\n", "bad_checksum"),
        (encode_bad_frame("000"), "bad_checksum"),
        (b"\r\n", "truncated"),
        (b"0009\r\n", "truncated"),
        (encode_frame("652", "1"), "truncated"),  # 652 needs partition and mode
        (encode_frame("700", "1004"), "truncated"),  # user code cut short
        (b"6A210" + checksum("6A210").encode() + b"\r\n", "malformed"),  # non-digit command
        (b"65210\xfeFE\r\n", "malformed"),  # non-ASCII
        (b"65210ZZ\r\n", "malformed"),  # checksum not hex
        (encode_frame("652", "14"), "malformed"),  # arm mode 4 does not exist
        (encode_frame("652", "90"), "malformed"),  # partition 9 does not exist
        (encode_frame("655", "12"), "malformed"),  # too much data
    ],
)
def test_decode_rejects_bad_lines(wire: bytes, reason: str) -> None:
    with pytest.raises(It100FrameError) as caught:
        decode_frame(wire)
    assert caught.value.reason == reason
    assert caught.value.line == wire
    assert repr(wire) in str(caught.value)
    assert isinstance(caught.value, FrameError)


def test_bad_frame_encoder_really_is_bad() -> None:
    good, bad = encode_frame("652", "10"), encode_bad_frame("652", "10")
    assert good[:5] == bad[:5] and good != bad


@pytest.mark.parametrize(
    ("command", "known"),
    [
        ("000", True),
        ("500", True),
        ("652", True),
        ("700", True),
        ("751", True),
        ("550", True),
        ("510", True),
        ("903", True),
        ("999", False),
        ("123", False),
    ],
)
def test_is_known(command: str, known: bool) -> None:
    assert is_known(command) is known


@pytest.mark.parametrize(
    "wire", [b"5501030112126", b"51081", b"90321", b"90100016Date     Time", b"908010100"]
)
def test_traffic_without_usage_decodes_with_any_data(wire: bytes) -> None:
    # Time broadcasts, LED and LCD updates: known, their data never checked (nor read).
    body = wire.decode()
    frame = decode_frame(wire + checksum(body).encode() + b"\r\n")
    assert (frame.command, frame.data) == (body[:3], body[3:])


@pytest.mark.parametrize(("command", "data"), [("65", ""), ("6520", ""), ("abc", ""), ("652", "é")])
def test_frame_refuses_bad_values(command: str, data: str) -> None:
    with pytest.raises(ValueError):
        Frame(command, data)
