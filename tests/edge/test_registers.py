"""The register codec against known register tables (no I/O)."""

from decimal import Decimal

import pytest

from edge.codecs.registers import (
    decode_bits,
    decode_registers,
    encode_value,
    max_value,
    register_count,
    scale_value,
    to_decimal,
    value_range,
)
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
    [("int24", "big", "unknown register type 'int24'"), ("uint16", "middle", "unknown word order")],
)
def test_unknown_layouts_are_refused(type_: str, word_order: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_registers([0], type=type_, word_order=word_order)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        encode_value(0, type=type_, word_order=word_order)  # type: ignore[arg-type]


# Every type in the four layouts: (value, type, registers as served in ABCD = big bytes and big
# words, CDAB = big bytes/little words, BADC = little bytes/big words, DCBA = little/little)
LAYOUTS = [("big", "big"), ("big", "little"), ("little", "big"), ("little", "little")]
TYPED = [
    (0x1234, "uint16", [[0x1234], [0x1234], [0x3412], [0x3412]]),
    (0xFFFF, "uint16", [[0xFFFF]] * 4),
    (-2, "int16", [[0xFFFE], [0xFFFE], [0xFEFF], [0xFEFF]]),
    (-32768, "int16", [[0x8000], [0x8000], [0x0080], [0x0080]]),
    (32767, "int16", [[0x7FFF], [0x7FFF], [0xFF7F], [0xFF7F]]),
    (
        0x12345678,
        "uint32",
        [[0x1234, 0x5678], [0x5678, 0x1234], [0x3412, 0x7856], [0x7856, 0x3412]],
    ),
    (
        -2,
        "int32",
        [[0xFFFF, 0xFFFE], [0xFFFE, 0xFFFF], [0xFFFF, 0xFEFF], [0xFEFF, 0xFFFF]],
    ),
    (
        -(2**31),
        "int32",
        [[0x8000, 0x0000], [0x0000, 0x8000], [0x0080, 0x0000], [0x0000, 0x0080]],
    ),
    (
        0x0102030405060708,
        "uint64",
        [
            [0x0102, 0x0304, 0x0506, 0x0708],
            [0x0708, 0x0506, 0x0304, 0x0102],
            [0x0201, 0x0403, 0x0605, 0x0807],
            [0x0807, 0x0605, 0x0403, 0x0201],
        ],
    ),
    (2**64 - 1, "uint64", [[0xFFFF] * 4] * 4),
    (-1, "int64", [[0xFFFF] * 4] * 4),
    (
        -(2**63),
        "int64",
        [[0x8000, 0, 0, 0], [0, 0, 0, 0x8000], [0x0080, 0, 0, 0], [0, 0, 0, 0x0080]],
    ),
    (
        -(2**63) + 0x0102,
        "int64",
        [
            [0x8000, 0, 0, 0x0102],
            [0x0102, 0, 0, 0x8000],
            [0x0080, 0, 0, 0x0201],
            [0x0201, 0, 0, 0x0080],
        ],
    ),
    (1.5, "float32", [[0x3FC0, 0x0000], [0x0000, 0x3FC0], [0xC03F, 0x0000], [0x0000, 0xC03F]]),
    (-2.0, "float32", [[0xC000, 0x0000], [0x0000, 0xC000], [0x00C0, 0x0000], [0x0000, 0x00C0]]),
    (
        1.5,
        "float64",
        [[0x3FF8, 0, 0, 0], [0, 0, 0, 0x3FF8], [0xF83F, 0, 0, 0], [0, 0, 0, 0xF83F]],
    ),
    (
        -0.1,
        "float64",
        [
            [0xBFB9, 0x9999, 0x9999, 0x999A],
            [0x999A, 0x9999, 0x9999, 0xBFB9],
            [0xB9BF, 0x9999, 0x9999, 0x9A99],
            [0x9A99, 0x9999, 0x9999, 0xB9BF],
        ],
    ),
]
TYPED_CASES = [
    pytest.param(value, type_, byte_order, word_order, served[index], id=f"{type_}-{value}-{index}")
    for value, type_, served in TYPED
    for index, (byte_order, word_order) in enumerate(LAYOUTS)
]


@pytest.mark.parametrize(("value", "type_", "byte_order", "word_order", "registers"), TYPED_CASES)
def test_decode_every_type_and_layout(
    value: float, type_: str, byte_order: str, word_order: str, registers: list[int]
) -> None:
    decoded = decode_registers(
        registers,
        type=type_,  # type: ignore[arg-type]
        word_order=word_order,  # type: ignore[arg-type]
        byte_order=byte_order,  # type: ignore[arg-type]
    )
    assert decoded == value
    assert type(decoded) is type(value)


@pytest.mark.parametrize(("value", "type_", "byte_order", "word_order", "registers"), TYPED_CASES)
def test_encode_every_type_and_layout(
    value: float, type_: str, byte_order: str, word_order: str, registers: list[int]
) -> None:
    encoded = encode_value(
        value,
        type=type_,  # type: ignore[arg-type]
        word_order=word_order,  # type: ignore[arg-type]
        byte_order=byte_order,  # type: ignore[arg-type]
    )
    assert encoded == registers


@pytest.mark.parametrize(
    ("type_", "count", "low", "high"),
    [
        ("int16", 1, -(2**15), 2**15 - 1),
        ("uint16", 1, 0, 2**16 - 1),
        ("int32", 2, -(2**31), 2**31 - 1),
        ("uint32", 2, 0, 2**32 - 1),
        ("int64", 4, -(2**63), 2**63 - 1),
        ("uint64", 4, 0, 2**64 - 1),
    ],
)
def test_integer_ranges(type_: str, count: int, low: int, high: int) -> None:
    assert register_count(type_) == count  # type: ignore[arg-type]
    assert value_range(type_) == (low, high)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not fit"):
        encode_value(high + 1, type=type_, word_order="big")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not fit"):
        encode_value(low - 1, type=type_, word_order="big")  # type: ignore[arg-type]


def test_float_sizes_and_overflow() -> None:
    assert register_count("float32") == 2
    assert register_count("float64") == 4
    with pytest.raises(ValueError, match="does not fit a float32"):
        encode_value(1e39, type="float32", word_order="big")
    with pytest.raises(ValueError, match="must be a number"):
        encode_value("1", type="float32", word_order="big")  # type: ignore[arg-type]


def test_unknown_byte_order_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown byte order 'middle'"):
        decode_registers([0], type="uint16", word_order="big", byte_order="middle")  # type: ignore[arg-type]


# (raw value as decoded, type, scale, offset, engineering value)
SCALED = [
    (1234, "uint16", "0.1", "0", "123.4"),
    (-2, "int16", "0.5", "10", "9.0"),
    (2**64 - 1, "uint64", "1", "0", "18446744073709551615"),
    (7, "uint32", "1", "-273.15", "-266.15"),
    (True, "bool", "1", "0", "1"),
    (False, "bool", "5", "1", "1"),
    (0.10000000149011612, "float32", "1", "0", "0.1"),  # the float32 nearest 0.1 means 0.1
    (1.5, "float32", "2", "0.25", "3.25"),
    (10.0, "float32", "1", "0", "10"),
    (0.1, "float64", "3", "0", "0.3"),  # Decimal arithmetic: 0.1 * 3 is exactly 0.3
    (-0.1, "float64", "1", "0", "-0.1"),
]


@pytest.mark.parametrize(("raw", "type_", "scale", "offset", "expected"), SCALED)
def test_scale_is_decimal_arithmetic(
    raw: float, type_: str, scale: str, offset: str, expected: str
) -> None:
    value = scale_value(raw, type=type_, scale=Decimal(scale), offset=Decimal(offset))  # type: ignore[arg-type]
    assert isinstance(value, Decimal)
    assert value == Decimal(expected)
    assert str(value) == expected


def test_float32_round_trips_through_the_registers() -> None:
    registers = encode_value(0.1, type="float32", word_order="little", byte_order="little")
    raw = decode_registers(registers, type="float32", word_order="little", byte_order="little")
    assert to_decimal(raw, type="float32") == Decimal("0.1")


@pytest.mark.parametrize("raw", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_are_frame_errors(raw: float) -> None:
    with pytest.raises(FrameError, match="not a finite number"):
        scale_value(raw, type="float32", scale=Decimal(1), offset=Decimal(0))


def test_bits_are_cut_to_the_count_asked() -> None:
    assert decode_bits([True, False, True, False, False, False, False, False], count=3) == [
        True,
        False,
        True,
    ]
    with pytest.raises(FrameError, match="asked for 9 bit"):
        decode_bits([False] * 8, count=9)
