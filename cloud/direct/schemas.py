"""Request and response bodies of direct ingestion."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cloud.direct.mapping import SourceMapping
from cloud.storable_text import RequestBody


class RecordError(BaseModel):
    """Why one record was rejected: its place (batch index or file row), field and reason."""

    position: int = Field(description="index in a CloudEvents batch (0-based) or file row")
    id: str | None = Field(default=None, description="the record's id, when it could be read")
    field: str
    reason: str


class EventsReceipt(BaseModel):
    """The answer to `POST /v1/events`: what was stored, what was known, what was refused."""

    source: str
    gateway_id: str
    received: int
    stored: int
    duplicates: int
    rejected: list[RecordError]
    first_seq: int | None = None
    last_seq: int | None = None
    queued: bool = Field(
        default=False,
        description="true (answer 202): appended to the ingest log, stored later by a sink; "
        "`stored`, `duplicates` and the seqs are not known yet",
    )


class ImportReport(BaseModel):
    """What an import stored (or, in a dry run, would store) and every rejected row."""

    source: str
    filename: str
    file_format: str
    sha256: str
    dry_run: bool
    rows: int = Field(description="records read (blank lines are not rows)")
    stored: int = Field(description="stored now; in a dry run, how many would be")
    duplicates: int = Field(description="rows whose id was stored before (or earlier in the file)")
    rejected: int
    errors: list[RecordError] = Field(description="the rejected rows, at most 1000")
    errors_truncated: bool = False
    import_id: int | None = None
    queued: bool = Field(
        default=False,
        description="true: appended to the ingest log (`serve --bus`); a sink stores the rows, "
        "so `stored` and `duplicates` are 0 here",
    )


class SourceCreate(RequestBody):
    """A new direct source: its id and mapping."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
    mapping: SourceMapping


class SourceView(BaseModel):
    """A direct source, its mapping and its data quality."""

    id: str
    gateway_id: str
    mapping: dict[str, Any]
    created_at: datetime
    events_stored: int
    last_seq: int | None
    incidents: dict[str, int] = Field(description="data-quality incidents by kind")


class IssuedIngestKey(BaseModel):
    """A new ingest key: shown once, only its hash is stored."""

    id: int
    name: str
    scope: str
    prefix: str
    secret: str
