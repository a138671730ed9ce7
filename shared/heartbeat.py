"""The gateway's signed heartbeat: its own health, as the collector's gateway twin shows it.

A heartbeat says what only the gateway knows: the outbox backlog and the age of its oldest unsent
event, the cloud link as the gateway sees it, its clock, and per device the state, error counters
and last battery / firmware / clock offset. It travels as the envelope

    {"heartbeat": {...}, "signature": "<base64 Ed25519>"}

where the signature is the gateway key's over the canonical bytes (`shared.canonical`) of the
heartbeat object, like a batch header's. The receiver checks the size, then the signature over
the bytes as received (a forgery costs one parse and one verification, no validation), then the
bounded model, and last that the validated heartbeat re-encodes to exactly the signed bytes: what
the collector acts on is what the gateway signed, never a coerced neighbour of it.

A heartbeat is not an event: it is not chained, not stored in the outbox and not billed. Replays
are harmless to reject by `sent_at` (the collector keeps the newest per gateway).
"""

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any

import orjson
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    ValidationError,
)

from shared.bounds import (
    INT64_MAX,
    MAX_HEARTBEAT_BYTES,
    MAX_HEARTBEAT_DEVICES,
    MAX_HEARTBEAT_ERROR_KINDS,
    MAX_SEQ,
    check_int64,
    check_text,
    check_time,
)
from shared.canonical import dump_canonical, format_time
from shared.errors import InvalidSignature, MalformedHeartbeat
from shared.events import ClockState, Identifier, Label
from shared.signing import sign

MAX_DETAIL = 256  # characters of the clock's detail text

# Strict ints: a heartbeat is signed as sent, so "5" or true never stands in for 5.
Count = Annotated[int, Strict(), Field(ge=0, le=INT64_MAX)]
Seconds = Annotated[int, Strict(), Field(ge=0, le=INT64_MAX)]
Bytes = Annotated[int, Strict(), Field(ge=0, le=INT64_MAX)]
# Times serialize as the canonical RFC 3339 text, so model_dump(mode="json") is canonical.
Time = Annotated[datetime, AfterValidator(check_time), PlainSerializer(format_time)]
Detail = Annotated[str, Field(max_length=MAX_DETAIL), AfterValidator(check_text)]
Offset = Annotated[int, Strict(), AfterValidator(check_int64)]


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OutboxReport(_Part):
    """The outbox as the gateway sees it: what is still to send and how old it is."""

    backlog_events: Annotated[int, Strict(), Field(ge=0, le=MAX_SEQ)]
    oldest_unsent_at: Time | None
    oldest_unsent_age_s: Seconds | None
    dead_letters: Count
    used_bytes: Bytes
    budget_bytes: Bytes


class LinkReport(_Part):
    """The cloud link as the gateway sees it (a collector only sees what arrives)."""

    last_success_at: Time | None
    consecutive_failures: Count


class ClockReport(_Part):
    """Whether the gateway's clock is synchronized (the `clock` its events carry)."""

    state: ClockState
    detail: Detail | None = None


class LastValues(_Part):
    """The last battery, firmware and clock offset a device reported (locks report them)."""

    battery: Annotated[int, Strict(), Field(ge=0, le=100)] | None = None
    firmware: Label | None = None
    clock_offset_ms: Offset | None = None


class DeviceReport(_Part):
    """One device's health: its state, last answer, failures and error counters."""

    device_id: Identifier
    state: Label
    last_success_at: Time | None
    consecutive_failures: Count
    errors: Annotated[dict[Label, Count], Field(max_length=MAX_HEARTBEAT_ERROR_KINDS)] = Field(
        default_factory=dict
    )
    last_values: LastValues | None = None


class Heartbeat(_Part):
    """A gateway's report of its own health at `sent_at` (see the module docstring)."""

    gateway_id: Identifier
    sent_at: Time
    boot_id: Label
    uptime_s: Seconds
    agent_version: Label
    outbox: OutboxReport
    cloud_link: LinkReport
    clock: ClockReport
    # How many devices the gateway has: `devices` holds fewer only when the agent had to trim
    # the heartbeat to MAX_HEARTBEAT_BYTES (failing devices are kept first).
    devices_total: Count
    devices: tuple[DeviceReport, ...] = Field(default=(), max_length=MAX_HEARTBEAT_DEVICES)

    def content(self) -> dict[str, Any]:
        """The heartbeat in canonical types (what `heartbeat_bytes` encodes)."""
        return self.model_dump(mode="json")


