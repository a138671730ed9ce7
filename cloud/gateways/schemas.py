"""What the gateway API answers."""

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, WithJsonSchema

from cloud.storable_text import RequestBody


class GatewayHead(BaseModel):
    """Where a gateway's stored chain ends, and the key its batches must be signed with now."""

    gateway_id: str
    public_key_pem: str
    last_seq: int | None = Field(description="highest stored seq, null before the first batch")
    last_hash: str | None = Field(description="hash of the event at last_seq")


# A [first, last] pair. Its schema says "two integers" with `items` rather than pydantic's
# `prefixItems`: both are valid OpenAPI 3.1, and schemathesis 4.32 (make fuzz) rejects the
# latter in a response it validates. The wire format is the same.
SeqRange = Annotated[
    tuple[int, int],
    WithJsonSchema({"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}),
]


class GatewayStatus(BaseModel):
    """A gateway's view of its stored chain: where it ends, what is missing, what went wrong."""

    gateway_id: str
    registered_at: datetime
    site_id: str | None = Field(description="the site it enrolled for; null if added by hand")
    public_key_pem: str = Field(description="the key its batches must be signed with now")
    revoked_at: datetime | None
    revoke_reason: str | None
    last_seq: int | None = Field(description="highest stored seq, null before the first batch")
    last_hash: str | None = Field(
        description="hash of the event at last_seq: the edge resyncs its chain from it"
    )
    event_count: int
    missing_ranges: list[SeqRange] = Field(
        description="inclusive seq ranges missing between 1 and last_seq"
    )
    incidents: dict[str, int] = Field(description="incident count per kind")


class EnrollmentRequest(RequestBody):
    """What a gateway sends to enroll: the code it was given and its own public key."""

    code: str = Field(min_length=1, max_length=64)
    public_key_pem: str = Field(min_length=1, max_length=4096)
    hostname: str | None = Field(default=None, max_length=255)


class Enrollment(BaseModel):
    """The cloud's answer to an enrollment: the gateway's assigned id and its site."""

    gateway_id: str
    site_id: str
    enrolled_at: datetime


class KeyRotationRequest(RequestBody):
    """A new public key, signed with the gateway's current key over the canonical statement."""

    new_public_key_pem: str = Field(min_length=1, max_length=4096)
    issued_at: str = Field(min_length=1, max_length=40, description="RFC 3339 UTC, as signed")
    signature: str = Field(min_length=1, max_length=256)


class KeyRotation(BaseModel):
    """The cloud accepted a new key: batches must now be signed with it."""

    gateway_id: str
    valid_from: datetime
