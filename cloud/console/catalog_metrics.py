"""How many events each metric matched in the last `WARN_DAYS` days, for the catalog page.

The read the metric warnings make (`metric_warnings.recent_pair_counts`: the events of the
metric's devices received since then, counted per (name, unit) pair), and the same
matcher (`metric_warnings.metric_matches_pair`) deciding which pairs count. For a session metric
the count is the events of its start names (the profile's rule makes sessions of them).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog.metric_warnings import WARN_DAYS, metric_matches_pair, recent_pair_counts
from cloud.catalog.metrics import list_metrics, metric_spec
from cloud.catalog.models import Metric


@dataclass(frozen=True, slots=True)
class MetricMatches:
    """A metric and the events it matched since `since`."""

    metric: Metric
    since: datetime
    matched: int
    pairs_read: int  # distinct (name, unit) pairs its devices sent; MAX_PAIRS at most


async def metric_matches(*, session: AsyncSession, now: datetime) -> list[MetricMatches]:
    """Every metric (id order) with the events it matched in the last `WARN_DAYS` days."""
    since = now - timedelta(days=WARN_DAYS)
    found = []
    for row in await list_metrics(session=session):
        spec = metric_spec(row)
        pairs = await recent_pair_counts(session, spec, since=since)
        matched = sum(count for name, unit, count in pairs if metric_matches_pair(spec, name, unit))
        found.append(MetricMatches(row, since, matched, len(pairs)))
    return found
