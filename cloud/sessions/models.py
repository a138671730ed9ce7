"""Computed sessions (the work queue of stale pairs is `cloud.session_work`, a layer below)."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, SurrogateKey, UtcDateTime


class SessionRow(Base):
    """A computed session. Recomputation marks rows `current = False` and never deletes them,
    so an invoice's evidence keeps pointing at the sessions it was rated from."""

    __tablename__ = "sessions"
    __table_args__ = (Index(None, "current", "device_id", "channel", "started_at"),)

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(64))  # "" for events without a channel
    name: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_activity_at: Mapped[datetime] = mapped_column(UtcDateTime)
    close_reason: Mapped[str] = mapped_column(String(16))
    start_gateway_id: Mapped[str] = mapped_column(String(128))
    start_seq: Mapped[int] = mapped_column(BigInteger)
    event_keys: Mapped[list[list[Any]]] = mapped_column(JSON)  # [[gateway_id, seq], ...]
    event_count: Mapped[int] = mapped_column(Integer)
    current: Mapped[bool] = mapped_column(Boolean)
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime)
