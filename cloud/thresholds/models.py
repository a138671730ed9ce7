"""Usage thresholds per account, and their firings (one per threshold and billing period)."""

import enum
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, DecimalText, SurrogateKey, UtcDateTime


class Measure(enum.StrEnum):
    """What a threshold compares: a metric's units, or an amount in the account's currency."""

    UNITS = "units"
    AMOUNT = "amount"


class UsageThreshold(Base):
    """Fires `usage.threshold_reached` once per period when usage so far reaches `value`.

    `metric_id` NULL: the amount of all the account's usage so far (measure is then `amount`).
    """

    __tablename__ = "usage_thresholds"
    __table_args__ = (Index(None, "account_id"),)

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    metric_id: Mapped[str | None] = mapped_column(ForeignKey("metrics.id"))
    measure: Mapped[str] = mapped_column(String(16))  # units | amount
    value: Mapped[Decimal] = mapped_column(DecimalText)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    enabled: Mapped[bool] = mapped_column(Boolean)


class ThresholdFiring(Base):
    """A threshold reached in one period: the primary key lets it fire once per period."""

    __tablename__ = "threshold_firings"

    threshold_id: Mapped[int] = mapped_column(
        ForeignKey("usage_thresholds.id"), primary_key=True, autoincrement=False
    )
    period_start: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM, in the account's time zone
    fired_at: Mapped[datetime] = mapped_column(UtcDateTime)
    observed: Mapped[Decimal] = mapped_column(DecimalText)
