"""Request and answer bodies of the webhook API (every input bounded; no answer has a secret
except the one creating it)."""

from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

import httpx
from pydantic import AfterValidator, BaseModel, Field

from cloud.storable_text import RequestBody
from cloud.webhooks.deliveries import DeliveryEntry
from cloud.webhooks.models import (
    MAX_DESCRIPTION_LENGTH,
    MAX_URL_LENGTH,
    WebhookAttempt,
    WebhookEndpoint,
)
from cloud.webhooks.types import EventType


def check_receiver_url(url: str) -> str:
    """An absolute http(s) URL with a host; ValueError naming what is wrong."""
    if any(char.isspace() for char in url):
        raise ValueError("the URL may not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # a port that is not a number raises here
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("the URL must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    if port == 0:
        raise ValueError("the URL's port must be 1..65535")
    try:
        host = httpx.URL(url).host  # what delivery sends to: the host name must decode (IDNA)
    except Exception as exc:
        raise ValueError(f"not a URL the collector can send to: {exc}") from None
    if not host:
        raise ValueError("the URL has no host")
    return url


ReceiverUrl = Annotated[
    str,
    Field(min_length=1, max_length=MAX_URL_LENGTH, pattern=r"^[hH][tT][tT][pP][sS]?://\S+$"),
    AfterValidator(check_receiver_url),
]


class EndpointCreate(RequestBody):
    """A receiver URL and the event types it wants (at least one)."""

    url: ReceiverUrl
    event_types: list[EventType] = Field(min_length=1, max_length=len(EventType))
    description: str = Field(default="", max_length=MAX_DESCRIPTION_LENGTH)


class EndpointOut(BaseModel):
    """An endpoint as read (never its secret)."""

    id: int
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_at: datetime | None
    disabled_reason: str | None
    consecutive_failures: int
    failing_since: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, row: WebhookEndpoint) -> "EndpointOut":
        """The answer for a row (its columns by name)."""
        return cls.model_validate(row, from_attributes=True)


class EndpointCreated(EndpointOut):
    """A new endpoint: `secret` (to verify signatures with) is shown only now."""

    secret: str


class EndpointList(BaseModel):
    """Every endpoint."""

    endpoints: list[EndpointOut]


class DeletedOut(BaseModel):
    """What a delete removed."""

    id: int
    deliveries_deleted: int


class AttemptOut(BaseModel):
    """One POST of a delivery: status (or error), the answer's first KiB, how long it took."""

    at: datetime
    status_code: int | None
    error: str | None
    response_excerpt: str | None
    duration_ms: int

    @classmethod
    def of(cls, row: WebhookAttempt) -> "AttemptOut":
        """The answer for a row (its columns by name)."""
        return cls.model_validate(row, from_attributes=True)


class DeliveryOut(BaseModel):
    """A delivery and its log (its newest attempts, oldest first)."""

    id: int
    message_id: str
    endpoint_id: int
    event_type: str
    state: str
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_response: str | None
    last_error: str | None
    delivered_at: datetime | None
    log: list[AttemptOut]

    @classmethod
    def of(cls, entry: DeliveryEntry) -> "DeliveryOut":
        """The answer for a log entry."""
        row = entry.delivery
        return cls(
            id=row.id,
            message_id=row.message_id,
            endpoint_id=row.endpoint_id,
            event_type=entry.event_type,
            state=row.state,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            last_status=row.last_status,
            last_response=row.last_response,
            last_error=row.last_error,
            delivered_at=row.delivered_at,
            log=[AttemptOut.of(attempt) for attempt in entry.attempts],
        )


class DeliveryList(BaseModel):
    """Deliveries, newest first."""

    deliveries: list[DeliveryOut]


class ReplayOut(BaseModel):
    """A replayed delivery: pending again, due now, the same message id."""

    id: int
    message_id: str
    state: str
    next_attempt_at: datetime
