"""The steps a person takes on an incident: acknowledge it, resolve it.

    open --acknowledge--> acknowledged --resolve--> resolved
      └─────────────────resolve────────────────────────┘

Anything else (acknowledging an acknowledged or resolved one, resolving a resolved one) is an
`IncidentTransition` (409) naming the state it is in; nothing changes. A resolved incident stays
resolved: the next occurrence of its subject opens a new one.
"""

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.errors import IncidentNotFound, IncidentTransition
from cloud.incidents.models import Incident, IncidentState
from cloud.incidents.sink import close, incident_data
from cloud.incidents.text import storable
from cloud.webhooks.outbox import emit
from cloud.webhooks.types import EventType

_ALLOWED = {
    "acknowledge": frozenset({IncidentState.OPEN.value}),
    "resolve": frozenset({IncidentState.OPEN.value, IncidentState.ACKNOWLEDGED.value}),
}


def acknowledge_incident(
    session: Session, *, incident_id: int, by: str, note: str | None, at: datetime | None = None
) -> Incident:
    """Mark an open incident acknowledged (someone is on it); 409 from any other state."""
    row = _locked(session, incident_id, step="acknowledge")
    row.state = IncidentState.ACKNOWLEDGED.value
    row.acknowledged_at = at or datetime.now(UTC)
    row.acknowledged_by = storable(by)
    row.acknowledged_note = None if note is None else storable(note)
    return row


def resolve_incident(
    session: Session, *, incident_id: int, by: str, note: str | None, at: datetime | None = None
) -> Incident:
    """Resolve an open or acknowledged incident by hand; emits `incident.resolved`."""
    row = _locked(session, incident_id, step="resolve")
    at = at or datetime.now(UTC)
    close(row, by=by, reason=note or f"resolved by {by}", at=at)
    emit(session, EventType.INCIDENT_RESOLVED, incident_data(row), at=at)
    return row


def _locked(session: Session, incident_id: int, *, step: str) -> Incident:
    row = session.scalars(
        select(Incident).where(Incident.id == incident_id).with_for_update()
    ).first()
    if row is None:
        raise IncidentNotFound(f"no incident {incident_id}", detail={"incident_id": incident_id})
    if row.state not in _ALLOWED[step]:
        raise IncidentTransition(
            f"incident {incident_id} is {row.state}: it cannot be {step}d",
            detail={"incident_id": incident_id, "state": row.state, "step": step},
        )
    return row
