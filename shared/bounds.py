"""The bounded contract: how large, deep and precise anything in an event or a batch may be.

Both sides apply these bounds (the edge before it seals an event, the collector before it does
any expensive work), so a gateway never signs what the collector must refuse and a hostile body
costs microseconds to refuse, not seconds. Every check is pure and raises `ValueError` with a
sentence that names the bound; pydantic turns it into a 422 location.

Why by hand: `Decimal(text)` accepts `1_000`, Arabic-Indic digits and exponents of a million
digits, and formatting such a number in plain notation costs milliseconds; no library bounds
decimal text before parsing it.
"""

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from shared.canonical import format_decimal

MAX_QUANTITY_INTEGER_DIGITS = 30  # digits before the point
MAX_QUANTITY_FRACTION_DIGITS = 30  # digits after the point
MAX_QUANTITY_TEXT = 80  # characters of a quantity's text, exponent included
MAX_EVENTS_PER_BATCH = 10_000
# Commas and brackets one event may bring into a batch body: 14 fields and 64 attrs take 79,
# the rest is room for commas and brackets inside its strings.
MAX_JSON_VALUES_PER_EVENT = 128
# Objects and arrays (the costly values to build): an event and its attrs are 2, the rest is room
# for braces and brackets inside its strings.
MAX_JSON_CONTAINERS_PER_EVENT = 8
MAX_SEQ = 2**62  # far beyond any gateway's life, and seq + 1 never overflows a BIGINT
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_JSON_DEPTH = 32  # nesting of a JSON value carried in attrs or CloudEvents data
MAX_TEXT = 1024  # characters of one attrs string
MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(9000, 1, 1, tzinfo=UTC)
# A gateway's heartbeat (shared.heartbeat): a thousand devices of ~200 bytes each with a few
# error kinds fit; the agent trims error detail, then devices, before it would send more.
MAX_HEARTBEAT_BYTES = 512 * 1024
MAX_HEARTBEAT_DEVICES = 1000
MAX_HEARTBEAT_ERROR_KINDS = 32  # error kinds counted per device

# ASCII only: str.isdigit and Decimal() also take Arabic-Indic digits and underscores.
# An exponent of up to 18 digits is what Decimal() takes; check_quantity then bounds the digits.
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,18})?")
_FORBIDDEN_CHARS = re.compile("[\x00\ud800-\udfff]")


def parse_quantity(value: object) -> Decimal:
    """A quantity within the contract's digits, from a decimal string or an integer.

    Floats are refused (a binary float cannot carry a billed quantity exactly), and so is any
    text that is not plain ASCII decimal notation.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError("quantity must be a decimal string or an integer, not a float")
    if isinstance(value, int):
        if abs(value) >= 10**MAX_QUANTITY_INTEGER_DIGITS:
            raise ValueError(_too_many_digits())
        return Decimal(value)
    if isinstance(value, str):
        if len(value) > MAX_QUANTITY_TEXT:
            raise ValueError(
                f"quantity text is longer than {MAX_QUANTITY_TEXT} characters: it may have at "
                f"most {MAX_QUANTITY_INTEGER_DIGITS} digits before the point and "
                f"{MAX_QUANTITY_FRACTION_DIGITS} after it"
            )
        if not _DECIMAL_TEXT.fullmatch(value):
            raise ValueError(
                f"quantity {value[:40]!r} is not a decimal number "
                "(ASCII digits, an optional point and exponent)"
            )
        try:
            value = Decimal(value)
        except InvalidOperation as exc:  # pragma: no cover - the pattern admits only numbers
            raise ValueError(f"quantity {value!r} is not a decimal number") from exc
    return check_quantity(value)


def check_quantity(number: Decimal) -> Decimal:
    """`number` without trailing zeros if finite and within the digit bounds (no context)."""
    if not number.is_finite():
        raise ValueError("quantity must be finite")
    if number.is_zero():
        return Decimal(0)
    # Both bounds are read off the tuple before the number is written out: writing 1e-999999
    # in plain notation is what costs milliseconds.
    if number.adjusted() >= MAX_QUANTITY_INTEGER_DIGITS:
        raise ValueError(_too_many_digits())
    if number.adjusted() < -MAX_QUANTITY_FRACTION_DIGITS:
        raise ValueError(_too_many_fraction_digits())
    text = format_decimal(number)
    _, _, fraction = text.partition(".")
    if len(fraction) > MAX_QUANTITY_FRACTION_DIGITS:
        raise ValueError(_too_many_fraction_digits())
    return Decimal(text)


def check_text(value: str) -> str:
    """`value` if it holds no NUL and no lone surrogate (neither can be stored or encoded)."""
    found = _FORBIDDEN_CHARS.search(value)
    if found is not None:
        code = f"U+{ord(found.group()):04X}"
        raise ValueError(f"text may not contain {code} (at character {found.start()})")
    return value


def check_int64(value: int) -> int:
    """`value` if it fits a signed 64-bit integer (what JSON columns and orjson hold)."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError("integer is outside the signed 64-bit range")
    return value


def check_time(moment: datetime) -> datetime:
    """`moment` in UTC, if it carries a zone and lies in the contract's range of years."""
    if moment.tzinfo is None:
        raise ValueError("time must carry a time zone (RFC 3339 with Z or an offset)")
    try:
        utc = moment.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("time is outside the supported range") from exc
    if not MIN_TIME <= utc < MAX_TIME:
        raise ValueError(f"time must lie in [{MIN_TIME.year}, {MAX_TIME.year})")
    return utc


def _too_many_fraction_digits() -> str:
    return f"quantity has more than {MAX_QUANTITY_FRACTION_DIGITS} digits after the point"


def _too_many_digits() -> str:
    return f"quantity has more than {MAX_QUANTITY_INTEGER_DIGITS} digits before the point"
