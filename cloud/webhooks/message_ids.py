"""Message ids: `msg_` + 26 Crockford base32 characters, sortable by creation time (ULID-like).

The first 48 bits are the creation time in milliseconds, the last 80 are random: ids made later
sort after earlier ones (to the millisecond), and two collectors never make the same one.
"""

import secrets
from datetime import datetime

PREFIX = "msg_"
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TIME_BITS = 48
_RANDOM_BITS = 80
_CHARS = 26  # 130 bits of base32 hold the 128 bits


def new_message_id(at: datetime) -> str:
    """A fresh id for a message created at `at` (an aware datetime)."""
    millis = int(at.timestamp() * 1000) & ((1 << _TIME_BITS) - 1)
    value = (millis << _RANDOM_BITS) | secrets.randbits(_RANDOM_BITS)
    return PREFIX + _base32(value)


def message_time_millis(message_id: str) -> int:
    """The creation time (ms since the epoch) an id carries; ValueError if it is not one."""
    if not message_id.startswith(PREFIX) or len(message_id) != len(PREFIX) + _CHARS:
        raise ValueError(f"not a message id: {message_id!r}")
    value = 0
    for char in message_id[len(PREFIX) :]:
        digit = _ALPHABET.find(char)
        if digit < 0:
            raise ValueError(f"not a message id: {message_id!r}")
        value = value * 32 + digit
    return value >> _RANDOM_BITS


def _base32(value: int) -> str:
    chars = []
    for _ in range(_CHARS):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))
