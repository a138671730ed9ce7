"""Data-quality records and queries: incidents per gateway and gaps in its seq run."""

import re
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from cloud.ingest.models import StoredEvent
from cloud.quality.models import Incident, IncidentKind

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def add_incident(
    *,
    session: Session | AsyncSession,
    gateway_id: str,
    kind: IncidentKind,
    detail: str,
    first_seq: int | None = None,
    last_seq: int | None = None,
) -> None:
    """Add one incident to the session's transaction."""
    session.add(
        Incident(
            gateway_id=gateway_id,
            kind=kind.value,
            detail=storable(detail),
            first_seq=first_seq,
            last_seq=last_seq,
            created_at=datetime.now(UTC),
        )
    )


def storable(text: str) -> str:
    """`text` with U+0000 and lone surrogates shown as U+FFFD: an incident quotes what it
    refused, and what it refused may hold what the database cannot store."""
    return _UNSTORABLE.sub("\ufffd", text)


async def count_incidents(*, session: AsyncSession, gateway_id: str) -> dict[str, int]:
    """How many incidents of each kind a gateway has had (kinds with none are left out)."""
    rows = await session.execute(
        select(Incident.kind, func.count())
        .where(Incident.gateway_id == gateway_id)
        .group_by(Incident.kind)
        .order_by(Incident.kind)
    )
    return {kind: count for kind, count in rows}


async def find_seq_gaps(*, session: AsyncSession, gateway_id: str) -> list[tuple[int, int]]:
    """The seq ranges missing between 1 and the gateway's last stored seq, inclusive."""
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
    return [(first, last) for first, last in rows]
