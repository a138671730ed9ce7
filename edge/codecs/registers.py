"""Modbus registers and bits <-> values: the pure, sync codec under the Modbus driver.

Each register travels big-endian on the wire (Modbus Application Protocol v1.1b3, section 4.2:
https://modbus.org/docs/Modbus_Application_Protocol_V1_1b3.pdf). What the standard leaves open,
and devices disagree on, is:

- the byte order inside each register: "big" is the standard; "little" devices swap the two bytes
  of every register (0x1234 is served as 0x3412);
- the word order of a value wider than 16 bits: "big" puts the most significant register first
  (0x12345678 -> [0x1234, 0x5678]); "little" puts it last ([0x5678, 0x1234]).

Together they cover the four layouts vendors call ABCD (big/big), CDAB (big bytes, little words),
BADC (little bytes, big words) and DCBA (little/little).

Written with `struct` by hand instead of pymodbus's `convert_from_registers`, which only knows word
order. Engineering values are `value * scale + offset` computed in `Decimal`: a float register is
converted through its shortest repr (`Decimal(repr(x))`), so 0.1 stays 0.1 and no float arithmetic
touches a billed quantity.

A malformed answer from a device (wrong register count, a register outside 0..65535, a float that
is NaN or infinite) raises `FrameError`; a value that does not fit the type when encoding is our
own mistake and raises `ValueError`.
"""

import math
import struct
from collections.abc import Sequence
from decimal import Decimal
from typing import Literal

from edge.errors import FrameError

RegisterType = Literal[
    "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"
]
PointType = Literal[
    "bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"
]
ByteOrder = Literal["big", "little"]
WordOrder = Literal["big", "little"]

# struct code of one value (always packed most significant byte first) and registers it spans.
_FORMATS: dict[str, tuple[str, int]] = {
    "int16": ("h", 1),
    "uint16": ("H", 1),
    "int32": ("i", 2),
    "uint32": ("I", 2),
    "int64": ("q", 4),
    "uint64": ("Q", 4),
    "float32": ("f", 2),
    "float64": ("d", 4),
}
REGISTER_TYPES = frozenset(_FORMATS)
INTEGER_TYPES = frozenset(t for t in _FORMATS if not t.startswith("float"))
FLOAT_TYPES = REGISTER_TYPES - INTEGER_TYPES
_ORDERS = ("big", "little")
REGISTER_MAX = 0xFFFF


def register_count(type: RegisterType) -> int:
    """How many 16-bit registers a value of `type` spans."""
    return _format(type)[1]


def max_value(type: RegisterType) -> int:
    """The largest unsigned bit pattern of `type` (a counter wraps to 0 after it)."""
    return (1 << (16 * register_count(type))) - 1


def value_range(type: RegisterType) -> tuple[int, int]:
    """The smallest and largest integer of an integer `type`."""
    if type not in INTEGER_TYPES:
        raise ValueError(f"{type} is not an integer type")
    bits = 16 * register_count(type)
    if type.startswith("u"):
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def decode_registers(
    registers: Sequence[int],
    *,
    type: RegisterType,
    word_order: WordOrder,
    byte_order: ByteOrder = "big",
) -> int | float:
    """Turn registers read from a device into the number they carry (int, or float for floats)."""
    fmt, count = _format(type)
    _check_order("word", word_order)
    _check_order("byte", byte_order)
    if len(registers) != count:
        raise FrameError(f"a {type} spans {count} register(s), got {len(registers)}")
    for index, register in enumerate(registers):
        if isinstance(register, bool) or not isinstance(register, int):
            raise FrameError(f"register {index} is {register!r}, not an integer")
        if not 0 <= register <= REGISTER_MAX:
            raise FrameError(f"register {index} is {register}, outside 0..{REGISTER_MAX}")
    words = list(registers) if word_order == "big" else list(reversed(registers))
    data = b"".join(word.to_bytes(2, byte_order) for word in words)
    (value,) = struct.unpack(">" + fmt, data)
    return float(value) if type in FLOAT_TYPES else int(value)


def encode_value(
    value: int | float,
    *,
    type: RegisterType,
    word_order: WordOrder,
    byte_order: ByteOrder = "big",
) -> list[int]:
    """Turn a number into the registers a device of this layout would serve."""
    fmt, count = _format(type)
    _check_order("word", word_order)
    _check_order("byte", byte_order)
    if type in FLOAT_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"a {type} value must be a number, not {value!r}")
        value = float(value)
    else:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"a {type} value must be an integer, not {value!r}")
        low, high = value_range(type)
        if not low <= value <= high:
            raise ValueError(f"{value} does not fit a {type} ({low}..{high})")
    try:
        data = struct.pack(">" + fmt, value)
    except OverflowError as exc:  # a float too large for float32
        raise ValueError(f"{value} does not fit a {type}") from exc
    words = [int.from_bytes(data[i : i + 2], byte_order) for i in range(0, 2 * count, 2)]
    return words if word_order == "big" else words[::-1]


def to_unsigned(value: int, *, type: RegisterType) -> int:
    """The unsigned bit pattern of an integer value (how a counter in a signed register wraps)."""
    return value & max_value(type)


def scale_value(
    value: int | float | bool, *, type: PointType, scale: Decimal, offset: Decimal
) -> Decimal:
    """`value * scale + offset` in Decimal, the engineering value of a point.

    A float goes through the shortest decimal that reads back as the same float of its width, so
    a float32 register holding 0.1 scales as Decimal("0.1"), not 0.100000001490116...
    """
    return to_decimal(value, type=type) * scale + offset


def to_decimal(value: int | float | bool, *, type: PointType) -> Decimal:
    """The exact Decimal of an integer, or the shortest Decimal that round-trips a float."""
    if not isinstance(value, float):
        return Decimal(int(value))
    if not math.isfinite(value):
        raise FrameError(f"the device sent {value!r}, not a finite number")
    if type == "float32":
        packed = struct.pack(">f", value)
        for digits in range(1, 10):  # 9 significant digits always round-trip a float32
            text = f"{value:.{digits}g}"
            if struct.pack(">f", float(text)) == packed:
                return _plain(Decimal(text))
    return _plain(Decimal(repr(value)))


def _plain(number: Decimal) -> Decimal:
    # "1e+01" parses as Decimal("1E+1"); write whole numbers without an exponent.
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        return Decimal(int(number))
    return number


def decode_bits(bits: Sequence[bool], *, count: int) -> list[bool]:
    """The first `count` bits of a coil / discrete-input answer (padded to whole bytes)."""
    if len(bits) < count:
        raise FrameError(f"asked for {count} bit(s), got {len(bits)}")
    return [bool(bit) for bit in bits[:count]]


def _format(type: str) -> tuple[str, int]:
    try:
        return _FORMATS[type]
    except KeyError:
        raise ValueError(
            f"unknown register type {type!r}; expected one of {sorted(_FORMATS)}"
        ) from None


def _check_order(which: str, order: str) -> None:
    if order not in _ORDERS:
        raise ValueError(f"unknown {which} order {order!r}; expected 'big' or 'little'")
