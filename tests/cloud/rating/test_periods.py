"""Billing periods: calendar months in a time zone as UTC intervals, known answers by hand."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from cloud.errors import InvalidBillingInput
from cloud.rating.periods import (
    Period,
    check_time_zone,
    day_buckets,
    month_period,
    next_period,
    period_of,
)


def utc(*parts: int) -> datetime:
    """A UTC time."""
    return datetime(*parts, tzinfo=UTC)  # type: ignore[arg-type, misc]


def hours(period: Period) -> float:
    """The period's length in hours."""
    return (period.end - period.start) / timedelta(hours=1)


@pytest.mark.parametrize(
    ("label", "zone", "start", "end", "length"),
    [
        # Berlin, DST starts Sun 2026-03-29 02:00 CET -> 03:00 CEST: 31 x 24 - 1 = 743 h.
        # 2026-03-01 00:00 CET (+01) = 02-28 23:00 UTC; 2026-04-01 00:00 CEST (+02) = 03-31 22:00.
        ("2026-03", "Europe/Berlin", utc(2026, 2, 28, 23), utc(2026, 3, 31, 22), 743),
        # Berlin, DST ends Sun 2026-10-25 03:00 CEST -> 02:00 CET: 31 x 24 + 1 = 745 h.
        ("2026-10", "Europe/Berlin", utc(2026, 9, 30, 22), utc(2026, 10, 31, 23), 745),
        # Berlin November: CET all month, 30 x 24 = 720 h.
        ("2026-11", "Europe/Berlin", utc(2026, 10, 31, 23), utc(2026, 11, 30, 23), 720),
        # New York, DST starts Sun 2026-03-08: 03-01 00:00 EST (-05) = 05:00 UTC,
        # 04-01 00:00 EDT (-04) = 04:00 UTC: 743 h.
        ("2026-03", "America/New_York", utc(2026, 3, 1, 5), utc(2026, 4, 1, 4), 743),
        # New York, DST ends Sun 2026-11-01 02:00 EDT: 11-01 00:00 EDT = 04:00 UTC (still
        # summer time at midnight), 12-01 00:00 EST = 05:00 UTC: 30 x 24 + 1 = 721 h.
        ("2026-11", "America/New_York", utc(2026, 11, 1, 4), utc(2026, 12, 1, 5), 721),
        # Year end in Berlin: 12-01 00:00 CET = 11-30 23:00 UTC, 2027-01-01 00:00 CET.
        ("2026-12", "Europe/Berlin", utc(2026, 11, 30, 23), utc(2026, 12, 31, 23), 744),
        # February in UTC: 28 x 24 = 672 h.
        ("2026-02", "UTC", utc(2026, 2, 1), utc(2026, 3, 1), 672),
    ],
)
def test_month_period_known_bounds(
    label: str, zone: str, start: datetime, end: datetime, length: int
) -> None:
    period = month_period(label, zone)
    assert period == Period(label=label, time_zone=zone, start=start, end=end)
    assert hours(period) == length
    assert period.start.tzinfo is UTC and period.end.tzinfo is UTC


def test_next_period_crosses_the_year_end() -> None:
    december = month_period("2026-12", "Europe/Berlin")
    january = next_period(december)
    assert january == Period(
        "2027-01", "Europe/Berlin", utc(2026, 12, 31, 23), utc(2027, 1, 31, 23)
    )
    assert january.start == december.end  # periods tile time without gap or overlap


def test_next_period_keeps_tiling_through_dst() -> None:
    period = month_period("2026-01", "America/New_York")
    for _ in range(12):
        following = next_period(period)
        assert following.start == period.end
        period = following
    assert period.label == "2027-01"


