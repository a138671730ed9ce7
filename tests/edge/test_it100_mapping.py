"""IT-100 frames -> usage drafts."""

from datetime import UTC, datetime

import pytest

from edge.codecs.it100 import Frame, It100FrameError
from edge.codecs.it100_mapping import ArmingPairs, is_known, map_frame
from shared.events import ClockState, EventDraft, EventKind

AT = datetime(2026, 11, 21, 10, 0, 1, tzinfo=UTC)


def mapped(frame: Frame, *, zone_events: bool = False):  # type: ignore[no-untyped-def]
    return map_frame(
        frame,
        device_id="panel-1",
        observed_at=AT,
        clock=ClockState.UNSYNCED,
        zone_events=zone_events,
    )


@pytest.mark.parametrize(
    ("frame", "name", "kind", "channel", "attrs"),
    [
        (
            Frame("652", "10"),
            "armed",
            EventKind.ACTIVATION,
            "1",
            {"partition": "1", "arm_mode": "away"},
        ),
        (
            Frame("652", "21"),
            "armed",
            EventKind.ACTIVATION,
            "2",
            {"partition": "2", "arm_mode": "stay"},
        ),
        (
            Frame("652", "32"),
            "armed",
            EventKind.ACTIVATION,
            "3",
            {"partition": "3", "arm_mode": "zero_entry_away"},
        ),
        (
            Frame("652", "13"),
            "armed",
            EventKind.ACTIVATION,
            "1",
            {"partition": "1", "arm_mode": "zero_entry_stay"},
        ),
        (
            Frame("700", "10040"),
            "armed",
            EventKind.ACTIVATION,
            "1",
            {"partition": "1", "user_code": "0040"},
        ),
        (
            Frame("701", "4"),
            "armed",
            EventKind.ACTIVATION,
            "4",
            {"partition": "4", "closing": "special"},
        ),
        (Frame("655", "2"), "disarmed", EventKind.DEACTIVATION, "2", {"partition": "2"}),
        (
            Frame("751", "3"),
            "disarmed",
            EventKind.DEACTIVATION,
            "3",
            {"partition": "3", "opening": "special"},
        ),
        (
            Frame("750", "20041"),
            "disarmed",
            EventKind.DEACTIVATION,
            "2",
            {"partition": "2", "user_code": "0041"},
        ),
        (
            Frame("601", "1004"),
            "alarm",
            EventKind.ACTIVITY,
            "1",
            {"zone": "004", "partition": "1", "alarm_type": "zone"},
        ),
        (
            Frame("603", "2017"),
            "alarm",
            EventKind.ACTIVITY,
            "2",
            {"zone": "017", "partition": "2", "alarm_type": "tamper"},
        ),
        (
            Frame("654", "1"),
            "alarm",
            EventKind.ACTIVITY,
            "1",
            {"zone": None, "partition": "1", "alarm_type": "partition"},
        ),
        (
            Frame("621"),
            "alarm",
            EventKind.ACTIVITY,
            None,
            {"zone": None, "partition": None, "alarm_type": "fire"},
        ),
        (
            Frame("623"),
            "alarm",
            EventKind.ACTIVITY,
            None,
            {"zone": None, "partition": None, "alarm_type": "auxiliary"},
        ),
        (
            Frame("625"),
            "alarm",
            EventKind.ACTIVITY,
            None,
            {"zone": None, "partition": None, "alarm_type": "panic"},
        ),
    ],
)
def test_usage_frames(
    frame: Frame, name: str, kind: EventKind, channel: str | None, attrs: dict[str, object]
) -> None:
    draft = mapped(frame)
    assert draft is not None
    assert (draft.name, draft.kind, draft.channel) == (name, kind, channel)
    assert draft.attrs == {"command": frame.command, **attrs}
    assert draft.quantity is None and draft.unit is None
    assert draft.occurred_at == draft.observed_at == AT
    assert draft.clock is ClockState.UNSYNCED
    assert draft.device_id == "panel-1"


