"""How many incidents of each kind a gateway has had: the one reader every layer may use."""

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.incidents.models import Incident


async def count_incidents(*, session: AsyncSession, gateway_id: str) -> dict[str, int]:
    """Occurrences of each kind for a gateway, resolved ones included (kinds with none left out).

    An occurrence is one bump: a gateway that re-sent a batch twice has one incident, counted 2.
    """
    rows = await session.execute(
        select(Incident.kind, func.sum(Incident.count))
        .where(Incident.gateway_id == gateway_id)
        .group_by(Incident.kind)
        .order_by(Incident.kind)
    )
    return {kind: int(total) for kind, total in rows}
