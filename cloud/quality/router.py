"""HTTP routes of data quality: list and show incidents (reading keys), acknowledge and resolve
them (billing keys; 409 for a step the incident's state does not allow)."""

from typing import Annotated

from fastapi import APIRouter, Query

from cloud.api import BillingDep, DatabaseDep, ReadDep, RowId, error_responses
from cloud.auth.access import Principal
from cloud.incidents.models import IncidentState
from cloud.quality.incidents import acknowledge, get_incident, list_incidents, parse_cursor, resolve
from cloud.quality.schemas import IncidentOut, IncidentPage, IncidentQuery, IncidentStep
from shared.events import UtcTime

router = APIRouter(prefix="/v1/quality", tags=["quality"])


@router.get("/incidents", responses=error_responses(422))
async def get_incidents(
    db: DatabaseDep,
    _: ReadDep,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    device: Annotated[str | None, Query(max_length=128)] = None,
    gateway: Annotated[str | None, Query(max_length=128)] = None,
    state: IncidentState | None = None,
    since: Annotated[UtcTime | None, Query(description="last seen at or after (RFC 3339)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
) -> IncidentPage:
    """Incidents, newest first, filtered by kind, device, gateway, state and last seen."""
    query = IncidentQuery(
        kind=kind,
        device_id=device,
        gateway_id=gateway,
        state=state,
        since=since,
        limit=limit,
        before_id=None if cursor is None else parse_cursor(cursor),
    )
    async with db.transaction() as session:
        return await list_incidents(session=session, query=query)


@router.get("/incidents/{incident_id}", responses=error_responses(404, 422))
async def get_one_incident(incident_id: RowId, db: DatabaseDep, _: ReadDep) -> IncidentOut:
    """One incident with its evidence and lifecycle."""
    async with db.transaction() as session:
        return await get_incident(session=session, incident_id=incident_id)


@router.post("/incidents/{incident_id}/acknowledge", responses=error_responses(404, 409, 422))
async def post_acknowledge(
    incident_id: RowId, db: DatabaseDep, who: BillingDep, body: IncidentStep | None = None
) -> IncidentOut:
    """Acknowledge an open incident (someone is on it), with an optional note."""
    note = None if body is None else body.note
    return await acknowledge(db=db, incident_id=incident_id, by=_name(who), note=note)


@router.post("/incidents/{incident_id}/resolve", responses=error_responses(404, 409, 422))
async def post_resolve(
    incident_id: RowId, db: DatabaseDep, who: BillingDep, body: IncidentStep | None = None
) -> IncidentOut:
    """Resolve an open or acknowledged incident, with an optional note (the reason)."""
    note = None if body is None else body.note
    return await resolve(db=db, incident_id=incident_id, by=_name(who), note=note)


def _name(principal: Principal) -> str:
    return f"key {principal.name}" if principal.name else principal.kind
