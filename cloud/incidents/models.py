"""The `incidents` table: one row per open (or closed) problem of a gateway or of one device.

An incident has a subject (kind, gateway, device or none) and a lifecycle: `open` ->
`acknowledged` -> `resolved` (or `open` -> `resolved`). While it is open or acknowledged, a new
occurrence of the same subject bumps it (`last_seen`, `count`, `evidence`) instead of adding a
row, so a gateway re-sending the same batch a thousand times leaves one incident counted 1000.
`gateway_id` has no foreign key: refusals of gateways that are gone are filed too.
"""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloud.choices import (
    IncidentState as IncidentState,  # defined there for the CLI's help (issue 18)
)
from cloud.db import Base, SurrogateKey, UtcDateTime


class IncidentKind(enum.StrEnum):
    """What went wrong (or was repeated)."""

    INVALID_SIGNATURE = "invalid_signature"
    CHAIN_BROKEN = "chain_broken"
    SEQ_CONFLICT = "seq_conflict"
    UNKNOWN_GATEWAY = "unknown_gateway"
    GATEWAY_REVOKED = "gateway_revoked"
    KEY_RETIRED = "key_retired"
    DUPLICATE_DELIVERY = "duplicate_delivery"
    MALFORMED_BATCH = "malformed_batch"
    LATE_ARRIVAL = "late_arrival"
    UNKNOWN_DEVICE = "unknown_device"
    REJECTED_EVENT = "rejected_event"
    SEQ_GAP = "seq_gap"
    CLOCK_SKEW = "clock_skew"
    COUNTER_RESET = "counter_reset"
    COUNTER_WRAP = "counter_wrap"
    SILENT_DEVICE = "silent_device"
    LOW_BATTERY = "low_battery"
    GATEWAY_OFFLINE = "gateway_offline"
    UNBOUND_USAGE = "unbound_usage"
    UNBILLED_USAGE = "unbilled_usage"


# The states a new occurrence of the same subject is folded into.
ACTIVE_STATES = (IncidentState.OPEN.value, IncidentState.ACKNOWLEDGED.value)


class Incident(Base):
    """One data-quality incident of a gateway, or of one device when `device_id` is set."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index(None, "gateway_id", "kind"),
        Index(None, "kind", "state", "gateway_id", "device_id"),
        Index(None, "device_id", "last_seen"),
        Index(None, "state", "last_seen"),
        Index(None, "last_seen"),
    )

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    gateway_id: Mapped[str] = mapped_column(String(128))
    device_id: Mapped[str | None] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text)
    first_seq: Mapped[int | None] = mapped_column(BigInteger)
    last_seq: Mapped[int | None] = mapped_column(BigInteger)
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    count: Mapped[int] = mapped_column(BigInteger)
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
    acknowledged_note: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    resolved_reason: Mapped[str | None] = mapped_column(Text)
