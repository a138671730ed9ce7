"""Reading: one decoded value as a driver saw it, before the normalizer turns it into an event."""

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Reading:
    """The value of one point of one device, observed by the gateway at `observed_at` (UTC)."""

    device_id: str
    point: str
    value: int
    observed_at: datetime

    def __post_init__(self) -> None:
        # A naive or local time here would shift every event built from it.
        if self.observed_at.utcoffset() != timedelta(0):
            raise ValueError(f"observed_at must be a UTC-aware datetime, got {self.observed_at!r}")
