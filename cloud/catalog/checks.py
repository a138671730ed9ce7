"""Pure checks of catalog input shared by the services, the CLI and the loader.

Each raises `InvalidBillingInput` naming the field and what is allowed, so a bad id reads the same
whether it came through the API, the CLI or a catalog file.
"""

import re
from collections.abc import Iterable
from datetime import UTC, datetime

from cloud.errors import InvalidBillingInput

SLUG_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
SERIES_PATTERN = r"^[A-Z0-9-]{1,32}$"
# The event contract's device id (`shared.events.Identifier`): a device's id is its events' id.
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][\w.:/-]{0,127}$"
EVENT_NAME_MAX = 64
NAME_MAX = 200
MAX_PAGE = 1000

_SLUG = re.compile(SLUG_PATTERN)
_SERIES = re.compile(SERIES_PATTERN)
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)


def check_slug(what: str, value: str) -> str:
    """An id of an account, profile, metric or plan: lower-case slug, 1 to 64 characters."""
    if not _SLUG.fullmatch(value):
        raise InvalidBillingInput(
            f"invalid {what} id {value!r}: 1 to 64 of a-z, 0-9, '.', '_', '-', "
            "starting with a letter or digit",
            detail={"field": "id", "value": value},
        )
    return value


def check_device_id(value: str) -> str:
    """A device id as its events carry it (letters, digits, `_.:/-`, at most 128)."""
    if not _DEVICE_ID.fullmatch(value):
        raise InvalidBillingInput(
            f"invalid device id {value!r}: 1 to 128 letters, digits, '_', '.', ':', '/', '-'",
            detail={"field": "id", "value": value},
        )
    return value


def check_series(value: str) -> str:
    """An invoice numbering series: 1 to 32 of A-Z, 0-9 and '-'."""
    if not _SERIES.fullmatch(value):
        raise InvalidBillingInput(
            f"invalid invoice series {value!r}: 1 to 32 of A-Z, 0-9, '-'",
            detail={"field": "invoice_series", "value": value},
        )
    return value


def check_name(value: str, *, field: str = "name") -> str:
    """A display name: stripped, 1 to 200 characters."""
    stripped = value.strip()
    if not 0 < len(stripped) <= NAME_MAX:
        raise InvalidBillingInput(
            f"{field} must be 1 to {NAME_MAX} characters", detail={"field": field}
        )
    return stripped


def check_aware(value: datetime, *, field: str) -> datetime:
    """A timezone-aware time, as UTC; a naive time is refused (whose midnight would it be?)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidBillingInput(
            f"{field} must carry a UTC offset (e.g. 2026-11-01T00:00:00+01:00), got {value}",
            detail={"field": field, "value": value.isoformat()},
        )
    return value.astimezone(UTC)


def check_labels(values: Iterable[str], *, field: str) -> list[str]:
    """Event names or profile ids as a sorted list without duplicates (order means nothing)."""
    labels = sorted(set(values))
    for label in labels:
        if not 0 < len(label) <= EVENT_NAME_MAX or label != label.strip():
            raise InvalidBillingInput(
                f"{field}: {label!r} must be 1 to {EVENT_NAME_MAX} characters, no outer spaces",
                detail={"field": field, "value": label},
            )
    return labels


def check_limit(limit: int) -> int:
    """A page size: 1 to 1000."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidBillingInput(
            f"limit must be 1 to {MAX_PAGE}, got {limit}", detail={"field": "limit"}
        )
    return limit
