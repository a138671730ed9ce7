"""The `batches` and `events` tables: signed batches as received and their events, stored raw.

An event is identified by `(gateway_id, seq)`; a batch row keeps the signed header so that anyone
can re-verify the signature over the stored events later (the evidence behind an invoice line).
"""

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, DecimalText, SurrogateKey, UtcDateTime


class ReceivedBatch(Base):
    """A signed batch header as received; `event_count` is how many events it added."""

    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"))
    first_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    prev_hash: Mapped[str] = mapped_column(String(64))
    last_hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(256))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    event_count: Mapped[int] = mapped_column(Integer)


class StoredEvent(Base):
    """One usage event exactly as the gateway chained it (see `shared.events.UsageEvent`)."""

    __tablename__ = "events"
    __table_args__ = (
        Index(None, "device_id", "occurred_at"),
        Index(None, "occurred_at"),
    )

    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    device_id: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[Decimal | None] = mapped_column(DecimalText)
    unit: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    observed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    clock: Mapped[str] = mapped_column(String(16))
    attrs: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
