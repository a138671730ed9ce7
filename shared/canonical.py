"""Canonical bytes: the one encoding both sides hash and sign.

JSON with sorted keys and no spaces (UTF-8, non-ASCII kept as is), decimals as strings in plain
notation without trailing zeros, times as RFC 3339 UTC with exactly six fractional digits and `Z`.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds and `Z`; naive datetimes are refused."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: a time zone is required")
    # This runs twice per event: orjson writes a UTC datetime as RFC 3339 with "Z" in C, three
    # times faster than isoformat (which is several times faster than strftime); it leaves out
    # the fraction of a time on the whole second, which gets its six zeros back here. A time
    # already in UTC (every validated event's) skips the conversion.
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    text = orjson.dumps(utc, option=orjson.OPT_UTC_Z)  # b'"YYYY-MM-DDTHH:MM:SS[.ffffff]Z"'
    if utc.microsecond:
        return text[1:-1].decode()
    return text[1:20].decode() + ".000000Z"


MAX_DECIMAL_EXPONENT = 999_999  # the default decimal context's Emax: beyond it, out of range


def format_decimal(value: Decimal) -> str:
    """Plain notation, no exponent, no trailing zeros, no negative zero."""
    if not value.is_finite():
        raise ValueError(f"decimal must be finite, got {value}")
    if not value.is_zero() and abs(value.adjusted()) > MAX_DECIMAL_EXPONENT:
        raise ValueError(f"decimal {value} is out of range")
    # Decimal's "f" format is exact (no rounding, no context): only trailing zeros go.
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "0") else text


def dump_canonical(document: Mapping[str, Any]) -> bytes:
    """Encode a mapping of canonical types (str, int, bool, None, nested) as canonical JSON."""
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
