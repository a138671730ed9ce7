"""Feed usage into a real collector database the way a gateway does: signed, chained batches
through the ingest service (the same path as POST /v1/batches, without HTTP)."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.db import Database
from cloud.gateways.service import register_gateway
from cloud.ingest.service import ingest_batch
from cloud.settings import Limits
from shared.events import GENESIS_HASH, ClockState, EventDraft, EventKind, UsageEvent
from shared.signing import public_key_pem
from tests.support.batches import batch_body, chain_events


def usage(
    device_id: str,
    name: str,
    at: datetime,
    *,
    kind: EventKind = EventKind.ACTIVITY,
    quantity: str | Decimal | None = None,
    unit: str | None = None,
    channel: str | None = None,
    attrs: dict[str, Any] | None = None,
) -> EventDraft:
    """A draft of one usage event at `at` (UTC-aware)."""
    return EventDraft(
        device_id=device_id,
        channel=channel,
        name=name,
        kind=kind,
        quantity=None if quantity is None else Decimal(quantity),
        unit=unit,
        occurred_at=at,
        observed_at=at,
        clock=ClockState.SYNCED,
        attrs=attrs or {},
    )


@dataclass
class GatewayFeed:
    """One registered gateway's chain: `send` seals drafts after the last sent event."""

    gateway_id: str
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    next_seq: int = 1
    prev_hash: str = GENESIS_HASH
    sent: list[UsageEvent] = field(default_factory=list)

    async def register(self, db: Database) -> "GatewayFeed":
        """Register the gateway with its public key; returns itself."""
        pem = public_key_pem(self.key.public_key()).encode("ascii")
        async with db.transaction(write=True) as session:
            await register_gateway(session=session, gateway_id=self.gateway_id, public_key=pem)
        return self

    async def send(self, db: Database, drafts: Sequence[EventDraft]) -> list[UsageEvent]:
        """Seal `drafts` into the chain and ingest them as one signed batch."""
        events = chain_events(
            drafts, gateway_id=self.gateway_id, first_seq=self.next_seq, prev_hash=self.prev_hash
        )
        await ingest_batch(db=db, body=batch_body(events, self.key), limits=Limits())
        self.next_seq += len(events)
        self.prev_hash = events[-1].hash
        self.sent.extend(events)
        return events
