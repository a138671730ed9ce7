"""The regex line codec of printer-port panels."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from edge.codecs.lines import LineMapError, LineMapper
from edge.config import LinesDeviceConfig
from edge.errors import FrameError
from shared.events import ClockState, EventKind

AT = datetime(2026, 11, 21, 10, 0, 1, tzinfo=UTC)
ALARM = r"^(?P<ts>\S+ \S+) ALARM ZONE (?P<zone>\d+) PARTITION (?P<channel>\d+)$"


def mapper(pattern: str, **extra: object) -> LineMapper:
    config = LinesDeviceConfig.model_validate(
        {"id": "printer-1", "driver": "lines", "port": "/dev/null", "pattern": pattern, **extra}
    )
    return LineMapper(config)


def test_named_groups_fill_fields_and_attrs() -> None:
    draft = mapper(ALARM, name="alarm").map_line(
        "2026-11-21 10:00:01 ALARM ZONE 004 PARTITION 1\r\n",
        observed_at=AT,
        clock=ClockState.SYNCED,
    )
    assert draft is not None
    assert (draft.name, draft.kind, draft.channel) == ("alarm", EventKind.ACTIVITY, "1")
    assert draft.attrs == {"ts": "2026-11-21 10:00:01", "zone": "004"}
    assert draft.occurred_at == draft.observed_at == AT
    assert draft.clock is ClockState.SYNCED
    assert draft.device_id == "printer-1"


def test_every_field_group() -> None:
    pattern = (
        r"(?P<occurred_at>\S+) (?P<name>\w+) (?P<kind>\w+) ch=(?P<channel>\w+) "
        r"(?P<quantity>[\d.]+)(?P<unit>\w+) badge=(?P<badge>\w+)"
    )
    draft = mapper(pattern).map_line(
        "2026-11-21T09:59:00+01:00 pour MEASUREMENT ch=3 12.50l badge=A7",
        observed_at=AT,
        clock=ClockState.UNSYNCED,
    )
    assert draft is not None
    assert (draft.name, draft.kind, draft.channel) == ("pour", EventKind.MEASUREMENT, "3")
    assert (draft.quantity, draft.unit) == (Decimal("12.5"), "l")
    assert draft.occurred_at == datetime(2026, 11, 21, 8, 59, tzinfo=UTC)
    assert draft.observed_at == AT
    assert draft.clock is ClockState.DEVICE  # the line carried its own time
    assert draft.attrs == {"badge": "A7"}


def test_kind_falls_back_to_config() -> None:
    draft = mapper(r"DOOR (?P<channel>\d)", name="door_open", kind="activation").map_line(
        "DOOR 2", observed_at=AT, clock=ClockState.SYNCED
    )
    assert draft is not None
    assert (draft.name, draft.kind, draft.channel) == ("door_open", EventKind.ACTIVATION, "2")


def test_optional_group_that_did_not_match_is_left_out() -> None:
    draft = mapper(r"OPEN(?: USER (?P<user>\d+))?", name="open").map_line(
        "OPEN", observed_at=AT, clock=ClockState.SYNCED
    )
    assert draft is not None and draft.attrs == {}


def test_no_match_is_none() -> None:
    assert (
        mapper(ALARM, name="alarm").map_line("AC POWER OK", observed_at=AT, clock=ClockState.SYNCED)
        is None
    )


@pytest.mark.parametrize(
    ("pattern", "line", "reason"),
    [
        (r"(?P<name>\w+) (?P<quantity>\S+)", "pour 1,5", "bad_quantity"),
        (r"(?P<name>\w+) (?P<quantity>\S+)", "pour NaN", "bad_quantity"),
        (r"(?P<name>\w+) (?P<kind>\w+)", "pour sometimes", "bad_kind"),
        (r"(?P<occurred_at>\S+ \S+) (?P<name>\w+)", "2026-11-21 10:00:01 pour", "bad_time"),
        (r"(?P<occurred_at>\S+) (?P<name>\w+)", "yesterday pour", "bad_time"),
        (r"ALARM (?P<zone>\d+)", "ALARM 4", "missing_name"),
        (r"(?P<name>.*)", "x" * 65, "invalid_event"),
    ],
)
def test_invalid_event_raises_with_reason(pattern: str, line: str, reason: str) -> None:
    with pytest.raises(LineMapError) as caught:
        mapper(pattern).map_line(line, observed_at=AT, clock=ClockState.SYNCED)
    assert caught.value.reason == reason
    assert isinstance(caught.value, FrameError)
    assert line in str(caught.value)
