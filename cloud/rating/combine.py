"""Billable sessions across devices: the union or intersection of member session pieces (pure).

A combined session rule (`CombinedRule`) names member groups, each a device profile with an
optional channel filter. `combine_pieces` takes session pieces already clipped to the period,
the bindings and a plan part, keeps those of the members, groups them by scope (one group per
site for "site", the whole account for "account") and returns the combined intervals of each
group, each with exactly the member pieces it used:

- union: the times when a piece of ANY member is active; overlapping or touching pieces merge.
- intersection: the times when at least one piece of EACH member group is active.

Order-independent by construction: every input is sorted by a total key before it is swept, so
any arrival order or permutation of the same pieces gives the same combined sessions. Pieces of
zero length add no time and are left out; devices without a site are in no "site" group.

`measure_combined` turns the intervals into a metric value: `count` counts the intervals that
start inside the given pieces (a member piece holding its session's start begins the interval),
`sum` / `max` / `latest` read their durations, `unique_count` the distinct devices used. The
measurement names every member piece behind the number, so an invoice line's evidence points at
each device session it used and a verifier can combine them again.
"""

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from cloud.domain import Aggregation, Measurement, MetricSpec, SessionPiece
from cloud.errors import InvalidBillingInput
from cloud.rating.arithmetic import EXACT, divide_half_up

MAX_MEMBERS = 16
_PLACES = 6
_MICROSECONDS = {"second": 1_000_000, "minute": 60_000_000, "hour": 3_600_000_000}


class CombineScope(enum.StrEnum):
    """Which devices' sessions are combined together."""

    SITE = "site"  # the account's bound devices of one site
    ACCOUNT = "account"  # all the account's bound devices


class CombineMode(enum.StrEnum):
    """How the member sessions combine."""

    UNION = "union"
    INTERSECTION = "intersection"


@dataclass(frozen=True, slots=True)
class CombinedMember:
    """One member group: the sessions of a profile's devices, optionally of some channels only."""

    profile: str
    channels: frozenset[str] = frozenset()

    def takes(self, piece: SessionPiece) -> bool:
        """Whether the piece is one of this member's sessions."""
        return piece.profile == self.profile and (
            not self.channels or (piece.channel or "") in self.channels
        )


@dataclass(frozen=True, slots=True)
class CombinedRule:
    """A combined session rule: its id acts as a profile id in a session metric's `profiles`."""

    id: str
    scope: CombineScope
    combine: CombineMode
    members: tuple[CombinedMember, ...]


@dataclass(frozen=True, slots=True)
class CombinedSession:
    """One combined interval [start, end) of one scope group and the member pieces it used."""

    group: str | None  # the site id (scope site) or None (scope account)
    start: datetime
    end: datetime
    pieces: tuple[SessionPiece, ...]

    @property
    def starts_here(self) -> bool:
        """True when a used piece holding its session's start begins the interval."""
        return any(p.is_start and p.piece_start == self.start for p in self.pieces)


def check_rule(rule: CombinedRule) -> None:
    """Refuse a rule that cannot mean anything: no members, duplicates, a lone intersection."""
    problem = _rule_problem(rule)
    if problem is not None:
        raise InvalidBillingInput(
            f"combined rule {rule.id!r}: {problem}", detail={"combined_rule": rule.id}
        )


def _rule_problem(rule: CombinedRule) -> str | None:
    if not rule.members:
        return "it needs at least one member"
    if len(rule.members) > MAX_MEMBERS:
        return f"at most {MAX_MEMBERS} members"
    if len(set(rule.members)) != len(rule.members):
        return "a member is listed twice"
    if rule.combine is CombineMode.INTERSECTION and len(rule.members) < 2:
        return "an intersection needs at least two members (one member is its own union)"
    return None


def piece_key(piece: SessionPiece) -> tuple[datetime, datetime, int, str, str]:
    """A total order of pieces: the same pieces in any order sort the same."""
    return (piece.piece_start, piece.piece_end, piece.session_id, piece.device_id, piece.name)


