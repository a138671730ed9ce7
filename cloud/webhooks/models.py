"""The webhook tables: endpoints, messages (one per emitted event), deliveries (one per message
and endpoint, the unit that is retried) and attempts (the delivery log).

An endpoint's `secret` is stored in clear: the HMAC of every delivery needs it. It is answered
once, when the endpoint is made, and never by a read.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloud.choices import (
    DeliveryState as DeliveryState,  # defined there for the CLI's help (issue 18)
)
from cloud.db import Base, SurrogateKey, UtcDateTime

MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 500
RESPONSE_EXCERPT_BYTES = 1024


class WebhookEndpoint(Base):
    """A receiver URL, the event types it wants, and the secret its deliveries are signed with.

    `consecutive_failures` counts failed attempts since the last success and `failing_since` is
    the first of them; together they decide when the endpoint is disabled (see delivery.py).
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(String(MAX_URL_LENGTH))
    description: Mapped[str] = mapped_column(String(MAX_DESCRIPTION_LENGTH))
    event_types: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer)
    failing_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class WebhookMessage(Base):
    """One emitted event; its id (`msg_...`, sortable by time) is the `webhook-id` header."""

    __tablename__ = "webhook_messages"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class WebhookDelivery(Base):
    """One message to one endpoint: pending until a 2xx, or failed when out of attempts.

    `lease_until` is set while a collector sends it; a delivery whose sender died is due again
    once its lease has passed.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index(None, "state", "next_attempt_at"),
        Index(None, "endpoint_id", "id"),
        Index(None, "message_id"),
    )

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("webhook_messages.id"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_response: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WebhookAttempt(Base):
    """The log: one row per attempt (its quick in-attempt retries included), kept after success."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index(None, "delivery_id", "id"),)

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
