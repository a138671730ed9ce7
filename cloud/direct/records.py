"""Source records within the contract's bounds: JSON read without unbounded recursion, and every
value of a record checked before any mapping work. Pure, no I/O.

A record is a CloudEvent (its attributes and its `data`) or one row of an imported file. What no
column can hold or no parser should chase is refused here, naming the field (`data.weight.kg`,
`items[3]`): text with NUL or a lone surrogate, integers beyond 64 bits, values nested more than
`MAX_JSON_DEPTH` containers deep (`data`'s own object, or a JSON Lines row's, is the first).

The standard library's JSON parser (the one that reads numbers exactly) recurses once per level,
so a text is measured with `nesting_depth` (a regular expression and a loop over its brackets)
before it is handed to it.
"""

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from cloud.direct.mapping import RowError
from shared.bounds import MAX_JSON_DEPTH, check_int64, check_text

MAX_ID = 255  # characters of a record's id (the idempotency key's column)

# A JSON string, unrolled (no nested quantifier to backtrack), then the brackets left outside them.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_OPENING = frozenset("[{")
# What JSON text must hold for a parsed value to break a bound: a NUL or surrogate escape (raw
# control characters are not JSON), or a run of 19 digits (an integer beyond 64 bits has one).
_SUSPECT = r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})|\x00|[0-9]{19}"
_SUSPECT_TEXT = re.compile(_SUSPECT)
_SUSPECT_BYTES = re.compile(_SUSPECT.encode())


def nesting_depth(text: str) -> int:
    """How many arrays and objects deep `text` nests (for text that is JSON; bytes: latin-1)."""
    depth = deepest = 0
    for bracket in _NOT_A_BRACKET.sub("", _JSON_STRING.sub("", text)):
        if bracket in _OPENING:
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class TooDeep(ValueError):
    """A JSON text nests deeper than the parser is allowed to follow."""


def might_break_bounds(text: str | bytes) -> bool:
    """Whether JSON `text` (UTF-8 if bytes) could hold a value `check_value` refuses, nesting
    aside: when it cannot, the walk over every value is skipped (one regular expression)."""
    if isinstance(text, bytes):
        return _SUSPECT_BYTES.search(text) is not None
    return _SUSPECT_TEXT.search(text) is not None


def load_exact(text: str | bytes, *, max_depth: int) -> Any:
    """`text` as JSON with every number exact (floats as `Decimal`), if it nests at most
    `max_depth` levels (`TooDeep` otherwise); `ValueError` if it is not JSON."""
    scanned = text.decode("latin-1") if isinstance(text, bytes) else text
    # Fewer opening brackets than the bound cannot nest beyond it: most rows need no scan.
    if scanned.count("[") + scanned.count("{") > max_depth:
        depth = nesting_depth(scanned)
        if depth > max_depth:
            raise TooDeep(too_deep(depth, max_depth))
    return json.loads(text, parse_float=Decimal)


def too_deep(depth: int, max_depth: int) -> str:
    """The reason for a value nested `depth` levels where `max_depth` are read."""
    return f"is nested {depth:,} levels deep; at most {max_depth} are read"


def check_record(record: Mapping[str, Any], *, depth: int = 1) -> None:
    """Refuse `record` (at nesting level `depth`) if any key or value is beyond the bounds."""
    _check_nesting(depth, "record")
    for key, value in record.items():
        _check_key(key, key)
        check_value(value, field=key, depth=depth + 1)


def check_value(value: Any, *, field: str, depth: int = 1) -> None:
    """`RowError` naming the path below `field` of the first value beyond the bounds."""
    pending: list[tuple[Any, str, int]] = [(value, field, depth)]
    while pending:  # iterative: a deep value cannot exhaust the stack
        item, path, level = pending.pop()
        if isinstance(item, str):
            _check_text(item, path)
        elif isinstance(item, int) and not isinstance(item, bool):
            _check_integer(item, path)
        elif isinstance(item, dict):
            _check_nesting(level, path)
            for key, child in item.items():
                _check_key(key, path)
                pending.append((child, f"{path}.{key}", level + 1))
        elif isinstance(item, list):
            _check_nesting(level, path)
            pending.extend((child, f"{path}[{i}]", level + 1) for i, child in enumerate(item))


def _check_nesting(level: int, path: str) -> None:
    if level > MAX_JSON_DEPTH:
        raise RowError(path, f"is nested deeper than {MAX_JSON_DEPTH} levels")


def _check_key(key: str, path: str) -> None:
    try:
        check_text(key)
    except ValueError as exc:
        raise RowError(path, f"a key of this object: {exc}") from None


def _check_text(text: str, path: str) -> None:
    try:
        check_text(text)
    except ValueError as exc:
        raise RowError(path, str(exc)) from None


def _check_integer(number: int, path: str) -> None:
    try:
        check_int64(number)
    except ValueError as exc:
        raise RowError(path, f"{exc}: send larger numbers as decimal strings") from None


def shown_id(value: Any) -> str | None:
    """A record's id as a report may repeat it: a storable text of at most `MAX_ID` characters."""
    if not isinstance(value, str) or len(value) > MAX_ID:
        return None
    try:
        return check_text(value)
    except ValueError:
        return None