def heartbeat_bytes(heartbeat: Heartbeat) -> bytes:
    """The canonical bytes a heartbeat's signature is over."""
    return dump_canonical(heartbeat.content())


def sign_heartbeat(key: Ed25519PrivateKey, heartbeat: Heartbeat) -> dict[str, Any]:
    """The signed envelope `{"heartbeat": ..., "signature": ...}`, ready for JSON."""
    content = heartbeat.content()
    return {"heartbeat": content, "signature": sign(key, dump_canonical(content))}


def encode_envelope(envelope: dict[str, Any]) -> bytes:
    """The envelope as the request body (canonical JSON, so its size is what the bound sees)."""
    return dump_canonical(envelope)


def verify_heartbeat(
    public_key: Ed25519PublicKey, envelope: bytes, *, gateway_id: str | None = None
) -> Heartbeat:
    """The heartbeat of a signed envelope, if it is the key's and within the contract's bounds.

    Raises `MalformedHeartbeat` (too large, not JSON, wrong shape, out of bounds, another
    gateway's id when `gateway_id` is given) or `InvalidSignature`.
    """
    if len(envelope) > MAX_HEARTBEAT_BYTES:
        raise MalformedHeartbeat(
            f"heartbeat is {len(envelope)} bytes, more than the {MAX_HEARTBEAT_BYTES} allowed"
        )
    raw, signature = _envelope_parts(envelope)
    signed = dump_canonical(raw)
    _verify_signature(public_key, signed, signature)
    try:
        heartbeat = Heartbeat.model_validate(raw)
    except ValidationError as exc:
        raise MalformedHeartbeat(f"heartbeat is not valid: {_first_errors(exc)}") from exc
    if heartbeat_bytes(heartbeat) != signed:
        raise MalformedHeartbeat(
            "heartbeat is not in canonical form (times as RFC 3339 UTC with six fractional "
            "digits and Z): the gateway signed text the contract does not write"
        )
    if gateway_id is not None and heartbeat.gateway_id != gateway_id:
        raise MalformedHeartbeat(
            f"heartbeat is gateway {heartbeat.gateway_id!r}'s, sent as gateway {gateway_id!r}'s"
        )
    return heartbeat


def _envelope_parts(envelope: bytes) -> tuple[dict[str, Any], str]:
    """The heartbeat object and the signature text of an envelope, or MalformedHeartbeat."""
    try:
        document = orjson.loads(envelope)
    except orjson.JSONDecodeError as exc:
        raise MalformedHeartbeat(f"heartbeat envelope is not JSON: {exc}") from exc
    if not isinstance(document, dict) or set(document) != {"heartbeat", "signature"}:
        raise MalformedHeartbeat(
            'heartbeat envelope must be an object with exactly "heartbeat" and "signature"'
        )
    raw, signature = document["heartbeat"], document["signature"]
    if not isinstance(raw, dict):
        raise MalformedHeartbeat('heartbeat envelope: "heartbeat" must be an object')
    if not isinstance(signature, str) or not 1 <= len(signature) <= 256:
        raise MalformedHeartbeat('heartbeat envelope: "signature" must be base64 text')
    return raw, signature


def _verify_signature(public_key: Ed25519PublicKey, signed: bytes, signature: str) -> None:
    try:
        public_key.verify(base64.b64decode(signature, validate=True), signed)
    except (binascii.Error, ValueError, _CryptoInvalidSignature) as exc:
        raise InvalidSignature("heartbeat signature does not verify under the gateway key") from exc


def _first_errors(exc: ValidationError, limit: int = 3) -> str:
    """The first few validation errors as `location: message` (a bounded sentence)."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False)[:limit]:
        location = ".".join(str(part) for part in error["loc"]) or "heartbeat"
        parts.append(f"{location}: {error['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
