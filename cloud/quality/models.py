"""The `incidents` table: every refused batch and every re-sent one, per gateway; for direct
sources (gateway `source:<id>`) also late arrivals, unknown devices and rejected records."""

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, SurrogateKey, UtcDateTime


class IncidentKind(enum.StrEnum):
    """What went wrong (or was repeated) with a batch."""

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


class Incident(Base):
    """One data-quality incident; `gateway_id` has no foreign key: unknown gateways get them too."""

    __tablename__ = "incidents"
    __table_args__ = (Index(None, "gateway_id", "kind"),)

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    gateway_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    first_seq: Mapped[int | None] = mapped_column(BigInteger)
    last_seq: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
