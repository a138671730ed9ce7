"""Build real signed batches for tests (the same code path the forwarder's format follows)."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.chain import seal
from shared.events import GENESIS_HASH, ClockState, EventDraft, EventKind, UsageEvent
from shared.signing import batch_header, sign

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def draft(n: int, *, device_id: str = "panel-1", quantity: str = "1") -> EventDraft:
    """A counter-delta draft, `n` seconds after T0."""
    at = T0 + timedelta(seconds=n)
    return EventDraft(
        device_id=device_id,
        name="door_open",
        kind=EventKind.ACTIVITY,
        quantity=Decimal(quantity),
        unit="count",
        occurred_at=at,
        observed_at=at,
        clock=ClockState.SYNCED,
        attrs={"register": 0},
    )


def chain_events(
    drafts: Sequence[EventDraft],
    *,
    gateway_id: str,
    first_seq: int = 1,
    prev_hash: str = GENESIS_HASH,
) -> list[UsageEvent]:
    """Seal drafts into a contiguous chain starting at `first_seq` after `prev_hash`."""
    events = []
    for offset, item in enumerate(drafts):
        event = seal(item, gateway_id=gateway_id, seq=first_seq + offset, prev_hash=prev_hash)
        events.append(event)
        prev_hash = event.hash
    return events


def batch_document(
    events: Sequence[UsageEvent], key: Ed25519PrivateKey, *, prev_hash: str | None = None
) -> dict[str, Any]:
    """The JSON document of a signed batch over `events`."""
    first, last = events[0], events[-1]
    before = first.prev_hash if prev_hash is None else prev_hash
    header = batch_header(
        gateway_id=first.gateway_id,
        first_seq=first.seq,
        last_seq=last.seq,
        prev_hash=before,
        last_hash=last.hash,
    )
    return {
        "gateway_id": first.gateway_id,
        "first_seq": first.seq,
        "last_seq": last.seq,
        "prev_hash": before,
        "last_hash": last.hash,
        "signature": sign(key, header),
        "events": [event.to_wire() for event in events],
    }


def batch_body(events: Sequence[UsageEvent], key: Ed25519PrivateKey) -> bytes:
    """A signed batch as request bytes."""
    return orjson.dumps(batch_document(events, key))
