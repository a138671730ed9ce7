"""What the ingest API takes and answers (the batch itself is `shared.events.Batch`)."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from cloud.ingest.cursor import EventCursor
from shared.events import Batch


class IngestReceipt(BaseModel):
    """The answer to an accepted batch: how many events were new and how many already stored."""

    gateway_id: str
    first_seq: int
    last_seq: int
    stored: int = Field(description="events of this batch stored now")
    duplicates: int = Field(description="events of this batch that were already stored")
    queued: bool = Field(
        default=False,
        description="true (answer 202): appended to the ingest log, stored later by a sink; "
        "`stored` and `duplicates` are 0, not known yet",
    )


class WireEvent(BaseModel):
    """A stored event in its wire form (`UsageEvent.to_wire()`): decimals and times as text."""

    gateway_id: str
    seq: int
    device_id: str
    channel: str | None
    name: str
    kind: str
    quantity: str | None
    unit: str | None
    occurred_at: str
    observed_at: str
    clock: str
    attrs: dict[str, Any]
    prev_hash: str
    hash: str


class EventPage(BaseModel):
    """One page of events in `(gateway_id, seq)` order."""

    events: list[WireEvent]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at end")


@dataclass(frozen=True)
class EventQuery:
    """Filters and page position of `GET /v1/events` (`since` inclusive, `until` exclusive)."""

    gateway_id: str | None = None
    device_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    after: EventCursor | None = None


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema with its `$defs` substituted in place (for `openapi_extra`, no components)."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    inlined: dict[str, Any] = resolve(schema)
    return inlined


BATCH_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A signed batch; may be sent with `Content-Encoding: gzip`.",
        "content": {"application/json": {"schema": inline_refs(Batch.model_json_schema())}},
    }
}
