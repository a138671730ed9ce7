"""Billing periods: the calendar month in an account's time zone, as a UTC interval.

Pure code. A period is [start, end) in UTC, where start and end are local midnight on the first
of the month and of the next month. DST makes months 743 or 745 hours long in zones that shift;
`zoneinfo` does the arithmetic, so a period is always exactly the local calendar month.
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cloud.errors import InvalidBillingInput

_LABEL = re.compile(r"(\d{4})-(\d{2})")
MIN_YEAR = 1970
MAX_YEAR = 9998  # the next period of December must still be a valid datetime


@dataclass(frozen=True, slots=True)
class Period:
    """The calendar month `label` ("2026-11") in `time_zone`, as [start, end) in UTC."""

    label: str
    time_zone: str
    start: datetime
    end: datetime


def check_time_zone(name: str) -> str:
    """The IANA time zone name, unchanged if `zoneinfo` knows it; `InvalidBillingInput` if not."""
    _zone(name)
    return name


def month_period(label: str, time_zone: str) -> Period:
    """The period labelled "YYYY-MM" in the time zone; `InvalidBillingInput` for a bad label."""
    year, month = _parse_label(label)
    return _period(year, month, _zone(time_zone), time_zone)


def period_of(at: datetime, time_zone: str) -> Period:
    """The period holding the instant `at` (aware) in the time zone."""
    if at.tzinfo is None:
        raise InvalidBillingInput(
            "a naive time has no place in a period: give a time zone", detail={"at": str(at)}
        )
    zone = _zone(time_zone)
    local = at.astimezone(zone)
    return _period(local.year, local.month, zone, time_zone)


def next_period(period: Period) -> Period:
    """The period right after `period`, in the same time zone."""
    year, month = _parse_label(period.label)
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return _period(year, month, _zone(period.time_zone), period.time_zone)


def day_buckets(start: datetime, end: datetime, time_zone: str) -> list[tuple[datetime, datetime]]:
    """The local calendar days touching [start, end), each clipped to it, as UTC intervals.

    A day on which DST starts or ends is 23 or 25 hours long. Empty when start >= end.
    """
    zone = _zone(time_zone)
    buckets: list[tuple[datetime, datetime]] = []
    day = start.astimezone(zone).date()
    day_start = _local_midnight(day, zone)
    while day_start < end:
        day = day + timedelta(days=1)
        day_end = _local_midnight(day, zone)
        lower, upper = max(day_start, start), min(day_end, end)
        if lower < upper:
            buckets.append((lower, upper))
        day_start = day_end
    return buckets


def _period(year: int, month: int, zone: ZoneInfo, time_zone: str) -> Period:
    next_year, next_month = (year + 1, 1) if month == 12 else (year, month + 1)
    return Period(
        label=f"{year:04d}-{month:02d}",
        time_zone=time_zone,
        start=_local_midnight(date(year, month, 1), zone),
        end=_local_midnight(date(next_year, next_month, 1), zone),
    )


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of the local day, in UTC.

    fold=0 gives the earlier instant when midnight happens twice, and the instant of the jump
    when a DST gap swallows midnight (the day then starts at the transition).
    """
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _parse_label(label: str) -> tuple[int, int]:
    match = _LABEL.fullmatch(label) if isinstance(label, str) else None
    if match is None:
        raise InvalidBillingInput(
            f"period {label!r} is not a month like 2026-11", detail={"period": str(label)}
        )
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12 or not MIN_YEAR <= year <= MAX_YEAR:
        raise InvalidBillingInput(
            f"period {label!r} is not a month between {MIN_YEAR}-01 and {MAX_YEAR}-12",
            detail={"period": label},
        )
    return year, month


def _zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not name or name != name.strip():
        raise _unknown_zone(name)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise _unknown_zone(name) from None


def _unknown_zone(name: object) -> InvalidBillingInput:
    return InvalidBillingInput(
        f"unknown time zone {name!r}: use an IANA name like Europe/Berlin",
        detail={"time_zone": str(name)},
    )
