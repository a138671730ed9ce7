"""The sessionizer: known-answer sequences for each close reason, and order independence."""

import itertools
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.catalog.session_rules import check_rule, rule_of
from cloud.domain import BillableEvent, CloseReason, ComputedSession, SessionRule
from cloud.errors import InvalidBillingInput
from cloud.sessions.sessionizer import STATUS_REPORT, sessionize

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
LOCK = SessionRule(frozenset({"opened"}), frozenset({"closed"}), timedelta(minutes=10))
CAMERA = SessionRule(frozenset({"stream_start"}), frozenset({"stream_stop"}))


def at(minute: float) -> datetime:
    """T0 plus some minutes."""
    return T0 + timedelta(minutes=minute)


def ev(
    seq: int, name: str, minute: float, gateway: str = "gw-a", *, report: str | None = None
) -> BillableEvent:
    """An event of device lock-1 (no channel); `report="status"` makes it a status report."""
    return BillableEvent(
        gateway, seq, "lock-1", None, name, "activity", None, None, at(minute), report
    )


def status(seq: int, name: str, minute: float, gateway: str = "gw-a") -> BillableEvent:
    """A status report: the device says it is in the state `name` stands for."""
    return ev(seq, name, minute, gateway, report=STATUS_REPORT)


def summary(sessions: Sequence[ComputedSession]) -> list[tuple[object, ...]]:
    """(started, ended, reason, event seqs) of each session, for readable known answers."""
    return [
        (s.started_at, s.ended_at, s.close_reason, [seq for _, seq in s.events]) for s in sessions
    ]


def test_deactivated_session() -> None:
    events = [ev(1, "opened", 0), ev(2, "tick", 3), ev(3, "closed", 5)]
    [session] = sessionize(events, LOCK, as_of=at(60))
    assert session == ComputedSession(
        device_id="lock-1",
        channel=None,
        name="opened",
        started_at=at(0),
        ended_at=at(5),
        last_activity_at=at(5),
        close_reason=CloseReason.DEACTIVATED,
        start_order=(at(0), "gw-a", 1),
        events=(("gw-a", 1), ("gw-a", 2), ("gw-a", 3)),
    )


def test_timed_out_between_events_ends_at_last_activity() -> None:
    # Activity at 4, next event at 14.5: idle 10.5 min > 10 -> timed out at 4; the tick at 14.5
    # is an orphan (no open session), the close at 20 too.
    events = [ev(1, "opened", 0), ev(2, "tick", 4), ev(3, "tick", 14.5), ev(4, "closed", 20)]
    assert summary(sessionize(events, LOCK, as_of=at(60))) == [
        (at(0), at(4), CloseReason.TIMED_OUT, [1, 2]),
    ]


def test_idle_exactly_the_timeout_does_not_time_out() -> None:
    events = [ev(1, "opened", 0), ev(2, "tick", 10), ev(3, "closed", 20)]
    assert summary(sessionize(events, LOCK, as_of=at(60))) == [
        (at(0), at(20), CloseReason.DEACTIVATED, [1, 2, 3]),
    ]


def test_superseded_by_a_new_start() -> None:
    events = [ev(1, "opened", 0), ev(2, "tick", 2), ev(3, "opened", 5), ev(4, "closed", 7)]
    assert summary(sessionize(events, LOCK, as_of=at(60))) == [
        (at(0), at(5), CloseReason.SUPERSEDED, [1, 2]),  # the new start is not part of it
        (at(5), at(7), CloseReason.DEACTIVATED, [3, 4]),
    ]


def test_still_open_and_timed_out_at_as_of() -> None:
    events = [ev(1, "opened", 0), ev(2, "tick", 3)]
    # as_of 13: idle exactly 10 min -> still open; as_of 13.01 -> timed out at the last tick.
    assert summary(sessionize(events, LOCK, as_of=at(13))) == [
        (at(0), None, CloseReason.STILL_OPEN, [1, 2])
    ]
    assert summary(sessionize(events, LOCK, as_of=at(13.01))) == [
        (at(0), at(3), CloseReason.TIMED_OUT, [1, 2])
    ]
    # No timeout in the rule: open forever.
    endless = SessionRule(LOCK.start_on, LOCK.end_on)
    assert summary(sessionize(events, endless, as_of=at(10**6))) == [
        (at(0), None, CloseReason.STILL_OPEN, [1, 2])
    ]


def test_orphans_are_ignored() -> None:
    events = [ev(1, "tick", 0), ev(2, "closed", 1), ev(3, "opened", 2), ev(4, "closed", 3)]
    events += [ev(5, "closed", 4), ev(6, "tick", 5)]
    assert summary(sessionize(events, LOCK, as_of=at(60))) == [
        (at(2), at(3), CloseReason.DEACTIVATED, [3, 4]),
    ]
    assert sessionize([], LOCK, as_of=at(0)) == []


