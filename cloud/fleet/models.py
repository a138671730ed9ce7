"""The twins: what the collector last knew of each device and gateway (read models).

Both tables are kept up to date as batches are stored (the change feed) and heartbeats arrive;
neither is ever rebuilt by scanning `events`. JSON columns hold small bounded maps (a device's
channels, points and counters; a gateway's last verified heartbeat).
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, UtcDateTime

ONLINE = "online"
OFFLINE = "offline"


class DeviceTwin(Base):
    """A device as last reported: seen when, through which gateway, states, values, health.

    `state` sums up `channels` for the list filter: "active" when any channel is active,
    "inactive" when all are, None before any activation or deactivation. `silent_since` is set
    by the silence sweep and cleared by the device's next stored event.
    """

    __tablename__ = "device_twins"
    __table_args__ = (
        Index(None, "gateway_id"),
        Index(None, "last_received_at"),
        Index(None, "state"),
        Index(None, "silent_since"),
        Index(None, "battery"),
    )

    device_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(128))
    last_occurred_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_received_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_seq: Mapped[int | None] = mapped_column(BigInteger)
    state: Mapped[str | None] = mapped_column(String(16))
    # {channel: {"state": "active"|"inactive", "since": RFC 3339, "event": name}}
    channels: Mapped[dict[str, Any]] = mapped_column(JSON)
    # {event name: {"quantity": decimal text, "unit": str | None, "at": RFC 3339}}
    points: Mapped[dict[str, Any]] = mapped_column(JSON)
    # {counter name: {"raw": int, "at": ..., "last_wrap_at": ..., "last_reset_at": ...}}
    counter: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    battery: Mapped[int | None] = mapped_column(Integer)
    firmware: Mapped[str | None] = mapped_column(String(64))
    clock_offset_ms: Mapped[int | None] = mapped_column(BigInteger)
    health: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the heartbeat's device report
    health_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # that heartbeat's sent_at
    silent_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class GatewayTwin(Base):
    """A gateway as last reported: when, its last verified heartbeat, online or offline."""

    __tablename__ = "gateway_twins"
    __table_args__ = (Index(None, "status", "last_report_at"),)

    gateway_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_report_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # batch or heartbeat
    last_batch_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # received
    heartbeat_sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # as signed
    heartbeat: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))  # online | offline
    status_since: Mapped[datetime] = mapped_column(UtcDateTime)
