"""Reading: one decoded value as a driver saw it, before the normalizer turns it into an event."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Reading:
    """The value of one point of one device, observed by the gateway at `observed_at` (UTC).

    `value` depends on the point's kind: a counter's unsigned integer, a state's raw value (bool
    for a bit, int for a register), a gauge's engineering value (`Decimal`, scaled). `raw` keeps
    what the registers decoded to before scaling, for `attrs`.
    """

    device_id: str
    point: str
    value: int | bool | Decimal
    observed_at: datetime
    raw: int | float | bool | None = None

    def __post_init__(self) -> None:
        # A naive or local time here would shift every event built from it.
        if self.observed_at.utcoffset() != timedelta(0):
            raise ValueError(f"observed_at must be a UTC-aware datetime, got {self.observed_at!r}")
