"""Canonical bytes: the one encoding both sides hash and sign.

JSON with sorted keys and no spaces (UTF-8, non-ASCII kept as is), decimals as strings in plain
notation without trailing zeros, times as RFC 3339 UTC with exactly six fractional digits and `Z`.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Context, Decimal
from typing import Any

import orjson


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds and `Z`; naive datetimes are refused."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: a time zone is required")
    # isoformat is several times faster than strftime and this runs twice per event.
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def format_decimal(value: Decimal) -> str:
    """Plain notation, no exponent, no trailing zeros, no negative zero."""
    if not value.is_finite():
        raise ValueError(f"decimal must be finite, got {value}")
    digits, exponent = value.as_tuple()[1:]
    if exponent == 0:  # an integer, the common case (counts): already plain
        text = str(value)
    else:
        # normalize() rounds to the context precision (28 digits by default): never lose one.
        try:
            text = format(value.normalize(Context(prec=max(len(digits), 1))), "f")
        except ArithmeticError as exc:  # an exponent beyond the context's (1e1000000)
            raise ValueError(f"decimal {value} is out of range") from exc
    if text in ("-0", "0"):
        if any(digits):  # a non-zero value below the context's smallest (1e-1000000)
            raise ValueError(f"decimal {value} is out of range")
        return "0"
    return text


def dump_canonical(document: Mapping[str, Any]) -> bytes:
    """Encode a mapping of canonical types (str, int, bool, None, nested) as canonical JSON."""
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
