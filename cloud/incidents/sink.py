"""The incident sink: record, bump and resolve incidents in the caller's own transaction.

Any layer may call it (it imports only the foundation and the webhook outbox, both below it), so
ingest, direct sources, quality detection and fleet sweeps file their incidents the same way.
A subject is `(kind, gateway_id, device_id)`: while its incident is open or acknowledged, a new
occurrence bumps it (last seen, count, evidence merged and bounded) instead of adding a row.
Each opening emits `incident.opened` and each resolution `incident.resolved` through the outbox,
in the same transaction, so a webhook is sent exactly for the incidents that committed.

Functions take a blocking `Session` (they run inside `Database.run_write`); async callers use
`await session.run_sync(...)`. Two writers racing to open the same subject may open it twice on
PostgreSQL when they hold no common lock (ingest holds the gateway's row lock, so its own
incidents cannot race); the next occurrence bumps the older one and both resolve together.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, insert, select
from sqlalchemy.orm import Session

from cloud.incidents.evidence import bounded_evidence, merge_evidence
from cloud.incidents.models import ACTIVE_STATES, Incident, IncidentKind, IncidentState
from cloud.incidents.text import storable
from cloud.webhooks.outbox import emit, emit_many
from cloud.webhooks.types import EventType

CHUNK = 500  # ids or device ids per IN (...) list
COLLECTOR = "collector"  # who resolves what the collector resolves by itself
_INCIDENTS = cast(Table, Incident.__table__)


@dataclass(frozen=True, slots=True)
class IncidentSubject:
    """One subject of a set-based recording (a sweep): a device or a whole gateway."""

    gateway_id: str
    device_id: str | None
    detail: str
    evidence: dict[str, Any] | None = None


def record_incident(
    session: Session,
    *,
    kind: IncidentKind,
    gateway_id: str,
    device_id: str | None = None,
    detail: str,
    evidence: dict[str, Any] | None = None,
    at: datetime | None = None,
    first_seq: int | None = None,
    last_seq: int | None = None,
    occurrences: int = 1,
) -> int:
    """Bump the active incident of the subject by `occurrences`, else open one with that count
    (emitting `incident.opened`); a tally filed at once (bad signatures) passes its count."""
    at = at or datetime.now(UTC)
    row = session.scalars(
        select(Incident)
        .where(_subject(kind, gateway_id, device_id), Incident.state.in_(ACTIVE_STATES))
        .order_by(Incident.id)
        .limit(1)
    ).first()
    if row is not None:
        row.last_seen = max(row.last_seen, at)
        row.count += occurrences
        row.detail = storable(detail)
        row.evidence = merge_evidence(row.evidence, evidence)
        row.first_seq = _least(row.first_seq, first_seq)
        row.last_seq = _greatest(row.last_seq, last_seq)
        return row.id
    row = Incident(
        gateway_id=gateway_id,
        device_id=device_id,
        kind=kind.value,
        state=IncidentState.OPEN.value,
        detail=storable(detail),
        first_seq=first_seq,
        last_seq=last_seq,
        first_seen=at,
        last_seen=at,
        count=occurrences,
        evidence=bounded_evidence(evidence),
    )
    session.add(row)
    session.flush()
    emit(session, EventType.INCIDENT_OPENED, incident_data(row), at=at)
    return row.id


def record_incidents(
    session: Session, *, kind: IncidentKind, subjects: Sequence[IncidentSubject], at: datetime
) -> int:
    """Open an incident for each subject that has no active one; how many were opened.

    Set-based, for sweeps over many devices: one query for the kind's active subjects, one bulk
    insert. A subject already active is left as it is (a sweep finding the same silent device
    again is not a new occurrence).
    """
    if not subjects:
        return 0
    active = {
        (gateway_id, device_id)
        for gateway_id, device_id in session.execute(
            select(Incident.gateway_id, Incident.device_id).where(
                Incident.kind == kind.value, Incident.state.in_(ACTIVE_STATES)
            )
        )
    }
    fresh: dict[tuple[str, str | None], IncidentSubject] = {}
    for subject in subjects:
        key = (subject.gateway_id, subject.device_id)
        if key not in active:
            fresh.setdefault(key, subject)
    if not fresh:
        return 0
    values = [_new_row(kind, subject, at) for subject in fresh.values()]
    # Core executemany without RETURNING: a first sweep over 100,000 devices opens 100,000
    # incidents at once, and RETURNING in parameter order makes SQLite insert row by row.
    session.execute(insert(_INCIDENTS), values)
    emit_many(session, EventType.INCIDENT_OPENED, _opened(session, kind, values, at), at=at)
    return len(fresh)


def _opened(
    session: Session, kind: IncidentKind, values: list[dict[str, Any]], at: datetime
) -> Iterator[dict[str, Any]]:
    """`incident_data` of the rows `record_incidents` just inserted, read back by subject.

    A generator: `emit_many` reads it only when an endpoint wants `incident.opened`, so without
    webhooks the read-back costs nothing. The subjects were not active before the insert, so the
    active incident of each subject first seen at `at` is the one just opened.
    """
    ids = {
        (gateway_id, device_id): incident_id
        for incident_id, gateway_id, device_id in session.execute(
            select(Incident.id, Incident.gateway_id, Incident.device_id).where(
                Incident.kind == kind.value,
                Incident.state == IncidentState.OPEN.value,
                Incident.first_seen == at,
            )
        )
    }
    for row in values:
        data = {key: row.get(key) for key in _DATA_FIELDS}
        data["id"] = ids[(row["gateway_id"], row["device_id"])]
        yield data


def resolve_incidents(
    session: Session,
    *,
    kind: IncidentKind,
    gateway_id: str | None = None,
    device_ids: Sequence[str] | None = None,
    reason: str,
    at: datetime | None = None,
    by: str = COLLECTOR,
) -> int:
    """Resolve the active incidents of `kind` (of the gateway, of the devices); how many.

    `device_ids=None` means every device (and the gateway's own incidents); an empty sequence
    resolves nothing. Each resolution emits `incident.resolved`.
    """
    at = at or datetime.now(UTC)
    filters: list[ColumnElement[bool]] = [
        Incident.kind == kind.value,
        Incident.state.in_(ACTIVE_STATES),
    ]
    if gateway_id is not None:
        filters.append(Incident.gateway_id == gateway_id)
    if device_ids is None:
        chunks: list[list[str] | None] = [None]
    else:
        unique = sorted(set(device_ids))
        chunks = [unique[start : start + CHUNK] for start in range(0, len(unique), CHUNK)]
    resolved = 0
    for chunk in chunks:
        where = filters if chunk is None else [*filters, Incident.device_id.in_(chunk)]
        for row in session.scalars(select(Incident).where(*where).order_by(Incident.id)):
            close(row, by=by, reason=reason, at=at)
            emit(session, EventType.INCIDENT_RESOLVED, incident_data(row), at=at)
            resolved += 1
    return resolved


def close(row: Incident, *, by: str, reason: str, at: datetime) -> None:
    """Mark `row` resolved (the caller emits `incident.resolved`)."""
    row.state = IncidentState.RESOLVED.value
    row.resolved_at = at
    row.resolved_by = storable(by)
    row.resolved_reason = storable(reason)


_DATA_FIELDS = (
    "id",
    "kind",
    "state",
    "gateway_id",
    "device_id",
    "detail",
    "first_seen",
    "last_seen",
    "count",
    "resolved_at",
    "resolved_reason",
)


def incident_data(row: Incident) -> dict[str, Any]:
    """What webhooks carry about an incident (its evidence stays behind the API)."""
    return {key: getattr(row, key) for key in _DATA_FIELDS}


def _subject(kind: IncidentKind, gateway_id: str, device_id: str | None) -> ColumnElement[bool]:
    device = Incident.device_id.is_(None) if device_id is None else Incident.device_id == device_id
    return and_(Incident.kind == kind.value, Incident.gateway_id == gateway_id, device)


def _new_row(kind: IncidentKind, subject: IncidentSubject, at: datetime) -> dict[str, Any]:
    return {
        "gateway_id": subject.gateway_id,
        "device_id": subject.device_id,
        "kind": kind.value,
        "state": IncidentState.OPEN.value,
        "detail": storable(subject.detail),
        "first_seen": at,
        "last_seen": at,
        "count": 1,
        "evidence": bounded_evidence(subject.evidence),
    }


def _least(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _greatest(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)
