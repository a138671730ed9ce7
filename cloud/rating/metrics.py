"""Metrics: one number per account and interval, from session pieces or raw events.

The caller restricts the pieces and events to one account and one interval (pieces clipped to
it with `clip_piece`); `measure` filters them by the metric's profiles, names and unit and
aggregates. The result names exactly the items behind the number, in a fixed order (pieces by
(piece_start, session_id), events by their total order), so an invoice line can show its evidence.

Durations are summed as exact integer microseconds, converted once to the metric's unit and
rounded to 6 decimal places half-up, in integers (a microsecond of an hour is 2.8e-10 h, so six
places keep every second visible and the value short). Quantities are summed in the exact
context of `cloud.rating.arithmetic`: a sum is exact or it is `RatingOutOfBounds`, never rounded
to 28 digits (`1e17 + 1e-18` keeps its small part).

This runs once per charge per account and part, over every item, so it avoids per-item overhead:
filters are plain comprehensions, each input is sorted at most once.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from operator import attrgetter

from cloud.domain import (
    Aggregation,
    BillableEvent,
    DurationUnit,
    Measurement,
    MetricField,
    MetricSource,
    MetricSpec,
    SessionPiece,
)
from cloud.errors import InvalidBillingInput
from cloud.rating.arithmetic import EXACT, divide_half_up, exact
from cloud.rating.combine import CombinedRule, measure_combined

ZERO = Decimal(0)
_PLACES = 6
_MICROSECONDS = {
    DurationUnit.SECOND: 1_000_000,
    DurationUnit.MINUTE: 60_000_000,
    DurationUnit.HOUR: 3_600_000_000,
}
_PIECE_ORDER = attrgetter("piece_start", "session_id")
_EVENT_ORDER = attrgetter("occurred_at", "gateway_id", "seq")  # BillableEvent.order
_NEEDS_FIELD = frozenset({Aggregation.SUM, Aggregation.MAX, Aggregation.LATEST})


def check_metric(spec: MetricSpec) -> None:
    """Refuse a metric whose source, aggregation, field and unit do not fit together."""
    problem = _metric_problem(spec)
    if problem is not None:
        raise InvalidBillingInput(f"metric {spec.id!r}: {problem}", detail={"metric": spec.id})


def _metric_problem(spec: MetricSpec) -> str | None:
    if spec.aggregation in _NEEDS_FIELD and spec.field is None:
        return f"{spec.aggregation} needs a field (duration or quantity)"
    if spec.aggregation not in _NEEDS_FIELD and spec.field is not None:
        return f"{spec.aggregation} takes no field"
    if spec.field is MetricField.DURATION and spec.source is not MetricSource.SESSIONS:
        return "duration is a field of sessions only"
    if spec.field is MetricField.QUANTITY and spec.source is not MetricSource.EVENTS:
        return "quantity is a field of events only"
    if spec.unit is not None and spec.source is not MetricSource.EVENTS:
        return "a unit filter applies to events only"
    return None


def measure(
    spec: MetricSpec,
    *,
    pieces: Sequence[SessionPiece],
    events: Sequence[BillableEvent],
    profile_of: Mapping[str, str],
    combined: Mapping[str, CombinedRule] | None = None,
    site_of: Mapping[str, str | None] | None = None,
) -> Measurement:
    """The metric's value over the given pieces or events, with the items that made it.

    A session metric whose `profiles` name a combined rule (`combined`: rule id -> rule)
    measures that rule's combined sessions (`cloud.rating.combine`; `site_of`: device -> site).
    """
    check_metric(spec)
    with exact({"metric": spec.id}):
        rule = _combined_rule(spec, combined or {})
        if rule is not None:
            return measure_combined(spec, rule, pieces, site_of or {})
        if spec.source is MetricSource.SESSIONS:
            return _measure_pieces(spec, _matching_pieces(spec, pieces))
        return _measure_events(spec, _matching_events(spec, events, profile_of))


def _combined_rule(spec: MetricSpec, combined: Mapping[str, CombinedRule]) -> CombinedRule | None:
    """The combined rule a session metric measures, if its `profiles` name one (only one)."""
    if spec.source is not MetricSource.SESSIONS or not combined:
        return None
    named = sorted(spec.profiles & combined.keys())
    if not named:
        return None
    if len(spec.profiles) > 1:
        raise InvalidBillingInput(
            f"metric {spec.id!r}: a combined rule ({named[0]}) must be its only profile",
            detail={"metric": spec.id, "profiles": sorted(spec.profiles)},
        )
    return combined[named[0]]


def clip_piece(piece: SessionPiece, start: datetime, end: datetime) -> SessionPiece | None:
    """The part of the piece inside [start, end), or None.

    A zero-length piece belongs to the interval holding its start. `is_start` stays true only
    if it was and the session's `started_at` lies inside [start, end).
    """
    if piece.piece_start == piece.piece_end:
        if not start <= piece.piece_start < end:
            return None
        clipped_start, clipped_end = piece.piece_start, piece.piece_end
    else:
        clipped_start, clipped_end = max(piece.piece_start, start), min(piece.piece_end, end)
        if clipped_start >= clipped_end:
            return None
    is_start = piece.is_start and start <= piece.started_at < end
    if (clipped_start, clipped_end, is_start) == (
        piece.piece_start,
        piece.piece_end,
        piece.is_start,
    ):
        return piece
    return SessionPiece(
        session_id=piece.session_id,
        device_id=piece.device_id,
        channel=piece.channel,
        name=piece.name,
        profile=piece.profile,
        started_at=piece.started_at,
        ended_at=piece.ended_at,
        close_reason=piece.close_reason,
        piece_start=clipped_start,
        piece_end=clipped_end,
        is_start=is_start,
    )


def duration_value(duration: timedelta, unit: DurationUnit) -> Decimal:
    """A duration in the unit, exact to the microsecond, then 6 places half-up."""
    with exact():
        return _in_unit(_microseconds(duration), unit)


def _microseconds(duration: timedelta) -> int:
    return (duration.days * 86_400 + duration.seconds) * 1_000_000 + duration.microseconds


def _in_unit(microseconds: int, unit: DurationUnit) -> Decimal:
    millionths = divide_half_up(microseconds * 10**_PLACES, _MICROSECONDS[unit])
    return Decimal(millionths).scaleb(-_PLACES, context=EXACT)


# --- sessions ---------------------------------------------------------------------------------


def _matching_pieces(spec: MetricSpec, pieces: Sequence[SessionPiece]) -> list[SessionPiece]:
    profiles, names = spec.profiles, spec.names
    matched = [
        piece
        for piece in pieces
        if (not profiles or piece.profile in profiles) and (not names or piece.name in names)
    ]
    matched.sort(key=_PIECE_ORDER)
    return matched


def _measure_pieces(spec: MetricSpec, pieces: list[SessionPiece]) -> Measurement:
    aggregation = spec.aggregation
    if aggregation is Aggregation.COUNT:
        started = tuple(piece for piece in pieces if piece.is_start)
        return Measurement(value=Decimal(len(started)), sessions=started)
    if aggregation is Aggregation.UNIQUE_COUNT:
        devices = {piece.device_id for piece in pieces}
        return Measurement(value=Decimal(len(devices)), sessions=tuple(pieces))
    lengths = [_microseconds(piece.piece_end - piece.piece_start) for piece in pieces]
    if aggregation is Aggregation.SUM:
        return Measurement(value=_in_unit(sum(lengths), spec.duration_unit), sessions=tuple(pieces))
    if not pieces:
        return Measurement(value=ZERO)
    if aggregation is Aggregation.MAX:
        longest = max(lengths)
        holders = tuple(p for p, n in zip(pieces, lengths, strict=True) if n == longest)
        return Measurement(value=_in_unit(longest, spec.duration_unit), sessions=holders)
    return Measurement(value=_in_unit(lengths[-1], spec.duration_unit), sessions=(pieces[-1],))


# --- events -----------------------------------------------------------------------------------


def _matching_events(
    spec: MetricSpec, events: Sequence[BillableEvent], profile_of: Mapping[str, str]
) -> list[BillableEvent]:
    profiles, names, unit = spec.profiles, spec.names, spec.unit
    needs_quantity = spec.field is MetricField.QUANTITY
    matched = [
        event
        for event in events
        if (not profiles or profile_of.get(event.device_id) in profiles)
        and (not names or event.name in names)
        and (unit is None or event.unit == unit)
        and (not needs_quantity or event.quantity is not None)
        # A status report confirms a state the panel already had: it is not usage.
        and event.report is None
    ]
    matched.sort(key=_EVENT_ORDER)
    return matched


def _measure_events(spec: MetricSpec, events: list[BillableEvent]) -> Measurement:
    aggregation = spec.aggregation
    keys = tuple((event.gateway_id, event.seq) for event in events)
    if aggregation is Aggregation.COUNT:
        return Measurement(value=Decimal(len(events)), events=keys)
    if aggregation is Aggregation.UNIQUE_COUNT:
        devices = {event.device_id for event in events}
        return Measurement(value=Decimal(len(devices)), events=keys)
    quantities = [event.quantity or ZERO for event in events]  # all non-None: filtered
    if aggregation is Aggregation.SUM:
        return Measurement(value=sum(quantities, ZERO), events=keys)
    if not events:
        return Measurement(value=ZERO)
    if aggregation is Aggregation.MAX:
        largest = max(quantities)
        holders = tuple(k for k, q in zip(keys, quantities, strict=True) if q == largest)
        return Measurement(value=largest, events=holders)
    return Measurement(value=quantities[-1], events=(keys[-1],))
