"""What the gateway API answers."""

from datetime import datetime

from pydantic import BaseModel, Field


class GatewayStatus(BaseModel):
    """A gateway's view of its stored chain: where it ends, what is missing, what went wrong."""

    gateway_id: str
    registered_at: datetime
    last_seq: int | None = Field(description="highest stored seq, null before the first batch")
    last_hash: str | None = Field(
        description="hash of the event at last_seq: the edge resyncs its chain from it"
    )
    event_count: int
    missing_ranges: list[tuple[int, int]] = Field(
        description="inclusive seq ranges missing between 1 and last_seq"
    )
    incidents: dict[str, int] = Field(description="incident count per kind")
