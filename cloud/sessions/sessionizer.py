"""The sessionizer: the events of one (device, channel) -> its sessions. Pure code.

Events are walked in their total order (`BillableEvent.order`), never in arrival order, so the
sessions are a function of the set of events alone:

1. an open session idle for longer than the timeout before this event closes `timed_out` at its
   last activity;
2. a `start_on` event closes an open session `superseded` at the event's time (without the
   event) and opens a new one; an `end_on` event joins the open session and closes it
   `deactivated`; any other event is an activity of the open session. With no open session,
   `end_on` and other events are orphans (part of no session);
3. at the end, the open session is `timed_out` if idle for longer than the timeout at `as_of`,
   else `still_open`.

Status reports (`BillableEvent.report == "status"`, from `attrs["report"]`) say what state a
device is in, not that something just happened: an IT-100 panel answers the gateway's status
request at every start and reconnect with its partitions' state. So a `start_on` status report

- while a session is open is a confirmation: an activity of the open session (it keeps a
  timeout rule from closing a session the device says is still on), never a new start;
- with no session open opens one, which starts at the report's `occurred_at`: the device does
  not say since when it has been on, and the first time we know it is the report (so billing
  never counts time before it);
- a session opened by a status report that a `start_on` or `end_on` event closes at the very
  instant it began is no session (its events are orphans): it lasted nothing, and dropping it
  keeps the incremental store (which recomputes from a session start's time) equal to one
  computation over all events when a report ties with a real start at the same microsecond.

Restarting a gateway therefore never changes the sessions of a state that is already open, and
the rule needs no memory on the gateway: it holds after the agent restarted.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from cloud.domain import BillableEvent, CloseReason, ComputedSession, EventKey, SessionRule

STATUS_REPORT = "status"
"""The `attrs["report"]` value of an event that reports a state rather than a change."""


@dataclass(slots=True)
class _Open:
    start: BillableEvent
    last_activity_at: datetime
    events: list[EventKey] = field(default_factory=list)

    @property
    def by_report(self) -> bool:
        return self.start.report == STATUS_REPORT

    def close(self, reason: CloseReason, ended_at: datetime | None) -> ComputedSession:
        start = self.start
        return ComputedSession(
            device_id=start.device_id,
            channel=start.channel,
            name=start.name,
            started_at=start.occurred_at,
            ended_at=ended_at,
            last_activity_at=self.last_activity_at,
            close_reason=reason,
            start_order=start.order,
            events=tuple(self.events),
        )


def sessionize(
    events: Iterable[BillableEvent], rule: SessionRule, *, as_of: datetime
) -> list[ComputedSession]:
    """The sessions of the events of ONE (device_id, channel), given in any order."""
    sessions: list[ComputedSession] = []
    start_on, end_on, timeout = rule.start_on, rule.end_on, rule.timeout
    current: _Open | None = None
    for event in sorted(events, key=_order):
        at = event.occurred_at
        if current is not None and timeout is not None and at - current.last_activity_at > timeout:
            sessions.append(current.close(CloseReason.TIMED_OUT, current.last_activity_at))
            current = None
        name = event.name
        starts = name in start_on and (current is None or event.report != STATUS_REPORT)
        if starts:
            if current is not None:
                _end(sessions, current, CloseReason.SUPERSEDED, at)
            current = _Open(
                start=event, last_activity_at=at, events=[(event.gateway_id, event.seq)]
            )
        elif current is not None:
            current.events.append((event.gateway_id, event.seq))
            current.last_activity_at = at
            if name in end_on:
                _end(sessions, current, CloseReason.DEACTIVATED, at)
                current = None
    if current is not None:
        if timeout is not None and as_of - current.last_activity_at > timeout:
            sessions.append(current.close(CloseReason.TIMED_OUT, current.last_activity_at))
        else:
            sessions.append(current.close(CloseReason.STILL_OPEN, None))
    return sessions


def _end(
    sessions: list[ComputedSession], current: _Open, reason: CloseReason, at: datetime
) -> None:
    """Close `current` at `at` by an event, unless it is a report's session that lasted nothing."""
    if current.by_report and at == current.start.occurred_at:
        return
    sessions.append(current.close(reason, at))


def _order(event: BillableEvent) -> tuple[datetime, str, int]:
    return (event.occurred_at, event.gateway_id, event.seq)
