"""Reading and stepping incidents for the API and the CLI (the sink writes them).

Lists are keyset pages in id order, newest first: an incident's id never changes, so a page
boundary stays put while incidents are bumped (ordering by last seen would move them between
pages). Steps run in one write transaction with the sink's lifecycle rules.
"""

import functools

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.db import Database
from cloud.errors import IncidentNotFound, InvalidParameters
from cloud.incidents.lifecycle import acknowledge_incident, resolve_incident
from cloud.incidents.models import Incident
from cloud.quality.schemas import IncidentOut, IncidentPage, IncidentQuery

MAX_CURSOR = 2**63 - 1


async def list_incidents(*, session: AsyncSession, query: IncidentQuery) -> IncidentPage:
    """One page of incidents matching `query`, newest first."""
    statement = select(Incident).order_by(Incident.id.desc())
    if query.kind is not None:
        statement = statement.where(Incident.kind == query.kind)
    if query.device_id is not None:
        statement = statement.where(Incident.device_id == query.device_id)
    if query.gateway_id is not None:
        statement = statement.where(Incident.gateway_id == query.gateway_id)
    if query.state is not None:
        statement = statement.where(Incident.state == query.state.value)
    if query.since is not None:
        statement = statement.where(Incident.last_seen >= query.since)
    if query.before_id is not None:
        statement = statement.where(Incident.id < query.before_id)
    rows = list(await session.scalars(statement.limit(query.limit + 1)))
    page = rows[: query.limit]
    more = len(rows) > query.limit
    return IncidentPage(
        incidents=[IncidentOut.model_validate(row) for row in page],
        next_cursor=str(page[-1].id) if more else None,
    )


async def get_incident(*, session: AsyncSession, incident_id: int) -> IncidentOut:
    """One incident; `IncidentNotFound` otherwise."""
    row = await session.get(Incident, incident_id)
    if row is None:
        raise IncidentNotFound(f"no incident {incident_id}", detail={"incident_id": incident_id})
    return IncidentOut.model_validate(row)


async def acknowledge(*, db: Database, incident_id: int, by: str, note: str | None) -> IncidentOut:
    """Acknowledge an open incident; `IncidentTransition` from any other state."""
    step = functools.partial(acknowledge_incident, incident_id=incident_id, by=by, note=note)
    return await db.run_write(lambda session: IncidentOut.model_validate(step(session)))


async def resolve(*, db: Database, incident_id: int, by: str, note: str | None) -> IncidentOut:
    """Resolve an open or acknowledged incident; `IncidentTransition` if it is resolved."""
    step = functools.partial(resolve_incident, incident_id=incident_id, by=by, note=note)
    return await db.run_write(lambda session: IncidentOut.model_validate(step(session)))


def parse_cursor(text: str) -> int:
    """A `next_cursor` given back; `InvalidParameters` if it is not one."""
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_CURSOR:
        raise InvalidParameters(
            "cursor is not a value returned as next_cursor",
            detail={"errors": [{"loc": ["query", "cursor"], "msg": "invalid cursor"}]},
        )
    return int(text)
