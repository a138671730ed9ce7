"""Fleet test helpers: a gateway's chain sent as real signed batches, signed heartbeats, and
rows the fleet writes (twins, incidents, webhook messages) read back."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from cloud.db import Database
from cloud.fleet.models import DeviceTwin, GatewayTwin
from cloud.incidents.models import Incident
from cloud.webhooks.models import WebhookEndpoint, WebhookMessage
from shared.events import GENESIS_HASH, ClockState, EventDraft, EventKind, UsageEvent
from shared.heartbeat import (
    ClockReport,
    DeviceReport,
    Heartbeat,
    LastValues,
    LinkReport,
    OutboxReport,
    encode_envelope,
    sign_heartbeat,
)
from tests.cloud.conftest import GATEWAY, JSON
from tests.support.batches import T0, batch_body, chain_events
from tests.support.usage import usage


def event(
    n: int,
    *,
    device_id: str,
    name: str,
    kind: EventKind,
    channel: str | None = None,
    quantity: str | None = None,
    unit: str | None = None,
    attrs: dict[str, Any] | None = None,
) -> EventDraft:
    """A draft `n` seconds after T0."""
    return usage(
        device_id,
        name,
        T0 + timedelta(seconds=n),
        kind=kind,
        quantity=quantity,
        unit=unit,
        channel=channel,
        attrs=attrs,
    )


@dataclass
class Chain:
    """A gateway's chain, sent batch after batch through POST /v1/batches."""

    key: Ed25519PrivateKey
    gateway_id: str = GATEWAY
    seq: int = 0
    prev_hash: str = GENESIS_HASH
    sent: list[UsageEvent] = field(default_factory=list)

    async def send(self, client: httpx.AsyncClient, drafts: Sequence[EventDraft]) -> httpx.Response:
        """Seal and send `drafts` as the next batch; the collector's answer (asserted 200)."""
        events = chain_events(
            drafts, gateway_id=self.gateway_id, first_seq=self.seq + 1, prev_hash=self.prev_hash
        )
        response = await client.post(
            "/v1/batches", content=batch_body(events, self.key), headers=JSON
        )
        assert response.status_code == 200, response.text
        self.seq, self.prev_hash = events[-1].seq, events[-1].hash
        self.sent.extend(events)
        return response


def heartbeat(
    *,
    gateway_id: str = GATEWAY,
    sent_at: datetime | None = None,
    devices: Sequence[DeviceReport] = (),
    backlog: int = 0,
) -> Heartbeat:
    """A heartbeat as an agent would send it (sent now unless `sent_at`)."""
    sent = (sent_at or datetime.now(UTC)).replace(tzinfo=UTC)
    return Heartbeat(
        gateway_id=gateway_id,
        sent_at=sent,
        boot_id="boot-1",
        uptime_s=3600,
        agent_version="0.1.0",
        outbox=OutboxReport(
            backlog_events=backlog,
            oldest_unsent_at=None if backlog == 0 else sent - timedelta(seconds=90),
            oldest_unsent_age_s=None if backlog == 0 else 90,
            dead_letters=0,
            used_bytes=4096,
            budget_bytes=1 << 20,
        ),
        cloud_link=LinkReport(last_success_at=None, consecutive_failures=0),
        clock=ClockReport(state=ClockState.SYNCED),
        devices_total=len(devices),
        devices=tuple(devices),
    )


def device_report(
    device_id: str,
    *,
    battery: int | None = None,
    firmware: str | None = None,
    offset: int | None = None,
    failures: int = 0,
) -> DeviceReport:
    """One device's health in a heartbeat."""
    values = None
    if battery is not None or firmware is not None or offset is not None:
        values = LastValues(battery=battery, firmware=firmware, clock_offset_ms=offset)
    return DeviceReport(
        device_id=device_id,
        state="ok" if failures == 0 else "failing",
        last_success_at=None,
        consecutive_failures=failures,
        errors={"timeout": failures} if failures else {},
        last_values=values,
    )


def envelope(beat: Heartbeat, key: Ed25519PrivateKey) -> bytes:
    """The signed request body of a heartbeat."""
    return encode_envelope(sign_heartbeat(key, beat))


async def send_heartbeat(
    client: httpx.AsyncClient, beat: Heartbeat, key: Ed25519PrivateKey
) -> httpx.Response:
    """POST a signed heartbeat to its gateway's route."""
    return await client.post(
        f"/v1/gateways/{beat.gateway_id}/heartbeats", content=envelope(beat, key), headers=JSON
    )


async def add_endpoint(db: Database, *types: str) -> None:
    """A webhook endpoint subscribed to `types`, so emits write message rows."""
    async with db.transaction(write=True) as session:
        session.add(
            WebhookEndpoint(
                url="http://127.0.0.1:9/hook",
                description="fleet tests",
                event_types=list(types),
                secret="whsec_" + "A" * 32,
                enabled=True,
                consecutive_failures=0,
                created_at=datetime.now(UTC),
            )
        )


async def messages(db: Database) -> list[tuple[str, dict[str, Any]]]:
    """Every webhook message (type, payload) in creation order."""
    async with db.transaction() as session:
        rows = await session.execute(
            select(WebhookMessage.event_type, WebhookMessage.payload).order_by(
                WebhookMessage.created_at, WebhookMessage.id
            )
        )
        return [(kind, payload) for kind, payload in rows]


async def incidents(db: Database, kind: str) -> list[Incident]:
    """The incidents of `kind`, oldest first."""
    async with db.transaction() as session:
        found = await session.scalars(
            select(Incident).where(Incident.kind == kind).order_by(Incident.id)
        )
        return list(found)


async def twin_rows(db: Database) -> tuple[int, int]:
    """How many device twins and gateway twins are stored."""
    async with db.transaction() as session:
        devices = await session.scalar(select(func.count()).select_from(DeviceTwin))
        gateways = await session.scalar(select(func.count()).select_from(GatewayTwin))
    return devices or 0, gateways or 0


def body(response: httpx.Response) -> Any:
    """The JSON of an answer."""
    return orjson.loads(response.content)
