"""Data quality: incidents with filters and evidence; acknowledge and resolve.

The list and the incident are read with `cloud.quality.incidents` (what GET /v1/quality/incidents
answers); the steps are its `acknowledge` and `resolve` (the API's POST routes), by the console
user ("console <name>"). A step the incident's state does not allow shows the page again with
the error (409).
"""

import enum
import json
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from cloud.api import DatabaseDep, RowId
from cloud.console.access import ConsoleBillingDep, ConsoleReadDep
from cloud.console.forms import field, read_form
from cloud.console.logins import LiveSession
from cloud.console.pages import api_link, render
from cloud.errors import IncidentTransition, InvalidParameters
from cloud.incidents.models import IncidentKind, IncidentState
from cloud.quality.incidents import acknowledge, get_incident, list_incidents, parse_cursor
from cloud.quality.incidents import resolve as resolve_incident
from cloud.quality.schemas import MAX_NOTE, IncidentOut, IncidentQuery

router = APIRouter(prefix="/console/quality", include_in_schema=False)

PAGE_SIZE = 50
E = TypeVar("E", bound=enum.StrEnum)
CHANGERS = frozenset({"billing", "admin"})


@router.get("")
async def get_incidents_page(
    request: Request,
    db: DatabaseDep,
    live: ConsoleReadDep,
    state: Annotated[str | None, Query(max_length=16)] = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    device: Annotated[str | None, Query(max_length=128)] = None,
    gateway: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """Incidents, newest first, filtered by state, kind, device and gateway; one page (the
    filter form sends an empty value for "any")."""
    chosen_state = _choice("state", state, IncidentState)
    chosen_kind = _choice("kind", kind, IncidentKind)
    filters = {
        "state": chosen_state.value if chosen_state else "",
        "kind": chosen_kind.value if chosen_kind else "",
        "device": device or "",
        "gateway": gateway or "",
    }
    query = IncidentQuery(
        kind=filters["kind"] or None,
        device_id=device or None,
        gateway_id=gateway or None,
        state=chosen_state,
        limit=limit,
        before_id=None if cursor is None else parse_cursor(cursor),
    )
    async with db.transaction() as session:
        page = await list_incidents(session=session, query=query)
    chosen = {name: value for name, value in filters.items() if value}
    shown = "&".join(f"{name}={value}" for name, value in chosen.items())
    following = page.next_cursor and urlencode(
        {**chosen, "limit": limit, "cursor": page.next_cursor}
    )
    return render(
        request,
        "quality/list.html",
        user=live,
        page=page,
        filters=filters,
        following=following,
        states=[s.value for s in IncidentState],
        kinds=[k.value for k in IncidentKind],
        source=api_link(request.app, "GET", "/v1/quality/incidents", shown),
    )


@router.get("/{incident_id}")
async def get_incident_page(
    request: Request, incident_id: RowId, db: DatabaseDep, live: ConsoleReadDep
) -> Response:
    """One incident with its evidence and lifecycle; the steps for billing and admin."""
    async with db.transaction() as session:
        incident = await get_incident(session=session, incident_id=incident_id)
    return _incident_page(request, live, incident)


@router.post("/{incident_id}/acknowledge")
async def post_acknowledge(
    request: Request, incident_id: RowId, db: DatabaseDep, live: ConsoleBillingDep
) -> Response:
    """Acknowledge an open incident, with an optional note."""
    note = await _note(request)
    try:
        await acknowledge(db=db, incident_id=incident_id, by=_by(live), note=note)
    except IncidentTransition as refused:
        return await _refused(request, db, live, incident_id, refused)
    return _back(request, incident_id)


@router.post("/{incident_id}/resolve")
async def post_resolve(
    request: Request, incident_id: RowId, db: DatabaseDep, live: ConsoleBillingDep
) -> Response:
    """Resolve an open or acknowledged incident, with an optional note (the reason)."""
    note = await _note(request)
    try:
        await resolve_incident(db=db, incident_id=incident_id, by=_by(live), note=note)
    except IncidentTransition as refused:
        return await _refused(request, db, live, incident_id, refused)
    return _back(request, incident_id)


def _incident_page(
    request: Request,
    live: LiveSession,
    incident: IncidentOut,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    state = incident.state.value
    path = "/v1/quality/incidents/{incident_id}"
    return render(
        request,
        "quality/incident.html",
        status_code=status_code,
        user=live,
        incident=incident,
        evidence=_evidence_rows(incident.evidence),
        may_change=live.role in CHANGERS,
        may_acknowledge=state == IncidentState.OPEN.value,
        may_resolve=state != IncidentState.RESOLVED.value,
        max_note=MAX_NOTE,
        error=error,
        source=api_link(request.app, "GET", path, shown=f"/v1/quality/incidents/{incident.id}"),
    )


def _choice(name: str, value: str | None, choices: type[E]) -> E | None:
    """The enum member named by a filter (None for empty); `InvalidParameters` otherwise."""
    if not value:
        return None
    try:
        return choices(value)
    except ValueError:
        allowed = ", ".join(member.value for member in choices)
        raise InvalidParameters(
            f"{name} is one of {allowed}",
            detail={"errors": [{"loc": ["query", name], "msg": f"not one of {allowed}"}]},
        ) from None


def _evidence_rows(evidence: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Each evidence key with its value as JSON (lists and objects as the API answers them)."""
    if not evidence:
        return []
    return [(key, json.dumps(value, default=str)) for key, value in sorted(evidence.items())]


async def _note(request: Request) -> str | None:
    note = field(await read_form(request), "note", max_length=MAX_NOTE).strip()
    return note or None


async def _refused(
    request: Request,
    db: DatabaseDep,
    live: LiveSession,
    incident_id: int,
    error: IncidentTransition,
) -> Response:
    async with db.transaction() as session:
        incident = await get_incident(session=session, incident_id=incident_id)
    return _incident_page(request, live, incident, error=error.message, status_code=409)


def _back(request: Request, incident_id: int) -> Response:
    root = str(request.scope.get("root_path", "")).rstrip("/")
    return RedirectResponse(f"{root}/console/quality/{incident_id}", status_code=303)


def _by(live: LiveSession) -> str:
    return f"console {live.user_name}"
