"""16-bit Modbus registers <-> unsigned integers: the pure, sync codec under the Modbus driver.

Each register travels big-endian on the wire (Modbus Application Protocol v1.1b3, section 4.2:
https://modbus.org/docs/Modbus_Application_Protocol_V1_1b3.pdf); what the standard leaves open is
the order of the registers of a value wider than 16 bits. "big" word order puts the most
significant register first (0x12345678 -> [0x1234, 0x5678]); "little" puts it last
([0x5678, 0x1234]).

Written with `struct` by hand instead of pymodbus's `convert_from_registers`, which only knows word
order: later point types also need byte order (devices that swap the two bytes inside each
register), and that slots in here as one more `struct` format without touching the driver.

A malformed answer from a device (wrong register count, a register outside 0..65535) raises
`FrameError`; a value that does not fit the type when encoding is our own mistake and raises
`ValueError`.
"""

import struct
from collections.abc import Sequence
from typing import Literal

from edge.errors import FrameError

RegisterType = Literal["uint16", "uint32"]
WordOrder = Literal["big", "little"]

# struct format of one value, most significant byte first, and how many registers it spans.
_FORMATS: dict[str, tuple[str, int]] = {"uint16": (">H", 1), "uint32": (">I", 2)}
_WORD_ORDERS = ("big", "little")
REGISTER_MAX = 0xFFFF


def register_count(type: RegisterType) -> int:
    """How many 16-bit registers a value of `type` spans."""
    return _format(type)[1]


def max_value(type: RegisterType) -> int:
    """The largest value of `type` (a counter wraps to 0 after it)."""
    return (1 << (16 * register_count(type))) - 1


def decode_registers(registers: Sequence[int], *, type: RegisterType, word_order: WordOrder) -> int:
    """Turn registers read from a device into the integer they carry."""
    fmt, count = _format(type)
    _check_word_order(word_order)
    if len(registers) != count:
        raise FrameError(f"a {type} spans {count} register(s), got {len(registers)}")
    for index, register in enumerate(registers):
        if isinstance(register, bool) or not isinstance(register, int):
            raise FrameError(f"register {index} is {register!r}, not an integer")
        if not 0 <= register <= REGISTER_MAX:
            raise FrameError(f"register {index} is {register}, outside 0..{REGISTER_MAX}")
    words = list(registers) if word_order == "big" else list(reversed(registers))
    (value,) = struct.unpack(fmt, struct.pack(f">{count}H", *words))
    return int(value)


def encode_value(value: int, *, type: RegisterType, word_order: WordOrder) -> list[int]:
    """Turn an integer into the registers a device of this layout would serve."""
    fmt, count = _format(type)
    _check_word_order(word_order)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"a {type} value must be an integer, not {value!r}")
    if not 0 <= value <= max_value(type):
        raise ValueError(f"{value} does not fit a {type} (0..{max_value(type)})")
    words = list(struct.unpack(f">{count}H", struct.pack(fmt, value)))
    return words if word_order == "big" else words[::-1]


def _format(type: str) -> tuple[str, int]:
    try:
        return _FORMATS[type]
    except KeyError:
        raise ValueError(
            f"unknown register type {type!r}; expected one of {sorted(_FORMATS)}"
        ) from None


def _check_word_order(word_order: str) -> None:
    if word_order not in _WORD_ORDERS:
        raise ValueError(f"unknown word order {word_order!r}; expected 'big' or 'little'")
