"""Per-device health, as the logs and the diagnostics page report it."""

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from edge.readings import Reading

ROUTINE_COUNTS = frozenset({"ignored_frames", "retained", "duplicate", "unmatched", "resent"})
"""Protocol counts that are routine, not trouble: frames without usage, retained or redelivered
MQTT messages, printer lines the pattern skips, a command resent once (its 501 is counted)."""


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
    last_protocol_error: str | None = None
    last_protocol_error_at: datetime | None = None

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
        if what not in ROUTINE_COUNTS:
            self.last_protocol_error = what
            self.last_protocol_error_at = datetime.now(UTC)

    def last_trouble_at(self) -> datetime | None:
        """When a failure, a refused reading or a protocol error (not a routine count) was last
        counted; None when never."""
        stamps = [
            stamp
            for stamp in (self.last_error_at, self.last_bad_reading_at, self.last_protocol_error_at)
            if stamp is not None
        ]
        return max(stamps, default=None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "device_id": self.device_id,
            "driver": self.driver,
            "address": self.address,
            "state": self.state,
            "last_success": self.last_success.isoformat() if self.last_success else None,
            "last_error": self.last_error,
            "last_error_at": _iso(self.last_error_at),
            "last_protocol_error": self.last_protocol_error,
            "last_protocol_error_at": _iso(self.last_protocol_error_at),
            "consecutive_failures": self.consecutive_failures,
            "bad_readings": self.bad_readings,
            "last_bad_reading": self.last_bad_reading,
            "last_bad_reading_at": _iso(self.last_bad_reading_at),
            "errors": dict(self.errors),
            "protocol": dict(self.protocol),
            "last_values": {
                name: str(value) if isinstance(value, Decimal) else value
                for name, value in self.last_values.items()
            },
        }


def _iso(stamp: datetime | None) -> str | None:
    return stamp.isoformat() if stamp else None
