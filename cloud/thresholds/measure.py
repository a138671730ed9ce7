"""What a threshold compares, read off the lines an invoice draft would have right now (pure).

The lines are those of `cloud.invoices.lines.rate_account` over the whole current period with the
usage stored so far, so a threshold sees exactly the quantities and amounts the draft will show.
Only usage lines count, as with progressive billing thresholds (Lago): a base fee or a minimum is
owed from the first day and would cross any threshold below it at once.

- units of metric M: the sum of the quantities of M's usage lines (one per plan version part;
  a plan charges a metric at most once per version);
- amount of metric M: the sum of those lines' amounts;
- amount with no metric: the sum of the amounts of every usage line.

A threshold is reached when the observed value is at least its value.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from cloud.domain import LineKind, RatedLine
from cloud.rating.money import add_amounts
from cloud.thresholds.models import Measure

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class ThresholdSpec:
    """A threshold as the check reads it."""

    id: int
    account_id: str
    metric_id: str | None
    measure: Measure
    value: Decimal


@dataclass(frozen=True, slots=True)
class Crossing:
    """A threshold reached: what was observed."""

    threshold: ThresholdSpec
    observed: Decimal


def observed(lines: Iterable[RatedLine], *, metric_id: str | None, measure: Measure) -> Decimal:
    """The value a threshold of `metric_id` and `measure` compares with its own (exact)."""
    usage = [line for line in lines if line.kind == LineKind.USAGE]
    if metric_id is not None:
        usage = [line for line in usage if line.metric == metric_id]
    if measure == Measure.UNITS:
        if metric_id is None:
            raise ValueError("a units threshold needs a metric")
        return add_amounts(line.quantity or ZERO for line in usage)  # exact, like amounts
    return add_amounts(line.amount for line in usage)


def crossings(thresholds: Sequence[ThresholdSpec], lines: Sequence[RatedLine]) -> list[Crossing]:
    """The thresholds (of one account) that `lines` reach, in the given order."""
    found = []
    for threshold in thresholds:
        value = observed(lines, metric_id=threshold.metric_id, measure=threshold.measure)
        if value >= threshold.value:
            found.append(Crossing(threshold, value))
    return found
