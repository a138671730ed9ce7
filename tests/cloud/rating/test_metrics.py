"""Metrics over session pieces and events: every aggregation, the filters, the evidence."""

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cloud.domain import (
    Aggregation,
    BillableEvent,
    CloseReason,
    DurationUnit,
    MetricField,
    MetricSource,
    MetricSpec,
    SessionPiece,
)
from cloud.errors import InvalidBillingInput
from cloud.rating.metrics import check_metric, clip_piece, duration_value, measure

D = Decimal
DAY = datetime(2026, 11, 1, tzinfo=UTC)


def at(hours: float) -> datetime:
    return DAY + timedelta(hours=hours)


def piece(
    session_id: int,
    device: str,
    profile: str,
    name: str,
    start: float,
    end: float,
    *,
    is_start: bool = True,
) -> SessionPiece:
    return SessionPiece(
        session_id=session_id,
        device_id=device,
        channel=None,
        name=name,
        profile=profile,
        started_at=at(start) if is_start else at(start) - timedelta(days=1),
        ended_at=at(end),
        close_reason=CloseReason.DEACTIVATED,
        piece_start=at(start),
        piece_end=at(end),
        is_start=is_start,
    )


def event(
    gateway: str,
    seq: int,
    device: str,
    name: str,
    hour: float,
    quantity: str | None = None,
    unit: str | None = None,
) -> BillableEvent:
    return BillableEvent(
        gateway_id=gateway,
        seq=seq,
        device_id=device,
        channel=None,
        name=name,
        kind="reading" if quantity is not None else "state",
        quantity=None if quantity is None else D(quantity),
        unit=unit,
        occurred_at=at(hour),
    )


P1 = piece(1, "cam1", "camera", "stream_start", 10, 12.5)  # 2.5 h
P2 = piece(2, "cam2", "camera", "stream_start", 0, 1, is_start=False)  # 1 h, began last month
P3 = piece(3, "lock1", "lock", "unlock", 5, 5 + 1 / 3)  # 20 min
P4 = piece(4, "cam1", "camera", "record", 14, 16.5)  # 2.5 h
PIECES = [P4, P1, P3, P2]  # not in order on purpose

E1 = event("g1", 1, "m1", "energy", 1, "1.5", "kWh")
E2 = event("g1", 2, "m1", "energy", 2, "2.25", "kWh")
E3 = event("g1", 3, "m2", "energy", 3, "2.25", "Wh")  # another unit
E4 = event("g2", 1, "cam1", "motion", 1)  # no quantity
E5 = event("g1", 5, "m3", "energy", 4, "0.75", "kWh")  # m3 has no profile
E6 = event("g1", 4, "m2", "energy", 2, "3", "kWh")  # same instant as E2, later seq
EVENTS = [E6, E5, E4, E3, E2, E1]
PROFILE_OF = {"m1": "meter", "m2": "meter", "cam1": "camera", "cam2": "camera"}


_VALUED = (Aggregation.SUM, Aggregation.MAX, Aggregation.LATEST)


def sessions_metric(
    aggregation: Aggregation,
    *,
    profiles: frozenset[str] = frozenset(),
    names: frozenset[str] = frozenset(),
    duration_unit: DurationUnit = DurationUnit.HOUR,
) -> MetricSpec:
    return MetricSpec(
        id="m",
        source=MetricSource.SESSIONS,
        aggregation=aggregation,
        field=MetricField.DURATION if aggregation in _VALUED else None,
        profiles=profiles,
        names=names,
        duration_unit=duration_unit,
    )


def events_metric(
    aggregation: Aggregation,
    *,
    profiles: frozenset[str] = frozenset(),
    names: frozenset[str] = frozenset(),
    unit: str | None = None,
) -> MetricSpec:
    return MetricSpec(
        id="m",
        source=MetricSource.EVENTS,
        aggregation=aggregation,
        field=MetricField.QUANTITY if aggregation in _VALUED else None,
        profiles=profiles,
        names=names,
        unit=unit,
    )


