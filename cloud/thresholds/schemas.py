"""What the thresholds API accepts and answers (documented in /openapi.json)."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from cloud.catalog.checks import SLUG_PATTERN
from cloud.catalog.plan_terms import Positive
from cloud.storable_text import RequestBody
from cloud.thresholds.models import Measure, UsageThreshold
from cloud.thresholds.service import LastFiring


class ThresholdCreate(RequestBody):
    """A new threshold: `units` of a metric, or an `amount` (of a metric, or of all usage).

    The value is a decimal string or an integer (a float is refused: it is not exact), positive,
    at most 30 digits each side of the point. An amount is in the account's currency.
    """

    model_config = ConfigDict(extra="forbid")

    metric_id: Annotated[str, Field(pattern=SLUG_PATTERN, max_length=64)] | None = Field(
        default=None, description="a metric the account's plan charges; null: all usage (amount)"
    )
    measure: Measure
    value: Positive = Field(examples=["100", "25.00"])


class FiringOut(BaseModel):
    """The latest period a threshold fired in."""

    period: str
    fired_at: datetime
    observed: Decimal


class ThresholdOut(BaseModel):
    """A threshold, and when it last fired (null: never)."""

    id: int
    account_id: str
    metric_id: str | None
    measure: Measure
    value: Decimal
    enabled: bool
    created_at: datetime
    last_fired: FiringOut | None

    @classmethod
    def of(cls, row: UsageThreshold, last: LastFiring | None = None) -> "ThresholdOut":
        """The answer for a stored threshold."""
        fired = (
            None
            if last is None
            else FiringOut(period=last.period, fired_at=last.fired_at, observed=last.observed)
        )
        return cls(
            id=row.id,
            account_id=row.account_id,
            metric_id=row.metric_id,
            measure=Measure(row.measure),
            value=row.value,
            enabled=row.enabled,
            created_at=row.created_at,
            last_fired=fired,
        )
