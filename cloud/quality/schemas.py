"""What the quality API takes and answers: incidents, a page of them, a note on a step."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cloud.choices import MAX_NOTE as MAX_NOTE  # defined there for the CLI's help (issue 18)
from cloud.incidents.models import IncidentState
from cloud.storable_text import RequestBody


class IncidentOut(BaseModel):
    """One incident with its lifecycle and evidence."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    state: IncidentState
    gateway_id: str
    device_id: str | None
    detail: str
    first_seq: int | None
    last_seq: int | None
    first_seen: datetime
    last_seen: datetime
    count: int = Field(description="occurrences folded into this incident")
    evidence: dict[str, Any] | None = Field(
        description="bounded: batch_id, the newest seqs, a few readings; seq gaps: missing"
    )
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    acknowledged_note: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolved_reason: str | None


class IncidentPage(BaseModel):
    """Incidents, newest first; `next_cursor` fetches the next page (None: the last)."""

    incidents: list[IncidentOut]
    next_cursor: str | None


class IncidentStep(RequestBody):
    """An optional note for acknowledging or resolving an incident."""

    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, min_length=1, max_length=MAX_NOTE)


@dataclass(frozen=True)
class IncidentQuery:
    """The filters of an incident list (all optional) and the page."""

    kind: str | None = None
    device_id: str | None = None
    gateway_id: str | None = None
    state: IncidentState | None = None
    since: datetime | None = None  # last seen at or after
    limit: int = 100
    before_id: int | None = None  # keyset: ids below this one
