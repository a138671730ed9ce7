"""A small billed catalog and a gateway chain to send real signed batches through POST /v1/batches.

Account `acme` (Europe/Berlin) on plan `basic` v1 from 2026-10-01: metric `water` (events named
`water` in `l`, summed) and `stream_hours` (camera session hours). Devices: `meter-1` (meter) and
`cam-1` (camera, sessions from stream_start to stream_stop) bound to acme since 2026-10-01;
`loose-1` (meter) in the catalog but bound to nobody. Any other device id is not in the catalog.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from cloud.catalog.accounts import create_account
from cloud.catalog.bindings import create_binding
from cloud.catalog.devices import create_device, create_profile
from cloud.catalog.metrics import create_metric
from cloud.catalog.plan_terms import PlanTerms
from cloud.catalog.plans import create_plan, create_plan_version
from cloud.db import Database
from cloud.incidents.models import Incident
from shared.events import GENESIS_HASH, ClockState, EventDraft, EventKind, UsageEvent
from tests.cloud.conftest import GATEWAY, JSON
from tests.support.batches import batch_body, chain_events

BOUND_SINCE = datetime(2026, 10, 1, tzinfo=UTC)


def recent() -> datetime:
    """A minute ago: an event of the current billing month, received in time."""
    return datetime.now(UTC) - timedelta(minutes=1)


def reading(
    device_id: str,
    *,
    name: str = "water",
    quantity: str | None = "5",
    unit: str | None = "l",
    at: datetime | None = None,
    kind: EventKind = EventKind.ACTIVITY,
    attrs: dict[str, Any] | None = None,
    clock: ClockState = ClockState.SYNCED,
) -> EventDraft:
    """One event draft (a water reading unless told otherwise)."""
    when = at or recent()
    return EventDraft(
        device_id=device_id,
        name=name,
        kind=kind,
        quantity=None if quantity is None else Decimal(quantity),
        unit=unit,
        occurred_at=when,
        observed_at=when,
        clock=clock,
        attrs=attrs or {},
    )


@dataclass
class Chain:
    """The test gateway's chain: `send` seals drafts after the last event sealed."""

    key: Ed25519PrivateKey
    next_seq: int = 1
    prev_hash: str = GENESIS_HASH
    sealed: list[UsageEvent] = field(default_factory=list)

    def seal(self, drafts: Sequence[EventDraft]) -> list[UsageEvent]:
        """Seal `drafts` as the next seqs (without sending them)."""
        events = chain_events(
            drafts, gateway_id=GATEWAY, first_seq=self.next_seq, prev_hash=self.prev_hash
        )
        self.next_seq, self.prev_hash = events[-1].seq + 1, events[-1].hash
        self.sealed.extend(events)
        return events

    async def send(
        self, client: httpx.AsyncClient, drafts: Sequence[EventDraft]
    ) -> list[UsageEvent]:
        """Seal and POST `drafts` as one signed batch; the events (the answer must be 200)."""
        events = self.seal(drafts)
        await post_events(client, events, self.key)
        return events


async def post_events(
    client: httpx.AsyncClient, events: Sequence[UsageEvent], key: Ed25519PrivateKey
) -> None:
    """POST already sealed events as one batch; it must be accepted."""
    response = await client.post("/v1/batches", content=batch_body(events, key), headers=JSON)
    assert response.status_code == 200, response.text


async def incidents(db: Database) -> list[Incident]:
    """Every incident, in id order."""
    async with db.transaction() as session:
        return list(await session.scalars(select(Incident).order_by(Incident.id)))


async def set_up_catalog(db: Database) -> None:
    """The catalog of the module docstring."""
    async with db.transaction(write=True) as session:
        await create_profile(
            session=session,
            profile_id="camera",
            name="Camera",
            start_on=["stream_start"],
            end_on=["stream_stop"],
        )
        await create_profile(session=session, profile_id="meter", name="Water meter")
        await create_device(session=session, device_id="cam-1", name="Cam", profile_id="camera")
        await create_device(session=session, device_id="meter-1", name="Tap", profile_id="meter")
        await create_device(session=session, device_id="loose-1", name="Spare", profile_id="meter")
        await create_metric(
            session=session,
            metric_id="stream_hours",
            name="Streaming hours",
            source="sessions",
            aggregation="sum",
            field="duration",
            profiles=["camera"],
        )
        await create_metric(
            session=session,
            metric_id="water",
            name="Water",
            source="events",
            aggregation="sum",
            field="quantity",
            names=["water"],
            unit="l",
        )
        await create_plan(session=session, plan_id="basic", name="Basic", currency="EUR")
        await create_plan_version(session=session, plan_id="basic", terms=_terms())
        await create_account(
            session=session,
            account_id="acme",
            name="Acme",
            kind="company",
            currency="EUR",
            time_zone="Europe/Berlin",
            plan_id="basic",
        )
        for device in ("cam-1", "meter-1"):
            await create_binding(
                session=session, device_id=device, account_id="acme", valid_from=BOUND_SINCE
            )


def _terms() -> PlanTerms:
    return PlanTerms.model_validate(
        {
            "effective_from": "2026-10-01T00:00:00+02:00",
            "base_fee": "10.00",
            "charges": [
                {"metric": "stream_hours", "model": "standard", "unit_price": "0.50"},
                {"metric": "water", "model": "standard", "unit_price": "0.01"},
            ],
        }
    )