def over_pieces(spec: MetricSpec) -> tuple[Decimal, list[int]]:
    measured = measure(spec, pieces=PIECES, events=EVENTS, profile_of=PROFILE_OF)
    assert measured.events == ()
    return measured.value, [p.session_id for p in measured.sessions]


def over_events(spec: MetricSpec) -> tuple[Decimal, list[tuple[str, int]]]:
    measured = measure(spec, pieces=PIECES, events=EVENTS, profile_of=PROFILE_OF)
    assert measured.sessions == ()
    return measured.value, list(measured.events)


# --- sessions ---------------------------------------------------------------------------------


def test_session_count_counts_starts_only() -> None:
    # P2 began last month (is_start false): 3 starts, ordered by piece_start 05:00, 10:00, 14:00
    assert over_pieces(sessions_metric(Aggregation.COUNT)) == (D(3), [3, 1, 4])


def test_session_count_filters_by_profile_and_name() -> None:
    camera = sessions_metric(Aggregation.COUNT, profiles=frozenset({"camera"}))
    assert over_pieces(camera) == (D(2), [1, 4])
    streams = sessions_metric(Aggregation.COUNT, names=frozenset({"stream_start"}))
    assert over_pieces(streams) == (D(1), [1])
    both = sessions_metric(
        Aggregation.COUNT, profiles=frozenset({"lock"}), names=frozenset({"stream_start"})
    )
    assert over_pieces(both) == (D(0), [])


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        # 2.5 h + 1 h + 20 min + 2.5 h = 6 h 20 min
        (DurationUnit.HOUR, "6.333333"),  # 6.3333... half-up at 6 places
        (DurationUnit.MINUTE, "380"),
        (DurationUnit.SECOND, "22800"),
    ],
)
def test_session_duration_sum(unit: DurationUnit, expected: str) -> None:
    spec = sessions_metric(Aggregation.SUM, duration_unit=unit)
    assert over_pieces(spec) == (D(expected), [2, 3, 1, 4])


def test_session_duration_max_names_every_holder() -> None:
    camera = sessions_metric(Aggregation.MAX, profiles=frozenset({"camera"}))
    assert over_pieces(camera) == (D("2.5"), [1, 4])  # P1 and P4 both last 2.5 h
    lock = sessions_metric(Aggregation.MAX, profiles=frozenset({"lock"}))
    assert over_pieces(lock) == (D("0.333333"), [3])


def test_session_unique_devices() -> None:
    # cam1 (P1, P4) and cam2 (P2): 2 devices; the evidence is every matching piece
    spec = sessions_metric(Aggregation.UNIQUE_COUNT, profiles=frozenset({"camera"}))
    assert over_pieces(spec) == (D(2), [2, 1, 4])


def test_session_latest_is_the_last_piece() -> None:
    assert over_pieces(sessions_metric(Aggregation.LATEST)) == (D("2.5"), [4])
    lock = sessions_metric(Aggregation.LATEST, duration_unit=DurationUnit.MINUTE,
                           profiles=frozenset({"lock"}))  # fmt: skip
    assert over_pieces(lock) == (D(20), [3])


@pytest.mark.parametrize("aggregation", list(Aggregation))
def test_no_matching_sessions_measure_zero(aggregation: Aggregation) -> None:
    spec = sessions_metric(aggregation, profiles=frozenset({"nothing"}))
    assert over_pieces(spec) == (D(0), [])


def test_duration_quantized_half_up_to_six_places() -> None:
    # 1800 us = 0.0000005 h exactly: half-up gives 0.000001 (half-even would give 0)
    assert duration_value(timedelta(microseconds=1800), DurationUnit.HOUR) == D("0.000001")
    assert duration_value(timedelta(microseconds=1799), DurationUnit.HOUR) == D("0.000000")
    assert duration_value(timedelta(seconds=1), DurationUnit.HOUR) == D("0.000278")  # 1/3600
    assert duration_value(timedelta(days=2), DurationUnit.MINUTE) == D(2880)


