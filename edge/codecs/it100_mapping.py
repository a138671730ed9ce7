"""IT-100 frames -> usage events: which panel reports are billable and how they read.

Pure and sync. Arming (652 partition armed, 700 user closing, 701 special closing: quick arm,
auto-arm, keyswitch, wireless key, DLS) is an `activation` named "armed", disarming (655
partition disarmed, 750 user opening, 751 special opening) a `deactivation` named "disarmed",
both on the partition as channel; alarms (601 zone alarm, 603 zone tamper, 654 partition in alarm,
621/623/625 keypad fire/auxiliary/panic) are `activity` "alarm"; zone open/restore (609/610) are
`activity` only when the device config asks for zone events. Every other frame is link traffic
or status, not usage, and maps to None.

One arming gives two adjacent frames (652 with the arm mode, then 700 with the user code or 701
for a special closing), one disarming two more (655, 750/751). `ArmingPairs` merges each pair
into ONE event, so billing sees one activation per arming; a 652 with no partner (a status
report after a reconnect) stays alone. A closing or opening frame is always a real change made
at the panel, so a merged event is never a status report: `ArmingPairs` drops the driver's
`attrs["report"]` mark from the 652 it merges. IT-100 frames carry no time, so
`occurred_at` is the time the gateway read the line. Data shapes are checked by
`edge.codecs.it100.decode_frame` before a frame gets here.
"""

from datetime import datetime

from edge.codecs.it100 import ARM_MODES, COMMANDS, Frame, It100FrameError, encode_frame, is_known
from shared.events import AttrValue, ClockState, EventDraft, EventKind

__all__ = ["ArmingPairs", "is_known", "map_frame"]

ARMING = frozenset({"652", "700", "701"})
DISARMING = frozenset({"655", "750", "751"})
# Keypad alarms carry no data (Developer's Guide, 621-626).
KEYPAD_ALARMS = {"621": "fire", "623": "auxiliary", "625": "panic"}
ZONE_ALARMS = {"601": "zone", "603": "tamper"}
ZONE_EVENTS = {"609": "zone_open", "610": "zone_restore"}


def map_frame(
    frame: Frame,
    *,
    device_id: str,
    observed_at: datetime,
    clock: ClockState,
    zone_events: bool,
) -> EventDraft | None:
    """The usage event a frame stands for, or None when it is not usage."""
    known = COMMANDS.get(frame.command)
    if known is not None and not known.accepts(frame.data):
        raise It100FrameError(
            f"data does not fit command {frame.command} ({known.meaning})",
            reason="malformed",
            line=encode_frame(frame.command, frame.data),
        )
    described = _describe(frame, zone_events=zone_events)
    if described is None:
        return None
    name, kind, channel, attrs = described
    return EventDraft(
        device_id=device_id,
        channel=channel,
        name=name,
        kind=kind,
        occurred_at=observed_at,
        observed_at=observed_at,
        clock=clock,
        attrs={"command": frame.command, **attrs},
    )


_Described = tuple[str, EventKind, str | None, dict[str, AttrValue]]


def _describe(frame: Frame, *, zone_events: bool) -> _Described | None:
    command, data = frame.command, frame.data
    if command in ARMING:
        return "armed", EventKind.ACTIVATION, data[0], _arming_attrs(frame)
    if command in DISARMING:
        attrs: dict[str, AttrValue] = {"partition": data[0]}
        if command == "750":
            attrs["user_code"] = data[1:]
        elif command == "751":
            attrs["opening"] = "special"
        return "disarmed", EventKind.DEACTIVATION, data[0], attrs
    if command in ZONE_ALARMS:
        return "alarm", EventKind.ACTIVITY, data[0], _alarm(data[1:], data[0], ZONE_ALARMS[command])
    if command == "654":
        return "alarm", EventKind.ACTIVITY, data, _alarm(None, data, "partition")
    if command in KEYPAD_ALARMS:
        return "alarm", EventKind.ACTIVITY, None, _alarm(None, None, KEYPAD_ALARMS[command])
    if command in ZONE_EVENTS and zone_events:
        return ZONE_EVENTS[command], EventKind.ACTIVITY, None, {"zone": data}
    return None


def _arming_attrs(frame: Frame) -> dict[str, AttrValue]:
    partition, rest = frame.data[0], frame.data[1:]
    if frame.command == "652":
        return {"partition": partition, "arm_mode": ARM_MODES[rest]}
    if frame.command == "701":
        return {"partition": partition, "closing": "special"}
    return {"partition": partition, "user_code": rest}


def _alarm(zone: str | None, partition: str | None, alarm_type: str) -> dict[str, AttrValue]:
    return {"zone": zone, "partition": partition, "alarm_type": alarm_type}


_PARTNERS = {("652", "700"), ("652", "701"), ("655", "750"), ("655", "751")}


def _partners(first: EventDraft, second: EventDraft) -> bool:
    pair = tuple(sorted((str(first.attrs.get("command")), str(second.attrs.get("command")))))
    return pair in _PARTNERS and (first.name, first.channel) == (second.name, second.channel)


class ArmingPairs:
    """Merges a partition's armed/disarmed frame with its user closing/opening frame.

    Feed every draft in order; `push` returns the drafts ready to go on. An arming or disarming
    draft is held until its partner arrives (then one merged draft goes on), until any other
    draft arrives, or until the caller `flush`es it (the driver does after a quiet moment).
    """

    def __init__(self) -> None:
        self._held: EventDraft | None = None

    @property
    def holding(self) -> bool:
        """Whether a draft is waiting for its partner."""
        return self._held is not None

    def push(self, draft: EventDraft) -> list[EventDraft]:
        """The drafts that can go on now that `draft` arrived."""
        held, self._held = self._held, None
        if held is not None and _partners(held, draft):
            return [_merge(held, draft)]
        ready = [] if held is None else [held]
        if draft.attrs.get("command") in ARMING | DISARMING:
            self._held = draft
            return ready
        return [*ready, draft]

    def flush(self) -> list[EventDraft]:
        """Let a held draft go on alone."""
        held, self._held = self._held, None
        return [] if held is None else [held]


def _merge(first: EventDraft, second: EventDraft) -> EventDraft:
    # The partition frame (652/655) leads; the closing/opening frame adds its code. Neither is
    # a status report: someone armed or disarmed the partition just now.
    lead, user = (
        (first, second) if str(first.attrs["command"]).startswith("65") else (second, first)
    )
    attrs = {
        **user.attrs,
        **lead.attrs,
        "command": f"{lead.attrs['command']}+{user.attrs['command']}",
    }
    attrs.pop("report", None)
    return lead.model_copy(update={"attrs": attrs})