def test_equal_timestamps_are_ordered_by_gateway_then_seq() -> None:
    # All at minute 1: (gw-a, 9) opens, (gw-b, 1) closes; (gw-b, 2) opens again, still open.
    events = [ev(2, "opened", 1, "gw-b"), ev(9, "opened", 1, "gw-a"), ev(1, "closed", 1, "gw-b")]
    sessions = sessionize(events, LOCK, as_of=at(5))
    assert [(s.close_reason, s.events) for s in sessions] == [
        (CloseReason.DEACTIVATED, (("gw-a", 9), ("gw-b", 1))),
        (CloseReason.STILL_OPEN, (("gw-b", 2),)),
    ]
    assert sessions[0].started_at == sessions[0].ended_at == at(1)  # zero-length


def test_arrival_order_does_not_matter_for_a_known_sequence() -> None:
    events = [
        ev(n, name, m)
        for n, (name, m) in enumerate(
            [("opened", 0), ("tick", 1), ("opened", 3), ("closed", 4), ("tick", 6), ("opened", 8)],
            start=1,
        )
    ]
    expected = sessionize(events, LOCK, as_of=at(12))
    shuffled = events[:]
    random.Random(3).shuffle(shuffled)
    assert sessionize(shuffled, LOCK, as_of=at(12)) == expected
    assert [s.close_reason for s in expected] == [
        CloseReason.SUPERSEDED,
        CloseReason.DEACTIVATED,
        CloseReason.STILL_OPEN,
    ]


# -- status reports ------------------------------------------------------------------------------


def test_status_reports_while_open_confirm_it() -> None:
    # Armed at 0 (a real arming), then a gateway restarted 6 times: each start reports "armed".
    events = [ev(1, "opened", 0), *(status(n, "opened", 60 * n) for n in range(2, 8))]
    events.append(ev(8, "closed", 500))
    endless = SessionRule(LOCK.start_on, LOCK.end_on)
    assert summary(sessionize(events, endless, as_of=at(600))) == [
        (at(0), at(500), CloseReason.DEACTIVATED, [1, 2, 3, 4, 5, 6, 7, 8]),
    ]


def test_status_report_opens_a_session_at_its_time_when_none_is_open() -> None:
    # The gateway first hears of the armed partition from a report at 5: billed from 5.
    events = [status(1, "opened", 5), status(2, "opened", 9), ev(3, "closed", 12)]
    assert summary(sessionize(events, LOCK, as_of=at(60))) == [
        (at(5), at(12), CloseReason.DEACTIVATED, [1, 2, 3]),
    ]
    # Still open at the end: a report alone is a session.
    assert summary(sessionize([status(1, "opened", 5)], LOCK, as_of=at(6))) == [
        (at(5), None, CloseReason.STILL_OPEN, [1]),
    ]


def test_status_reports_keep_a_timeout_from_closing_the_session() -> None:
    # Idle limit 10 min: reports at 8 and 16 say it is still on, so it is not timed out.
    events = [ev(1, "opened", 0), status(2, "opened", 8), status(3, "opened", 16)]
    events.append(ev(4, "closed", 20))
    assert summary(sessionize(events, LOCK, as_of=at(60))) == [
        (at(0), at(20), CloseReason.DEACTIVATED, [1, 2, 3, 4]),
    ]


def test_status_report_after_a_timeout_opens_a_new_session() -> None:
    events = [ev(1, "opened", 0), status(2, "opened", 30)]
    assert summary(sessionize(events, LOCK, as_of=at(35))) == [
        (at(0), at(0), CloseReason.TIMED_OUT, [1]),
        (at(30), None, CloseReason.STILL_OPEN, [2]),
    ]


def test_real_start_supersedes_a_session_a_report_opened() -> None:
    events = [status(1, "opened", 0), ev(2, "opened", 5), ev(3, "closed", 7)]
    assert summary(sessionize(events, LOCK, as_of=at(60))) == [
        (at(0), at(5), CloseReason.SUPERSEDED, [1]),
        (at(5), at(7), CloseReason.DEACTIVATED, [2, 3]),
    ]


def test_report_session_closed_at_its_own_instant_is_no_session() -> None:
    # A report tying with the end or a real start at the same microsecond lasted nothing.
    assert sessionize([status(1, "opened", 1), ev(2, "closed", 1)], LOCK, as_of=at(60)) == []
    assert summary(sessionize([status(1, "opened", 1), ev(2, "opened", 1)], LOCK, as_of=at(5))) == [
        (at(1), None, CloseReason.STILL_OPEN, [2])
    ]
    # A real start and end at one instant is still a (zero-length) session.
    assert summary(sessionize([ev(1, "opened", 1), ev(2, "closed", 1)], LOCK, as_of=at(60))) == [
        (at(1), at(1), CloseReason.DEACTIVATED, [1, 2])
    ]


def test_status_report_of_another_name_is_an_ordinary_event() -> None:
    # Only `start_on` reports are special: a reported tick or close behaves as any other.
    events = [ev(1, "opened", 0), status(2, "tick", 1), status(3, "closed", 2)]
    assert summary(sessionize(events, LOCK, as_of=at(60))) == [
        (at(0), at(2), CloseReason.DEACTIVATED, [1, 2, 3]),
    ]