@pytest.mark.parametrize(
    ("at", "zone", "label"),
    [
        (utc(2026, 10, 31, 23, 30), "Europe/Berlin", "2026-11"),  # 11-01 00:30 CET
        (utc(2026, 10, 31, 22, 59), "Europe/Berlin", "2026-10"),  # 10-31 23:59 CET
        (utc(2026, 11, 1, 3, 59), "America/New_York", "2026-10"),  # 10-31 23:59 EDT
        (utc(2026, 11, 1, 4, 0), "America/New_York", "2026-11"),  # 11-01 00:00 EDT
        (utc(2026, 12, 31, 23, 0), "Europe/Berlin", "2027-01"),  # 2027-01-01 00:00 CET
    ],
)
def test_period_of_an_instant(at: datetime, zone: str, label: str) -> None:
    period = period_of(at, zone)
    assert period == month_period(label, zone)
    assert period.start <= at < period.end


def test_period_of_refuses_a_naive_time() -> None:
    with pytest.raises(InvalidBillingInput, match="naive"):
        period_of(datetime(2026, 11, 1), "Europe/Berlin")


@pytest.mark.parametrize(
    "label",
    ["2026-13", "2026-00", "2026-1", "26-11", "2026/11", "", " 2026-11", "2026-11-01", "1969-12"],
)
def test_bad_labels_are_refused(label: str) -> None:
    with pytest.raises(InvalidBillingInput, match="period") as caught:
        month_period(label, "UTC")
    assert caught.value.detail == {"period": label}


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus_Mons", "", "europe/berlin", "Europe/Berlin ", "../etc/passwd", "+01:00"]
)
def test_unknown_time_zones_are_refused(zone: str) -> None:
    with pytest.raises(InvalidBillingInput, match="unknown time zone"):
        check_time_zone(zone)
    with pytest.raises(InvalidBillingInput, match="unknown time zone"):
        month_period("2026-11", zone)


def test_known_time_zones_pass_unchanged() -> None:
    assert check_time_zone("Europe/Berlin") == "Europe/Berlin"
    assert check_time_zone("UTC") == "UTC"


def test_day_buckets_across_the_spring_dst_day_in_berlin() -> None:
    # Local days 03-28 (24 h), 03-29 (23 h: 02:00 -> 03:00), 03-30 (24 h).
    buckets = day_buckets(utc(2026, 3, 27, 23), utc(2026, 3, 30, 22), "Europe/Berlin")
    assert buckets == [
        (utc(2026, 3, 27, 23), utc(2026, 3, 28, 23)),
        (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22)),
        (utc(2026, 3, 29, 22), utc(2026, 3, 30, 22)),
    ]
    assert [(b - a) / timedelta(hours=1) for a, b in buckets] == [24, 23, 24]


def test_day_buckets_autumn_day_is_25_hours_and_edges_are_clipped() -> None:
    # 10-25 local: 10-24 22:00 UTC (CEST) to 10-25 23:00 UTC (CET) = 25 h. The range starts
    # at 10-24 12:00 UTC (14:00 local) and ends 10-26 05:00 UTC (06:00 local): both clipped.
    buckets = day_buckets(utc(2026, 10, 24, 12), utc(2026, 10, 26, 5), "Europe/Berlin")
    assert buckets == [
        (utc(2026, 10, 24, 12), utc(2026, 10, 24, 22)),
        (utc(2026, 10, 24, 22), utc(2026, 10, 25, 23)),
        (utc(2026, 10, 25, 23), utc(2026, 10, 26, 5)),
    ]


def test_day_buckets_of_a_whole_period_cover_it() -> None:
    period = month_period("2026-11", "America/New_York")
    buckets = day_buckets(period.start, period.end, period.time_zone)
    assert len(buckets) == 30
    assert buckets[0][0] == period.start and buckets[-1][1] == period.end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(buckets))
    assert (buckets[0][1] - buckets[0][0]) == timedelta(hours=25)  # 11-01: DST ends


def test_day_buckets_empty_range() -> None:
    assert day_buckets(utc(2026, 11, 2), utc(2026, 11, 2), "UTC") == []
    assert day_buckets(utc(2026, 11, 3), utc(2026, 11, 2), "UTC") == []