@pytest.mark.parametrize(
    ("frame", "name"), [(Frame("609", "005"), "zone_open"), (Frame("610", "005"), "zone_restore")]
)
def test_zone_events_only_when_enabled(frame: Frame, name: str) -> None:
    assert mapped(frame, zone_events=False) is None
    draft = mapped(frame, zone_events=True)
    assert draft is not None
    assert (draft.name, draft.kind, draft.channel) == (name, EventKind.ACTIVITY, None)
    assert draft.attrs == {"command": frame.command, "zone": "005"}


@pytest.mark.parametrize(
    "frame",
    [
        Frame("000"),
        Frame("500", "000"),
        Frame("501"),
        Frame("650", "1"),
        Frame("651", "1"),
        Frame("702", "1"),
        Frame("602", "1004"),
        Frame("550", "1030112126"),
        Frame("510", "81"),
        Frame("903", "21"),
        Frame("841", "1"),
        Frame("901", "00016Date     Time"),
        Frame("999", "1"),
    ],
)
def test_everything_else_is_not_usage(frame: Frame) -> None:
    assert mapped(frame, zone_events=True) is None


def test_unknown_commands_are_distinguished() -> None:
    assert not is_known("999")
    assert is_known("652")


def test_known_command_with_bad_data_is_a_frame_error() -> None:
    with pytest.raises(It100FrameError) as caught:
        mapped(Frame("652", ""))
    assert caught.value.reason == "malformed"


def _draft(command: str, data: str) -> EventDraft:
    at = datetime(2026, 11, 21, tzinfo=UTC)
    draft = map_frame(
        Frame(command, data),
        device_id="dsc",
        observed_at=at,
        clock=ClockState.SYNCED,
        zone_events=False,
    )
    assert draft is not None
    return draft


def test_arming_pairs_merge_partition_and_user_frames_into_one_event() -> None:
    pairs = ArmingPairs()
    assert pairs.push(_draft("700", "10040")) == []  # held for its partner
    (armed,) = pairs.push(_draft("652", "11"))
    assert (armed.name, armed.channel) == ("armed", "1")
    assert armed.attrs["command"] == "652+700"
    assert armed.attrs["user_code"] == "0040" and armed.attrs["arm_mode"] == "stay"
    assert not pairs.holding


def test_arming_pairs_let_a_lone_frame_go_on_the_next_event_or_a_flush() -> None:
    pairs = ArmingPairs()
    assert pairs.push(_draft("652", "10")) == []
    released = pairs.push(_draft("601", "1004"))  # an alarm: the 652 had no partner
    assert [d.attrs["command"] for d in released] == ["652", "601"]
    assert pairs.push(_draft("655", "2")) == []
    assert pairs.push(_draft("750", "10040"))[0].attrs["command"] == "655"  # other partition
    assert [d.attrs["command"] for d in pairs.flush()] == ["750"]
    assert pairs.flush() == []


def test_arming_pairs_merge_a_special_closing_and_drop_the_report_mark() -> None:
    # An auto-arm right after a status dump: the driver marked the 652 as a report, but a 701
    # (special closing) follows it, so the panel armed just now: one real arming.
    pairs = ArmingPairs()
    reported = _draft("652", "20")
    reported = reported.model_copy(update={"attrs": {**reported.attrs, "report": "status"}})
    assert pairs.push(reported) == []
    (armed,) = pairs.push(_draft("701", "2"))
    assert armed.attrs == {
        "command": "652+701",
        "partition": "2",
        "arm_mode": "away",
        "closing": "special",
    }
    assert pairs.push(_draft("655", "2")) == []
    (disarmed,) = pairs.push(_draft("751", "2"))
    assert disarmed.attrs["command"] == "655+751" and disarmed.attrs["opening"] == "special"
