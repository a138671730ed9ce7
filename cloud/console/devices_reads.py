"""What the device page shows, read through the services that own each part.

The twin is `cloud.fleet.reads.device_twin` (GET /v1/devices/{id}/twin), the sessions
`cloud.sessions.service.sessions_overlapping` (GET /v1/devices/{id}/sessions). The events are the
one query of its own: GET /v1/events pages forward in (gateway, seq) order, this page reads a
device's newest events of one gateway's chain backwards (`before` a seq), each with its place in
that chain: whether its prev_hash is the hash of the gateway's event just before it (stored, or
the archived head that stands in for it; the genesis hash for seq 1).
"""

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog.accounts import get_account
from cloud.fleet.reads import device_twin
from cloud.fleet.schemas import DeviceTwinOut
from cloud.ingest.archived_heads import ArchivedHead
from cloud.ingest.models import StoredEvent
from cloud.sessions.service import StoredSession, sessions_overlapping
from shared.events import GENESIS_HASH

EVENT_PAGE = 50
UTC_ZONE = "UTC"


class Link(enum.StrEnum):
    """An event's link to the one before it in its gateway's chain."""

    LINKS = "links"  # prev_hash is the previous event's hash
    BROKEN = "broken"  # it is not
    UNKNOWN = "previous not stored"  # the previous event is neither stored nor the archived head


@dataclass(frozen=True, slots=True)
class ChainedEvent:
    """A stored event and its link to the previous event of its gateway's chain."""

    event: StoredEvent
    link: Link


@dataclass(frozen=True, slots=True)
class DevicePage:
    """Everything the device page shows."""

    twin: DeviceTwinOut
    time_zone: str  # the bound account's, else UTC
    start: datetime  # the sessions' range [start, end)
    end: datetime
    sessions: list[StoredSession]
    gateway_id: str | None  # the chain the events come from
    gateways: list[str]  # every gateway the device's events came through
    events: list[ChainedEvent]  # newest first
    older: int | None  # the `before` of the next (older) page; None: no older event


async def read_device_page(
    *,
    session: AsyncSession,
    device_id: str,
    now: datetime,
    low_battery: int,
    start: datetime,
    end: datetime,
    gateway_id: str | None,
    before: int | None,
) -> DevicePage:
    """The device's page; `DeviceTwinNotFound` if the collector knows nothing of it."""
    twin = await device_twin(session=session, device_id=device_id, now=now, low_battery=low_battery)
    zone = UTC_ZONE
    if twin.account_id is not None:
        zone = (await get_account(session=session, account_id=twin.account_id)).time_zone
    sessions = await sessions_overlapping(
        session=session, start=start, end=end, device_ids=[device_id]
    )
    gateways = list(
        await session.scalars(
            select(StoredEvent.gateway_id)
            .where(StoredEvent.device_id == device_id)
            .distinct()
            .order_by(StoredEvent.gateway_id)
        )
    )
    chain = gateway_id or twin.gateway_id or (gateways[0] if gateways else None)
    events, older = (
        ([], None) if chain is None else await _events(session, device_id, chain, before)
    )
    return DevicePage(
        twin=twin,
        time_zone=zone,
        start=start,
        end=end,
        sessions=sessions,
        gateway_id=chain,
        gateways=gateways,
        events=events,
        older=older,
    )


async def _events(
    session: AsyncSession, device_id: str, gateway_id: str, before: int | None
) -> tuple[list[ChainedEvent], int | None]:
    query = select(StoredEvent).where(
        StoredEvent.gateway_id == gateway_id, StoredEvent.device_id == device_id
    )
    if before is not None:
        query = query.where(StoredEvent.seq < before)
    rows = list(await session.scalars(query.order_by(StoredEvent.seq.desc()).limit(EVENT_PAGE + 1)))
    page = rows[:EVENT_PAGE]
    older = page[-1].seq if len(rows) > EVENT_PAGE else None
    previous = await _hashes_before(session, gateway_id, [row.seq for row in page])
    return [ChainedEvent(row, _link(row, previous)) for row in page], older


async def _hashes_before(session: AsyncSession, gateway_id: str, seqs: list[int]) -> dict[int, str]:
    """The hash of each event just before one of `seqs` in the chain, by its seq."""
    wanted = {seq - 1 for seq in seqs if seq > 1}
    if not wanted:
        return {}
    rows = await session.execute(
        select(StoredEvent.seq, StoredEvent.hash).where(
            StoredEvent.gateway_id == gateway_id, StoredEvent.seq.in_(wanted)
        )
    )
    found = {seq: hash_ for seq, hash_ in rows}
    head = await session.get(ArchivedHead, gateway_id)
    if head is not None and head.seq in wanted:
        found.setdefault(head.seq, head.hash)
    return found


def _link(event: StoredEvent, previous: dict[int, str]) -> Link:
    expected = GENESIS_HASH if event.seq == 1 else previous.get(event.seq - 1)
    if expected is None:
        return Link.UNKNOWN
    return Link.LINKS if event.prev_hash == expected else Link.BROKEN
