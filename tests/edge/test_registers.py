"""The register codec against known register tables (no I/O)."""

import pytest

from edge.codecs.registers import decode_registers, encode_value, max_value, register_count
from edge.errors import FrameError

# (value, type, word_order, registers as a device serves them)
TABLE = [
    (0, "uint16", "big", [0x0000]),
    (1, "uint16", "big", [0x0001]),
    (0x1234, "uint16", "big", [0x1234]),
    (0x1234, "uint16", "little", [0x1234]),  # one register: word order does not apply
    (0xFFFF, "uint16", "big", [0xFFFF]),
    (0xFFFF, "uint16", "little", [0xFFFF]),
    (0, "uint32", "big", [0x0000, 0x0000]),
    (0, "uint32", "little", [0x0000, 0x0000]),
    (0x12345678, "uint32", "big", [0x1234, 0x5678]),
    (0x12345678, "uint32", "little", [0x5678, 0x1234]),
    (0x00010000, "uint32", "big", [0x0001, 0x0000]),
    (0x00010000, "uint32", "little", [0x0000, 0x0001]),
    (70_000, "uint32", "big", [0x0001, 0x1170]),
    (70_000, "uint32", "little", [0x1170, 0x0001]),
    (0xFFFFFFFF, "uint32", "big", [0xFFFF, 0xFFFF]),
    (0xFFFFFFFF, "uint32", "little", [0xFFFF, 0xFFFF]),
]


@pytest.mark.parametrize(("value", "type_", "word_order", "registers"), TABLE)
def test_decode(value: int, type_: str, word_order: str, registers: list[int]) -> None:
    assert decode_registers(registers, type=type_, word_order=word_order) == value  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "type_", "word_order", "registers"), TABLE)
def test_encode(value: int, type_: str, word_order: str, registers: list[int]) -> None:
    assert encode_value(value, type=type_, word_order=word_order) == registers  # type: ignore[arg-type]


def test_decode_accepts_any_sequence() -> None:
    assert decode_registers((0x1234, 0x5678), type="uint32", word_order="big") == 0x12345678


@pytest.mark.parametrize(
    ("type_", "count", "maximum"), [("uint16", 1, 0xFFFF), ("uint32", 2, 0xFFFFFFFF)]
)
def test_sizes(type_: str, count: int, maximum: int) -> None:
    assert register_count(type_) == count  # type: ignore[arg-type]
    assert max_value(type_) == maximum  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("registers", "type_", "message"),
    [
        ([], "uint16", "a uint16 spans 1 register(s), got 0"),
        ([1, 2], "uint16", "a uint16 spans 1 register(s), got 2"),
        ([1], "uint32", "a uint32 spans 2 register(s), got 1"),
        ([1, 2, 3], "uint32", "a uint32 spans 2 register(s), got 3"),
        ([0x10000], "uint16", "register 0 is 65536, outside 0..65535"),
        ([-1], "uint16", "register 0 is -1, outside 0..65535"),
        ([0, 0x10000], "uint32", "register 1 is 65536, outside 0..65535"),
        ([1.5], "uint16", "register 0 is 1.5, not an integer"),
        ([True], "uint16", "register 0 is True, not an integer"),
    ],
)
def test_decode_refuses_bad_frames(registers: list[int], type_: str, message: str) -> None:
    with pytest.raises(FrameError) as caught:
        decode_registers(registers, type=type_, word_order="big")  # type: ignore[arg-type]
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("value", "type_", "message"),
    [
        (-1, "uint16", "-1 does not fit a uint16"),
        (0x10000, "uint16", "65536 does not fit a uint16"),
        (0x100000000, "uint32", "4294967296 does not fit a uint32"),
        (1.0, "uint16", "must be an integer"),
    ],
)
def test_encode_refuses_values_that_do_not_fit(value: int, type_: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_value(value, type=type_, word_order="big")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("type_", "word_order", "message"),
    [("int16", "big", "unknown register type 'int16'"), ("uint16", "middle", "unknown word order")],
)
def test_unknown_layouts_are_refused(type_: str, word_order: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_registers([0], type=type_, word_order=word_order)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        encode_value(0, type=type_, word_order=word_order)  # type: ignore[arg-type]
