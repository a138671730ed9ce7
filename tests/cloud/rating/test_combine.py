"""Combined sessions (pure): union and intersection of member pieces, known answers, properties."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.domain import (
    Aggregation,
    CloseReason,
    MetricField,
    MetricSource,
    MetricSpec,
    SessionPiece,
)
from cloud.errors import InvalidBillingInput
from cloud.rating.combine import (
    CombinedMember,
    CombinedRule,
    CombineMode,
    CombineScope,
    check_rule,
    combine_pieces,
)
from cloud.rating.metrics import measure

DAY = datetime(2026, 11, 10, tzinfo=UTC)


def at(hours: float) -> datetime:
    """Hours after 2026-11-10 00:00 UTC."""
    return DAY + timedelta(hours=hours)


def piece(
    sid: int, device: str, profile: str, start: float, end: float, **kw: object
) -> SessionPiece:
    """A whole session as a piece, from `start` to `end` hours."""
    return SessionPiece(
        session_id=sid,
        device_id=device,
        channel=str(kw.get("channel", "1")),
        name="armed",
        profile=profile,
        started_at=at(start),
        ended_at=at(end),
        close_reason=CloseReason.DEACTIVATED,
        piece_start=at(start),
        piece_end=at(end),
        is_start=bool(kw.get("is_start", True)),
    )


def rule(combine: str, *profiles: str, scope: str = "account") -> CombinedRule:
    return CombinedRule(
        id="site-armed",
        scope=CombineScope(scope),
        combine=CombineMode(combine),
        members=tuple(CombinedMember(p) for p in profiles),
    )


HOURS = MetricSpec(
    id="armed-hours",
    source=MetricSource.SESSIONS,
    aggregation=Aggregation.SUM,
    field=MetricField.DURATION,
    profiles=frozenset({"site-armed"}),
)
COUNT = MetricSpec(
    id="armed-count",
    source=MetricSource.SESSIONS,
    aggregation=Aggregation.COUNT,
    profiles=frozenset({"site-armed"}),
)


def hours(r: CombinedRule, pieces: list[SessionPiece], spec: MetricSpec = HOURS) -> Decimal:
    return measure(spec, pieces=pieces, events=[], profile_of={}, combined={r.id: r}).value


def test_union_of_two_panels_is_the_night() -> None:
    # panel A 18:00-23:00, panel B 22:00-07:00 (next day): union 18:00-07:00 = 13 h
    a = piece(1, "panel-a", "panel", 18, 23)
    b = piece(2, "panel-b", "panel", 22, 31)
    r = rule("union", "panel")
    [night] = combine_pieces(r, [a, b], {})
    assert (night.start, night.end, night.pieces) == (at(18), at(31), (a, b))
    assert hours(r, [b, a]) == Decimal("13.000000")
    measured = measure(HOURS, pieces=[a, b], events=[], profile_of={}, combined={r.id: r})
    assert measured.sessions == (a, b)  # the evidence names both panels' sessions


def test_intersection_camera_while_armed() -> None:
    # The brief's example: camera 19:00-20:00 and 21:00-22:30, armed 20:30-23:00.
    # 19:00-20:00 is before the arming: nothing. 21:00-22:30 lies inside 20:30-23:00: all of it,
    # 22.5 - 21 = 1.5 h (the brief wrote 1 h; by hand the overlap is 1.5 h).
    cam1 = piece(1, "cam", "camera", 19, 20)
    cam2 = piece(2, "cam", "camera", 21, 22.5)
    armed = piece(3, "panel", "panel", 20.5, 23)
    r = rule("intersection", "camera", "panel")
    [both] = combine_pieces(r, [cam1, cam2, armed], {})
    assert (both.start, both.end, both.pieces) == (at(21), at(22.5), (armed, cam2))
    assert hours(r, [armed, cam2, cam1]) == Decimal("1.500000")
    measured = measure(
        HOURS, pieces=[cam1, cam2, armed], events=[], profile_of={}, combined={r.id: r}
    )
    assert measured.sessions == (armed, cam2)  # cam1 was not used: not in the evidence


def test_intersection_of_one_hour() -> None:
    # armed 21:30-23:00 instead: overlap with 21:00-22:30 is 21:30-22:30 = 1 h
    cam2 = piece(2, "cam", "camera", 21, 22.5)
    armed = piece(3, "panel", "panel", 21.5, 23)
    assert hours(rule("intersection", "camera", "panel"), [cam2, armed]) == Decimal("1.000000")


def test_touching_pieces_merge_and_count_once() -> None:
    # 18-20 and 20-22 touch: one combined session of 4 h, counted once
    a = piece(1, "panel-a", "panel", 18, 20)
    b = piece(2, "panel-b", "panel", 20, 22)
    r = rule("union", "panel")
    assert hours(r, [a, b]) == Decimal("4.000000")
    assert hours(r, [a, b], COUNT) == Decimal(1)


def test_count_skips_a_session_continued_from_before_the_period() -> None:
    # clipped at the period start (is_start false): it started in the previous period
    carried = piece(1, "panel-a", "panel", 0, 3, is_start=False)
    fresh = piece(2, "panel-a", "panel", 5, 6)
    r = rule("union", "panel")
    assert hours(r, [carried, fresh], COUNT) == Decimal(1)


def test_site_scope_combines_per_site_and_leaves_out_devices_without_one() -> None:
    a = piece(1, "panel-a", "panel", 18, 23)  # site north
    b = piece(2, "panel-b", "panel", 22, 31)  # site south: not merged with a
    c = piece(3, "panel-c", "panel", 0, 10)  # no site: in no group
    r = rule("union", "panel", scope="site")
    sites = {"panel-a": "north", "panel-b": "south", "panel-c": None}
    combined = combine_pieces(r, [a, b, c], sites)
    assert [(s.group, s.start, s.end) for s in combined] == [
        ("north", at(18), at(23)),
        ("south", at(22), at(31)),
    ]


def test_channel_filter_keeps_only_the_members_channels() -> None:
    p1 = piece(1, "panel", "panel", 18, 19, channel="1")
    p2 = piece(2, "panel", "panel", 20, 21, channel="2")
    r = CombinedRule(
        "site-armed",
        CombineScope.ACCOUNT,
        CombineMode.UNION,
        (CombinedMember("panel", frozenset({"2"})),),
    )
    assert hours(r, [p1, p2]) == Decimal("1.000000")


@pytest.mark.parametrize(
    ("members", "combine", "message"),
    [
        ((), "union", "at least one member"),
        (("panel",), "intersection", "at least two members"),
        (("panel", "panel"), "union", "listed twice"),
    ],
)
def test_bad_rules_are_refused(members: tuple[str, ...], combine: str, message: str) -> None:
    with pytest.raises(InvalidBillingInput, match=message):
        check_rule(rule(combine, *members))


def test_a_combined_rule_must_be_the_metrics_only_profile() -> None:
    spec = MetricSpec(
        id="mixed",
        source=MetricSource.SESSIONS,
        aggregation=Aggregation.COUNT,
        profiles=frozenset({"site-armed", "panel"}),
    )
    r = rule("union", "panel")
    with pytest.raises(InvalidBillingInput, match="only profile"):
        measure(spec, pieces=[], events=[], profile_of={}, combined={r.id: r})


# --- properties -------------------------------------------------------------------------------

_DEVICES = ["cam", "panel-a", "panel-b"]
_PROFILE = {"cam": "camera", "panel-a": "panel", "panel-b": "panel"}


@st.composite
def pieces_strategy(draw: st.DrawFn) -> list[SessionPiece]:
    """Up to 12 pieces on a quarter-hour grid over two days, of three devices."""
    count = draw(st.integers(min_value=0, max_value=12))
    out = []
    for sid in range(1, count + 1):
        device = draw(st.sampled_from(_DEVICES))
        start = draw(st.integers(min_value=0, max_value=190)) / 4
        length = draw(st.integers(min_value=0, max_value=40)) / 4
        out.append(
            piece(
                sid, device, _PROFILE[device], start, start + length, is_start=draw(st.booleans())
            )
        )
    return out


RULES = [
    rule("union", "panel"),
    rule("union", "panel", "camera"),
    rule("intersection", "camera", "panel"),
    rule("union", "panel", scope="site"),
]
SITES = {"cam": "north", "panel-a": "north", "panel-b": "south"}


@given(pieces=pieces_strategy(), data=st.data())
def test_any_order_gives_the_same_combined_sessions(
    pieces: list[SessionPiece], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(pieces))
    for r in RULES:
        assert combine_pieces(r, shuffled, SITES) == combine_pieces(r, pieces, SITES)


@given(pieces=pieces_strategy())
def test_combined_sessions_are_disjoint_and_inside_their_pieces(pieces: list[SessionPiece]) -> None:
    for r in RULES:
        combined = combine_pieces(r, pieces, SITES)
        for s in combined:
            assert s.start < s.end and s.pieces
            assert min(p.piece_start for p in s.pieces) <= s.start
            assert max(p.piece_end for p in s.pieces) >= s.end
        for group in {s.group for s in combined}:
            mine = [s for s in combined if s.group == group]
            assert all(x.end < y.start for x, y in pairwise(mine))  # touching ones merged


@given(pieces=pieces_strategy())
def test_the_used_pieces_alone_give_the_same_value(pieces: list[SessionPiece]) -> None:
    # what verify-invoice does: combine again from the evidence's member pieces only
    for r in RULES[:3]:
        for spec in (HOURS, COUNT):
            first = measure(spec, pieces=pieces, events=[], profile_of={}, combined={r.id: r})
            again = measure(
                spec, pieces=list(first.sessions), events=[], profile_of={}, combined={r.id: r}
            )
            assert again.value == first.value


@given(pieces=pieces_strategy())
def test_union_hours_equal_the_covered_quarter_hours(pieces: list[SessionPiece]) -> None:
    # an independent oracle: count the quarter-hour cells any member covers
    cells = {
        q
        for p in pieces
        for q in range(
            int((p.piece_start - DAY) / timedelta(minutes=15)),
            int((p.piece_end - DAY) / timedelta(minutes=15)),
        )
    }
    assert hours(rule("union", "panel", "camera"), pieces) == Decimal(len(cells)) / 4


def test_a_count_names_every_piece_that_decided_it() -> None:
    # Found by the property above. Panel P4 (2.5-4, continued) opens the second intersection
    # with the camera at 2.5 without a session start, so it is not counted; the counted ones
    # are 1-2 (P1 starts) and 6-8 (C2 starts): 2. Had the evidence named only the counted
    # intervals' pieces, combining them again would open the second one at 3 with P2's start
    # and count 3.
    r = rule("intersection", "panel", "camera")
    pieces = [
        piece(1, "panel-1", "panel", 1, 2),
        piece(2, "panel-1", "panel", 3, 8),
        piece(4, "panel-2", "panel", 2.5, 4, is_start=False),
        piece(11, "cam-1", "camera", 0, 5),
        piece(12, "cam-1", "camera", 6, 10),
    ]
    first = measure(COUNT, pieces=pieces, events=[], profile_of={}, combined={r.id: r})
    again = measure(
        COUNT, pieces=list(first.sessions), events=[], profile_of={}, combined={r.id: r}
    )
    assert first.value == again.value == Decimal(2)
    assert {p.session_id for p in first.sessions} == {1, 2, 4, 11, 12}