# --- events -----------------------------------------------------------------------------------


def test_event_count_and_name_filter() -> None:
    everything = events_metric(Aggregation.COUNT)
    value, keys = over_events(everything)
    # in (occurred_at, gateway_id, seq) order: 01:00 g1/1, 01:00 g2/1, 02:00 g1/2, 02:00 g1/4 ...
    assert (value, keys) == (D(6), [("g1", 1), ("g2", 1), ("g1", 2), ("g1", 4), ("g1", 3),
                                     ("g1", 5)])  # fmt: skip
    motion = events_metric(Aggregation.COUNT, names=frozenset({"motion"}))
    assert over_events(motion) == (D(1), [("g2", 1)])  # counted without a quantity


def test_event_quantity_sum_filters_unit_and_profile() -> None:
    kwh = events_metric(Aggregation.SUM, unit="kWh")
    # 1.5 + 2.25 + 3 + 0.75 = 7.50 (E3 is in Wh, E4 has no quantity)
    assert over_events(kwh) == (D("7.50"), [("g1", 1), ("g1", 2), ("g1", 4), ("g1", 5)])
    meters = events_metric(Aggregation.SUM, unit="kWh", profiles=frozenset({"meter"}))
    # m3 has no profile, so E5 matches only when no profile is asked: 1.5 + 2.25 + 3 = 6.75
    assert over_events(meters) == (D("6.75"), [("g1", 1), ("g1", 2), ("g1", 4)])
    motion = events_metric(Aggregation.SUM, names=frozenset({"motion"}))
    assert over_events(motion) == (D(0), [])  # events without quantity do not match


def test_event_quantity_max_names_every_holder() -> None:
    assert over_events(events_metric(Aggregation.MAX, unit="kWh")) == (D(3), [("g1", 4)])
    tie = [E2, event("g9", 1, "m1", "energy", 5, "2.250", "kWh"), E1]
    measured = measure(events_metric(Aggregation.MAX), pieces=[], events=tie, profile_of={})
    assert measured.value == D("2.25")
    assert measured.events == (("g1", 2), ("g9", 1))


def test_event_unique_devices() -> None:
    energy = events_metric(Aggregation.UNIQUE_COUNT, names=frozenset({"energy"}))
    assert over_events(energy)[0] == D(3)  # m1, m2, m3
    meters = events_metric(Aggregation.UNIQUE_COUNT, profiles=frozenset({"meter"}))
    assert over_events(meters) == (D(2), [("g1", 1), ("g1", 2), ("g1", 4), ("g1", 3)])


def test_event_latest_by_total_order_not_arrival() -> None:
    # E2 and E6 share 02:00: the order breaks the tie by (gateway_id, seq), so E6 is later
    meters = events_metric(Aggregation.LATEST, unit="kWh", profiles=frozenset({"meter"}))
    assert over_events(meters) == (D(3), [("g1", 4)])
    assert over_events(events_metric(Aggregation.LATEST, unit="kWh")) == (D("0.75"), [("g1", 5)])


@pytest.mark.parametrize("aggregation", list(Aggregation))
def test_no_matching_events_measure_zero(aggregation: Aggregation) -> None:
    assert over_events(events_metric(aggregation, unit="litre")) == (D(0), [])


def test_arrival_order_does_not_change_a_measurement() -> None:
    shuffled_events, shuffled_pieces = list(EVENTS), list(PIECES)
    rng = random.Random(7)
    for spec in [events_metric(a) for a in Aggregation] + [sessions_metric(a) for a in Aggregation]:
        expected = measure(spec, pieces=PIECES, events=EVENTS, profile_of=PROFILE_OF)
        for _ in range(5):
            rng.shuffle(shuffled_events)
            rng.shuffle(shuffled_pieces)
            got = measure(spec, pieces=shuffled_pieces, events=shuffled_events,
                          profile_of=PROFILE_OF)  # fmt: skip
            assert got == expected


