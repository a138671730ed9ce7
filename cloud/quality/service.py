"""Data-quality readers: incidents per gateway and gaps in its seq run."""

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.incidents.counts import count_incidents
from cloud.ingest.models import StoredEvent

__all__ = ["count_incidents", "find_seq_gaps"]


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
