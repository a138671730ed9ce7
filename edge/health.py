"""Per-device health, as the logs and the diagnostics page report it."""

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from edge.readings import Reading


@dataclass
class DeviceHealth:
    """State, last success, consecutive failures and error counts of one device."""

    device_id: str
    driver: str
    address: str
    state: str = "starting"
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    consecutive_failures: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    protocol: Counter[str] = field(default_factory=Counter)
    last_values: dict[str, int | bool | Decimal | str] = field(default_factory=dict)
    bad_readings: int = 0
    last_bad_reading: str | None = None
    last_bad_reading_at: datetime | None = None

    def record_success(self, readings: list[Reading]) -> None:
        """A poll answered."""
        self.state = "ok"
        self.last_success = datetime.now(UTC)
        self.consecutive_failures = 0
        self.last_values.update({reading.point: reading.value for reading in readings})

    def record_failure(self, error: Exception) -> None:
        """A connect or poll failed."""
        self.state = "failing"
        self.last_error = f"{type(error).__name__}: {error}"
        self.last_error_at = datetime.now(UTC)
        self.consecutive_failures += 1
        self.errors[type(error).__name__] += 1

    def record_bad_reading(self, error: Exception) -> bool:
        """A reading the normalizer refused; True when its message differs from the last one
        (worth a log line: the same refusal on every poll is counted, not logged again)."""
        message = str(error)
        new = message != self.last_bad_reading
        self.bad_readings += 1
        self.last_bad_reading = message
        self.last_bad_reading_at = datetime.now(UTC)
        self.errors["bad_reading"] += 1
        return new

    def count(self, what: str) -> None:
        """Count a protocol-level event: bad checksum, unknown command, CRC error, timeout..."""
        self.protocol[what] += 1

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "device_id": self.device_id,
            "driver": self.driver,
            "address": self.address,
            "state": self.state,
            "last_success": self.last_success.isoformat() if self.last_success else None,
            "last_error": self.last_error,
            "consecutive_failures": self.consecutive_failures,
            "bad_readings": self.bad_readings,
            "last_bad_reading": self.last_bad_reading,
            "last_bad_reading_at": (
                self.last_bad_reading_at.isoformat() if self.last_bad_reading_at else None
            ),
            "errors": dict(self.errors),
            "protocol": dict(self.protocol),
            "last_values": {
                name: str(value) if isinstance(value, Decimal) else value
                for name, value in self.last_values.items()
            },
        }