def combine_pieces(
    rule: CombinedRule, pieces: Iterable[SessionPiece], site_of: Mapping[str, str | None]
) -> list[CombinedSession]:
    """The rule's combined sessions over these pieces, by group then start."""
    groups: dict[str | None, list[SessionPiece]] = defaultdict(list)
    for piece in pieces:
        if piece.piece_end <= piece.piece_start or not any(m.takes(piece) for m in rule.members):
            continue
        if rule.scope is CombineScope.SITE:
            site = site_of.get(piece.device_id)
            if site is None:
                continue
            groups[site].append(piece)
        else:
            groups[None].append(piece)
    combined: list[CombinedSession] = []
    for group in sorted(groups, key=lambda g: g or ""):
        members = sorted(groups[group], key=piece_key)
        if rule.combine is CombineMode.UNION:
            intervals = _union(members)
        else:
            intervals = _intersection([[p for p in members if m.takes(p)] for m in rule.members])
        combined.extend(CombinedSession(group, lo, hi, used) for lo, hi, used in intervals)
    return combined


_Interval = tuple[datetime, datetime, tuple[SessionPiece, ...]]


def _union(pieces: Sequence[SessionPiece]) -> list[_Interval]:
    """Merge sorted pieces: overlapping or touching ones make one interval."""
    merged: list[_Interval] = []
    for piece in pieces:
        if merged and piece.piece_start <= merged[-1][1]:
            lo, hi, used = merged[-1]
            merged[-1] = (lo, max(hi, piece.piece_end), (*used, piece))
        else:
            merged.append((piece.piece_start, piece.piece_end, (piece,)))
    return merged


def _intersection(groups: Sequence[Sequence[SessionPiece]]) -> list[_Interval]:
    """The times every group is active: intersect each group's union in turn."""
    result = _union(groups[0])
    for group in groups[1:]:
        result = _intersect(result, _union(group))
    return result


def _intersect(left: Sequence[_Interval], right: Sequence[_Interval]) -> list[_Interval]:
    """Two sorted lists of disjoint intervals -> their overlaps, each with the pieces in it."""
    out: list[_Interval] = []
    i = j = 0
    while i < len(left) and j < len(right):
        lo = max(left[i][0], right[j][0])
        hi = min(left[i][1], right[j][1])
        if lo < hi:
            both = (*left[i][2], *right[j][2])
            used = [p for p in both if p.piece_start < hi and lo < p.piece_end]
            out.append((lo, hi, tuple(sorted(set(used), key=piece_key))))
        if left[i][1] <= right[j][1]:
            i += 1
        else:
            j += 1
    return out


def measure_combined(
    spec: MetricSpec,
    rule: CombinedRule,
    pieces: Sequence[SessionPiece],
    site_of: Mapping[str, str | None],
) -> Measurement:
    """A session metric over the rule's combined sessions, naming every member piece used."""
    sessions = combine_pieces(rule, pieces, site_of)
    aggregation = spec.aggregation
    if aggregation is Aggregation.COUNT:
        # The evidence names the pieces of every combined session, counted or not: whether an
        # intersection begins with a session's start depends on all of them, so combining a
        # subset again could count an interval that was not (verify-invoice combines again).
        counted = [s for s in sessions if s.starts_here]
        return Measurement(value=_number(len(counted)), sessions=_used(sessions))
    if aggregation is Aggregation.UNIQUE_COUNT:
        used = _used(sessions)
        return Measurement(value=_number(len({p.device_id for p in used})), sessions=used)
    lengths = [_microseconds(s) for s in sessions]
    unit = spec.duration_unit.value
    if aggregation is Aggregation.SUM:
        return Measurement(value=_in_unit(sum(lengths), unit), sessions=_used(sessions))
    if not sessions:
        return Measurement(value=_number(0))
    if aggregation is Aggregation.MAX:
        longest = max(lengths)
        holders = [s for s, n in zip(sessions, lengths, strict=True) if n == longest]
        return Measurement(value=_in_unit(longest, unit), sessions=_used(holders))
    last = max(sessions, key=lambda s: (s.start, s.group or ""))  # latest: the last to start
    return Measurement(value=_in_unit(_microseconds(last), unit), sessions=_used([last]))


def _used(sessions: Iterable[CombinedSession]) -> tuple[SessionPiece, ...]:
    """Every member piece the sessions used, once each, by (piece_start, session_id)."""
    unique = {piece for session in sessions for piece in session.pieces}
    return tuple(sorted(unique, key=lambda p: (p.piece_start, p.session_id, p.piece_end)))


def _microseconds(session: CombinedSession) -> int:
    delta = session.end - session.start
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _number(count: int) -> Decimal:
    return Decimal(count)


def _in_unit(microseconds: int, unit: str) -> Decimal:
    """Exact microseconds in the unit, 6 places half-up (as `cloud.rating.metrics` does)."""
    millionths = divide_half_up(microseconds * 10**_PLACES, _MICROSECONDS[unit])
    return Decimal(millionths).scaleb(-_PLACES, context=EXACT)