# --- bad metric specs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (MetricSpec("m", MetricSource.EVENTS, Aggregation.SUM), "sum needs a field"),
        (MetricSpec("m", MetricSource.SESSIONS, Aggregation.MAX), "max needs a field"),
        (MetricSpec("m", MetricSource.EVENTS, Aggregation.LATEST), "latest needs a field"),
        (MetricSpec("m", MetricSource.EVENTS, Aggregation.COUNT, MetricField.QUANTITY),
         "count takes no field"),
        (MetricSpec("m", MetricSource.SESSIONS, Aggregation.UNIQUE_COUNT, MetricField.DURATION),
         "unique_count takes no field"),
        (MetricSpec("m", MetricSource.EVENTS, Aggregation.SUM, MetricField.DURATION),
         "duration is a field of sessions only"),
        (MetricSpec("m", MetricSource.SESSIONS, Aggregation.SUM, MetricField.QUANTITY),
         "quantity is a field of events only"),
        (MetricSpec("m", MetricSource.SESSIONS, Aggregation.COUNT, unit="kWh"),
         "a unit filter applies to events only"),
    ],
)  # fmt: skip
def test_bad_metric_spec_is_refused(spec: MetricSpec, message: str) -> None:
    with pytest.raises(InvalidBillingInput, match=message) as caught:
        check_metric(spec)
    assert caught.value.detail == {"metric": "m"}
    with pytest.raises(InvalidBillingInput, match=message):
        measure(spec, pieces=PIECES, events=EVENTS, profile_of=PROFILE_OF)


# --- clip_piece -------------------------------------------------------------------------------

TEN_TO_NOON = piece(9, "cam1", "camera", "stream_start", 10, 12)


def test_clip_inside_returns_the_piece_itself() -> None:
    assert clip_piece(TEN_TO_NOON, at(0), at(24)) is TEN_TO_NOON
    assert clip_piece(TEN_TO_NOON, at(10), at(12)) is TEN_TO_NOON  # exactly its bounds


def test_clip_keeps_the_start_in_the_first_part_only() -> None:
    first = clip_piece(TEN_TO_NOON, at(9), at(11))
    second = clip_piece(TEN_TO_NOON, at(11), at(13))
    assert first is not None and second is not None
    assert (first.piece_start, first.piece_end, first.is_start) == (at(10), at(11), True)
    assert (second.piece_start, second.piece_end, second.is_start) == (at(11), at(12), False)
    assert second.session_id == 9 and second.started_at == at(10)


@pytest.mark.parametrize(("start", "end"), [(8, 10), (12, 13), (0, 5), (13, 14)])
def test_clip_outside_or_touching_is_none(start: float, end: float) -> None:
    assert clip_piece(TEN_TO_NOON, at(start), at(end)) is None


def test_zero_length_piece_belongs_to_the_interval_holding_its_start() -> None:
    instant = piece(5, "lock1", "lock", "unlock", 12, 12)
    assert clip_piece(instant, at(11), at(12)) is None
    assert clip_piece(instant, at(12), at(13)) is instant
    assert clip_piece(instant, at(11), at(13)) is instant


def test_clip_never_makes_a_start() -> None:
    continued = piece(6, "cam2", "camera", "stream_start", 0, 3, is_start=False)
    clipped = clip_piece(continued, at(1), at(2))
    assert clipped is not None and clipped.is_start is False
    assert clipped.duration == timedelta(hours=1)


def test_status_reports_are_not_usage() -> None:
    armed = event("g3", 1, "panel", "armed", 1)
    report = BillableEvent(
        gateway_id="g3",
        seq=2,
        device_id="panel",
        channel=None,
        name="armed",
        kind="activation",
        quantity=None,
        unit=None,
        occurred_at=at(5),
        report="status",  # the panel's answer to a status request after a restart
    )
    spec = events_metric(Aggregation.COUNT, names=frozenset({"armed"}))

    measured = measure(spec, pieces=[], events=[armed, report], profile_of={})

    assert (measured.value, list(measured.events)) == (D(1), [("g3", 1)])
