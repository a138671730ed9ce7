"""A metric measured per time bucket over one month's usage: the points of a chart.

Analytics' usage series and an invoice page's daily charts both draw these, so they live below
both. Every bucket is measured with `measure` over the events inside it and the session pieces
clipped to it: exactly what billing would count for that interval.
"""

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from cloud.domain import MetricSpec
from cloud.rating.metrics import clip_piece, measure
from cloud.rating.rating import AccountUsage

Bucket = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class UsagePoint:
    """One bucket [start, end) in UTC and the metric's value in it."""

    start: datetime
    end: datetime
    value: Decimal


def measure_buckets(
    spec: MetricSpec, usage: AccountUsage, buckets: Sequence[Bucket]
) -> list[UsagePoint]:
    """The metric in each bucket: events by `occurred_at`, pieces clipped to the bucket."""
    times = [event.occurred_at for event in usage.events]  # in the total order: sorted by time
    points = []
    for lower, upper in buckets:
        events = usage.events[bisect.bisect_left(times, lower) : bisect.bisect_left(times, upper)]
        clipped = (clip_piece(piece, lower, upper) for piece in usage.pieces)
        pieces = [piece for piece in clipped if piece is not None]
        value = measure(
            spec,
            pieces=pieces,
            events=events,
            profile_of=usage.profile_of,
            combined=usage.combined,
            site_of=usage.site_of,
        ).value
        points.append(UsagePoint(lower, upper, value))
    return points
