"""Free-text panel lines -> usage events, by a configured regex with named groups.

Pure and sync, for printer-port panels that print one line per event. The pattern is searched in
each line (anchor it with `^`/`$` to match whole lines). Groups named like event fields (`name`,
`kind`, `channel`, `quantity`, `unit`, `occurred_at`) fill them; every other named group goes to
`attrs` as a string. `name` and `kind` fall back to the device config. A group that did not take
part in the match is left out.

`occurred_at` must be RFC 3339 with a zone (`2026-11-21T10:00:01Z`); when the line carries it
the event's clock is `device`, otherwise `occurred_at` is the gateway's `observed_at` and the
clock is the gateway's. A line that matches but cannot make a valid event raises
`LineMapError` with a `reason` ("bad_quantity", "bad_kind", "bad_time", "missing_name",
"invalid_event"); a line that does not match gives None.
"""

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Literal

from pydantic import ValidationError

from edge.config import LINE_FIELDS, LinesDeviceConfig
from edge.errors import FrameError
from shared.events import AttrValue, ClockState, EventDraft, EventKind

LineReason = Literal["bad_quantity", "bad_kind", "bad_time", "missing_name", "invalid_event"]


class LineMapError(FrameError):
    """A line matched the pattern but does not make a valid event; `reason` says why."""

    def __init__(self, message: str, *, reason: LineReason, line: str) -> None:
        super().__init__(f"{message}: {line!r}")
        self.reason: LineReason = reason
        self.line = line


class LineMapper:
    """Maps the lines of one `lines` device to event drafts."""

    def __init__(self, config: LinesDeviceConfig) -> None:
        self._config = config
        self._pattern = re.compile(config.pattern)

    def map_line(self, text: str, *, observed_at: datetime, clock: ClockState) -> EventDraft | None:
        """The event of one line, None when the pattern does not match."""
        line = text.rstrip("\r\n")
        match = self._pattern.search(line)
        if match is None:
            return None
        groups = {key: value for key, value in match.groupdict().items() if value is not None}
        fields = {key: value for key, value in groups.items() if key in LINE_FIELDS}
        attrs: dict[str, AttrValue] = {
            key: value for key, value in groups.items() if key not in LINE_FIELDS
        }
        occurred_at = _parse_time(fields["occurred_at"], line) if "occurred_at" in fields else None
        try:
            return EventDraft(
                device_id=self._config.id,
                channel=fields.get("channel"),
                name=self._name(fields, line),
                kind=_parse_kind(fields.get("kind", self._config.kind), line),
                quantity=_parse_quantity(fields["quantity"], line)
                if "quantity" in fields
                else None,
                unit=fields.get("unit"),
                occurred_at=occurred_at or observed_at,
                observed_at=observed_at,
                clock=ClockState.DEVICE if occurred_at else clock,
                attrs=attrs,
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
                for error in exc.errors()
            )
            raise LineMapError(problems, reason="invalid_event", line=line) from exc

    def _name(self, fields: dict[str, str], line: str) -> str:
        name = fields.get("name") or self._config.name
        if not name:
            raise LineMapError(
                "no name: the pattern has no `name` group and the device config no `name`",
                reason="missing_name",
                line=line,
            )
        return name


def _parse_kind(value: str, line: str) -> EventKind:
    try:
        return EventKind(value.strip().lower())
    except ValueError:
        allowed = ", ".join(kind.value for kind in EventKind)
        raise LineMapError(
            f"kind {value!r} is not one of {allowed}", reason="bad_kind", line=line
        ) from None


def _parse_quantity(value: str, line: str) -> Decimal:
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        raise LineMapError(
            f"quantity {value!r} is not a decimal number", reason="bad_quantity", line=line
        )
    return number


def _parse_time(value: str, line: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise LineMapError(
            f"occurred_at {value!r} is not RFC 3339 with a time zone", reason="bad_time", line=line
        )
    return moment
