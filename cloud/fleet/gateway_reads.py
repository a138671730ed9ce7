"""A gateway's status: its stored chain (head, gaps, incidents) and its twin (reports, heartbeat).

Archived events count as part of the chain: the head is the newer of the last stored event and
the archived head (so a fresh outbox renumbers after it), and seqs at or below the archived head
are not missing (the store answers them as duplicates; `cloud.ingest.archived_heads`).

Moved here from cloud/gateways: the chain status reads stored events and incidents, which sit
above the gateway registry; the registry itself (`registered_gateway`) stays below.
"""

from datetime import datetime
from typing import Any

from pydantic import Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.direct.models import Source
from cloud.fleet.models import GatewayTwin
from cloud.fleet.schemas import GatewayTwinOut
from cloud.gateways.models import Gateway
from cloud.gateways.schemas import GatewayHead, GatewayStatus
from cloud.gateways.service import registered_gateway
from cloud.incidents.counts import count_incidents
from cloud.ingest.archived_heads import ArchivedHead
from cloud.ingest.models import StoredEvent

MAX_GATEWAY_PAGE = 1000


class GatewayView(GatewayStatus):
    """A gateway's chain status and its twin: online or offline, last report, last heartbeat."""

    status: str = Field(description="online | offline | unknown (it never reported)")
    status_since: datetime | None
    last_report_at: datetime | None
    last_batch_at: datetime | None
    last_heartbeat_at: datetime | None
    heartbeat: dict[str, Any] | None = Field(description="the newest verified heartbeat")


async def describe_gateway(*, session: AsyncSession, gateway_id: str) -> GatewayView:
    """Where a gateway's stored chain ends, its gaps, incidents and twin; `GatewayNotFound`."""
    gateway = await registered_gateway(session=session, gateway_id=gateway_id)
    archived = await _archived_head(session=session, gateway_id=gateway_id)
    last = await _last_event(session=session, gateway_id=gateway_id, archived=archived)
    twin = twin_view(gateway.id, await session.get(GatewayTwin, gateway.id))
    return GatewayView(
        gateway_id=gateway.id,
        registered_at=gateway.registered_at,
        site_id=gateway.site_id,
        public_key_pem=gateway.public_key_pem,
        revoked_at=gateway.revoked_at,
        revoke_reason=gateway.revoke_reason,
        last_seq=None if last is None else last[0],
        last_hash=None if last is None else last[1],
        event_count=await _count_events(session=session, gateway_id=gateway_id),
        missing_ranges=await find_seq_gaps(
            session=session, gateway_id=gateway_id, archived_seq=archived[0] if archived else 0
        ),
        incidents=await count_incidents(session=session, gateway_id=gateway_id),
        **twin.model_dump(exclude={"gateway_id"}),
    )


async def gateway_head(*, session: AsyncSession, gateway_id: str) -> GatewayHead:
    """Where a gateway's stored chain ends and its current key; `GatewayNotFound`."""
    gateway = await registered_gateway(session=session, gateway_id=gateway_id)
    archived = await _archived_head(session=session, gateway_id=gateway_id)
    last = await _last_event(session=session, gateway_id=gateway_id, archived=archived)
    return GatewayHead(
        gateway_id=gateway.id,
        public_key_pem=gateway.public_key_pem,
        last_seq=None if last is None else last[0],
        last_hash=None if last is None else last[1],
    )


async def list_gateway_twins(
    *, session: AsyncSession, status: str | None, limit: int, after: str | None
) -> list[GatewayTwinOut]:
    """Registered gateways with their twins in id order (status "unknown": never reported).

    Direct sources' gateway rows (`source:<id>`) are left out: they are not devices on a site
    that report, they are listed under /v1/sources, and the offline sweep never touches them.
    """
    query = (
        select(Gateway.id, GatewayTwin)
        .outerjoin(GatewayTwin, GatewayTwin.gateway_id == Gateway.id)
        .where(Gateway.id.not_in(select(Source.gateway_id)))
    )
    if status == "unknown":
        query = query.where(GatewayTwin.gateway_id.is_(None))
    elif status is not None:
        query = query.where(GatewayTwin.status == status)
    if after is not None:
        query = query.where(Gateway.id > after)
    rows = await session.execute(query.order_by(Gateway.id).limit(limit))
    return [twin_view(gateway_id, twin) for gateway_id, twin in rows]


def twin_view(gateway_id: str, twin: GatewayTwin | None) -> GatewayTwinOut:
    """The API view of a gateway twin (a gateway that never reported: status unknown)."""
    if twin is None:
        return GatewayTwinOut(
            gateway_id=gateway_id,
            status="unknown",
            status_since=None,
            last_report_at=None,
            last_batch_at=None,
            last_heartbeat_at=None,
            heartbeat=None,
        )
    return GatewayTwinOut.model_validate(twin, from_attributes=True)


async def find_seq_gaps(
    *, session: AsyncSession, gateway_id: str, archived_seq: int = 0
) -> list[tuple[int, int]]:
    """The seq ranges missing between 1 and the gateway's last stored seq, inclusive, leaving out
    the archived seqs (1 to `archived_seq`)."""
    previous = func.lag(StoredEvent.seq, 1, 0).over(order_by=StoredEvent.seq)
    runs = (
        select(StoredEvent.seq.label("seq"), previous.label("previous"))
        .where(StoredEvent.gateway_id == gateway_id)
        .subquery()
    )
    rows = await session.execute(
        select(runs.c.previous + 1, runs.c.seq - 1)
        .where(runs.c.seq - runs.c.previous > 1)
        .order_by(runs.c.seq)
    )
    return [(max(first, archived_seq + 1), last) for first, last in rows if last > archived_seq]


async def _last_event(
    *, session: AsyncSession, gateway_id: str, archived: tuple[int, str] | None
) -> tuple[int, str] | None:
    """The newest event of the chain: the last stored one, or the archived head if newer."""
    row = await session.execute(
        select(StoredEvent.seq, StoredEvent.hash)
        .where(StoredEvent.gateway_id == gateway_id)
        .order_by(StoredEvent.seq.desc())
        .limit(1)
    )
    found = row.one_or_none()
    stored = None if found is None else (found[0], found[1])
    return max((head for head in (stored, archived) if head is not None), default=None)


async def _archived_head(*, session: AsyncSession, gateway_id: str) -> tuple[int, str] | None:
    row = await session.execute(
        select(ArchivedHead.seq, ArchivedHead.hash).where(ArchivedHead.gateway_id == gateway_id)
    )
    found = row.one_or_none()
    return None if found is None else (found[0], found[1])


async def _count_events(*, session: AsyncSession, gateway_id: str) -> int:
    count = await session.scalar(
        select(func.count()).select_from(StoredEvent).where(StoredEvent.gateway_id == gateway_id)
    )
    return count or 0
