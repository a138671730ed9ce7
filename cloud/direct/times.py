"""Reading a source's times: RFC 3339 for CloudEvents, ISO 8601 or local wall time for files.

Pure, no I/O. Every time is placed on the UTC line within the contract's range
(`shared.bounds.check_time`: a zone, years 1970 to 9000) or refused with a `RowError` naming the
field; nothing is rounded or guessed without saying so:

- A CloudEvent `time` is RFC 3339 §5.6 and nothing else. A fraction finer than microseconds is
  truncated to them, and when its extra digits are not zeros the event keeps the text as sent.
- A file time without an offset is wall time in the mapping's `files.time_zone`. Wall times the
  clocks show twice (fall-back) or skip (spring-forward) are refused unless the mapping says how to
  read them (`files.ambiguous_times`, `files.missing_times`); a resolved row says which rule it
  took.
"""

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from cloud.direct.mapping import AmbiguousTimes, MissingTimes, RowError, shown
from shared.bounds import check_time

MICROSECOND_DIGITS = 6
MAX_TIME_TEXT = 64  # characters of a CloudEvents time (a fraction of up to about 35 digits)
_FIELDS = ("year", "month", "day", "hour", "minute", "second")

# RFC 3339 §5.6 date-time: full-date "T" full-time, where "T" and "Z" may be lower case (§5.6 NOTE).
_LOCAL = (
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})[Tt]"
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]+))?"
)
_RFC3339 = re.compile(
    _LOCAL
    + r"(?:(?P<utc>[Zz])|(?P<sign>[+-])(?P<offset_hours>[0-9]{2}):(?P<offset_minutes>[0-9]{2}))"
)
_WITHOUT_OFFSET = re.compile(_LOCAL)


class PlacedTime(NamedTuple):
    """A time on the UTC line, and what the event should keep of how it was read (or None)."""

    moment: datetime
    note: dict[str, str] | None = None


def parse_rfc3339(value: Any, *, field: str) -> PlacedTime:
    """A CloudEvents time; its text is kept (`ce_time`) when it is finer than microseconds."""
    if not isinstance(value, str) or not value:
        raise RowError(field, "a time is required")
    found = _RFC3339.fullmatch(value) if len(value) <= MAX_TIME_TEXT else None
    if found is None and _WITHOUT_OFFSET.fullmatch(value):
        raise RowError(field, f"{shown(value)} has no UTC offset (RFC 3339 needs Z or an offset)")
    if found is None:
        raise RowError(
            field,
            f"{shown(value)} is not an RFC 3339 time "
            "(YYYY-MM-DDTHH:MM:SS[.fraction] then Z or ±HH:MM)",
        )
    if found["second"] == "60":
        raise RowError(field, f"{shown(value)} is a leap second, which cannot be stored")
    fraction = found["fraction"] or ""
    plain = found["utc"] == "Z" or (
        found["sign"] is not None
        and found["offset_hours"] <= "23"
        and found["offset_minutes"] <= "59"
    )
    if plain and len(fraction) <= MICROSECOND_DIGITS and value[10] == "T":
        try:  # the common form, read by the C parser: the pattern has already vouched for it
            return PlacedTime(_in_range(datetime.fromisoformat(value), field, value))
        except ValueError:
            pass  # an impossible date or offset: named below
    year, month, day, hour, minute, second = (int(found[name]) for name in _FIELDS)
    microsecond = int(fraction[:MICROSECOND_DIGITS].ljust(MICROSECOND_DIGITS, "0"))
    try:
        moment = datetime(
            year, month, day, hour, minute, second, microsecond, tzinfo=_offset(found)
        )
    except ValueError:
        raise RowError(field, f"{shown(value)} is not a valid date and time") from None
    finer = fraction[MICROSECOND_DIGITS:].strip("0")
    return PlacedTime(_in_range(moment, field, value), {"ce_time": value} if finer else None)


def _offset(found: re.Match[str]) -> timezone:
    if found["utc"]:
        return UTC
    hours, minutes = int(found["offset_hours"]), int(found["offset_minutes"])
    if hours > 23 or minutes > 59:
        raise ValueError("offset out of range")
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if found["sign"] == "-" else offset)  # -00:00 is UTC (§4.3)


def parse_file_time(
    value: Any,
    *,
    field: str,
    zone: ZoneInfo | None = None,
    ambiguous: AmbiguousTimes = AmbiguousTimes.REFUSE,
    missing: MissingTimes = MissingTimes.REFUSE,
) -> PlacedTime:
    """A file's time (ISO 8601); without an offset it is wall time in `zone`."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value.strip():
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise RowError(field, f"{shown(value)} is not an RFC 3339 time") from None
    else:
        raise RowError(field, "a time is required")
    if moment.tzinfo is not None:
        return PlacedTime(_in_range(moment, field, value))
    if zone is None:
        hint = "set files.time_zone in the mapping"
        raise RowError(field, f"{shown(value)} has no UTC offset ({hint})")
    return place_wall_time(moment, zone=zone, field=field, ambiguous=ambiguous, missing=missing)


def place_wall_time(
    wall: datetime,
    *,
    zone: ZoneInfo,
    field: str,
    ambiguous: AmbiguousTimes,
    missing: MissingTimes,
) -> PlacedTime:
    """Wall time `wall` in `zone` on the UTC line, by the mapping's rules for DST changes."""
    text = wall.isoformat()
    earlier = _in_range(wall.replace(tzinfo=zone, fold=0), field, text)
    later = _in_range(wall.replace(tzinfo=zone, fold=1), field, text)
    if earlier == later:
        return PlacedTime(earlier)
    when = f"{_clock(wall)} on {wall.date().isoformat()}"
    if earlier.astimezone(zone).replace(tzinfo=None) == wall:  # both readings exist: fall-back
        if ambiguous is AmbiguousTimes.REFUSE:
            raise RowError(
                field,
                f"{when} happens twice in {zone.key} (at {_utc_offset(earlier, zone)} and "
                f"{_utc_offset(later, zone)}); add an offset or set files.ambiguous_times",
            )
        chosen = earlier if ambiguous is AmbiguousTimes.EARLIER else later
        return PlacedTime(chosen, _note(text, f"ambiguous_times = {ambiguous.value}"))
    if missing is MissingTimes.REFUSE:  # neither reading exists: the clocks skipped it
        raise RowError(
            field,
            f"{when} does not exist in {zone.key} (the clocks skip it); "
            "add an offset or set files.missing_times",
        )
    # fold=0 reads a skipped wall time with the offset in force before the change (PEP 495).
    return PlacedTime(earlier, _note(text, f"missing_times = {missing.value}"))


def _in_range(moment: datetime, field: str, text: Any) -> datetime:
    try:
        return check_time(moment)
    except ValueError as exc:  # also a time whose offset leaves datetime's range (year 1, +01:00)
        raise RowError(field, f"{shown(text)}: {exc}") from None


def _clock(wall: datetime) -> str:
    whole_minute = wall.second == wall.microsecond == 0
    return wall.strftime("%H:%M") if whole_minute else wall.time().isoformat()


def _utc_offset(moment: datetime, zone: ZoneInfo) -> str:
    minutes = int((moment.astimezone(zone).utcoffset() or timedelta()).total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _note(wall: str, rule: str) -> dict[str, str]:
    return {"local_time": wall, "local_time_rule": rule}