# -- rules --------------------------------------------------------------------------------------


def test_rule_of_profile_parts() -> None:
    assert rule_of(start_on=[], end_on=[], timeout_seconds=None) is None
    assert rule_of(start_on=["opened"], end_on=["closed"], timeout_seconds=600) == LOCK


@pytest.mark.parametrize(
    ("start_on", "end_on", "timeout", "message"),
    [
        (["opened"], ["opened", "closed"], None, "in both"),
        ([], ["closed"], None, "end_on needs start_on"),
        (["opened"], ["closed"], 0, "positive"),
        (["opened"], ["closed"], -5, "positive"),
        ([""], [], None, "empty"),
    ],
)
def test_check_rule_refuses(
    start_on: list[str], end_on: list[str], timeout: int | None, message: str
) -> None:
    with pytest.raises(InvalidBillingInput, match=message):
        check_rule(start_on, end_on, timeout)


def test_check_rule_accepts() -> None:
    check_rule(["opened"], ["closed"], 600)
    check_rule(["opened"], [], None)
    check_rule([], [], None)


# -- properties ---------------------------------------------------------------------------------

NAMES = st.sampled_from(["opened", "closed", "tick"])


@st.composite
def event_lists(draw: st.DrawFn) -> list[BillableEvent]:
    """Up to 30 events of one pair on two gateways, times on a coarse grid (many ties); about a
    third are status reports."""
    count = draw(st.integers(0, 30))
    events = []
    for seq in range(1, count + 1):
        minute = draw(st.integers(0, 60)) * 2.5
        gateway = draw(st.sampled_from(["gw-a", "gw-b"]))
        report = draw(st.sampled_from([None, None, STATUS_REPORT]))
        events.append(ev(seq, draw(NAMES), minute, gateway, report=report))
    return events


RULES = st.sampled_from(
    [LOCK, SessionRule(LOCK.start_on, LOCK.end_on), SessionRule(frozenset({"opened"}), frozenset())]
)


@settings(max_examples=300)
@given(events=event_lists(), rule=RULES, data=st.data())
def test_any_arrival_order_gives_identical_sessions(
    events: list[BillableEvent], rule: SessionRule, data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(events))
    as_of = at(200)
    assert sessionize(shuffled, rule, as_of=as_of) == sessionize(events, rule, as_of=as_of)


def incremental(
    batches: Sequence[Sequence[BillableEvent]], rule: SessionRule, as_ofs: Sequence[datetime]
) -> list[ComputedSession]:
    """The store's algorithm in memory: per batch, recompute from the latest session that
    started before the batch's earliest event (else from that event); between batches, a
    still-open session past its timeout is recomputed from its start."""
    stored: list[BillableEvent] = []
    current: list[ComputedSession] = []
    for batch, as_of in zip(batches, as_ofs, strict=True):
        stored.extend(batch)
        since_times = [e.occurred_at for e in batch]
        expired = [
            s.started_at
            for s in current
            if s.close_reason is CloseReason.STILL_OPEN
            and rule.timeout is not None
            and as_of - s.last_activity_at > rule.timeout
        ]
        if not since_times and not expired:
            continue
        since = min(since_times + expired)
        before = [s.started_at for s in current if s.started_at < since]
        point = max(before) if before else since
        kept = [s for s in current if s.started_at < point]
        fresh = sessionize([e for e in stored if e.occurred_at >= point], rule, as_of=as_of)
        current = kept + fresh
    return current


@settings(max_examples=300)
@given(events=event_lists(), rule=RULES, data=st.data())
def test_incremental_batches_equal_one_shot(
    events: list[BillableEvent], rule: SessionRule, data: st.DataObject
) -> None:
    arrival = data.draw(st.permutations(events))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(arrival)), max_size=5)))
    bounds = [0, *cuts, len(arrival)]
    batches = [arrival[a:b] for a, b in itertools.pairwise(bounds)]
    as_ofs = [at(160 + 5 * n) for n in range(len(batches))]  # refreshes move forward in time
    assert incremental(batches, rule, as_ofs) == sessionize(events, rule, as_of=as_ofs[-1])


def test_incremental_equals_one_shot_when_a_report_ties_a_real_start() -> None:
    # The store recomputes from the start time of the session at 5; the report at 5 sorts before
    # that start. Recomputed alone it would open a session at 5, superseded at 5 by the real
    # start: a session the one-shot computation (where the report confirms session 1) lacks.
    events = [ev(1, "opened", 0), status(2, "opened", 5), ev(3, "opened", 5), ev(4, "closed", 8)]
    one_shot = sessionize(events, LOCK, as_of=at(9))
    assert incremental([events[:3], events[3:]], LOCK, [at(9), at(9)]) == one_shot
    assert summary(one_shot) == [
        (at(0), at(5), CloseReason.SUPERSEDED, [1, 2]),
        (at(5), at(8), CloseReason.DEACTIVATED, [3, 4]),
    ]
