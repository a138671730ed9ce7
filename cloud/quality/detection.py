"""Data-quality detection on ingest: a change-feed consumer that files incidents for each stored
batch, in the batch's own write transaction (so an incident commits with the events it is about).

Set-based: per batch a fixed number of queries, whatever its size: one seek for the stored end
below the batch and one for the gateway's open seq gap; then, only if some device of the batch is
in the catalog, its devices, their bindings, their accounts, the plans' versions, their metrics
and the devices' profiles (one query each, in chunks of 500 ids). Never one per event, never a
rescan of the events table. The rules themselves are pure (`cloud.quality.rules`).

seq_gap: a batch past the stored end opens (or grows) the gateway's seq_gap incident with the
missing range; a batch filling missing seqs shrinks it, and the last seq filled resolves it
("filled by batch N"). The missing ranges live in the incident's evidence (`missing`). Archived
seqs are not missing: when a batch seems to skip seqs, the gateway's archived head (one primary
key read, only then) is an end below it too.
"""

import functools
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from cloud.catalog.metrics import metric_spec
from cloud.catalog.models import (
    Account,
    Binding,
    Device,
    DeviceProfile,
    Metric,
    Plan,
    PlanVersionRow,
)
from cloud.catalog.plan_terms import load_stored_terms, plan_version
from cloud.incidents.models import ACTIVE_STATES, Incident, IncidentKind
from cloud.incidents.sink import record_incident, resolve_incidents
from cloud.ingest.archived_heads import archived_head
from cloud.ingest.feed import FeedConsumer, StoredBatch
from cloud.ingest.models import StoredEvent
from cloud.quality import gap_ranges
from cloud.quality.rules import AccountTerms, BoundSpan, Catalog, ProfileSessions, Thresholds, find
from cloud.settings import Settings

CHUNK = 500
DEFAULT_THRESHOLDS = Thresholds()


def thresholds(settings: Settings) -> Thresholds:
    """The detection thresholds of the collector's settings."""
    return Thresholds(
        clock_skew_after=settings.clock_skew_after,
        clock_behind_after=settings.clock_behind_after,
        late_arrival_after=settings.late_arrival_after,
    )


def detector(thresholds: Thresholds) -> FeedConsumer:
    """The feed consumer with these thresholds (cloud.wiring subscribes it as "quality")."""
    return functools.partial(detect, thresholds=thresholds)


def detect(
    session: Session, stored: StoredBatch, *, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> None:
    """File the incidents the rules find in one stored batch (nothing for a batch whose events
    were all stored already: only its duplicate delivery, which ingest files)."""
    batch_id = stored.batch_id
    if not stored.events or batch_id is None:
        return
    note_seq_gap(session, stored, batch_id)
    catalog = load_catalog(session, stored.events)
    for finding in find(
        stored.events, received_at=stored.received_at, catalog=catalog, thresholds=thresholds
    ):
        record_incident(
            session,
            kind=finding.kind,
            gateway_id=stored.gateway_id,
            device_id=finding.device_id,
            detail=finding.detail,
            evidence=finding.evidence(batch_id),
            at=stored.received_at,
            first_seq=min(finding.seqs),
            last_seq=max(finding.seqs),
        )


def note_seq_gap(session: Session, stored: StoredBatch, batch_id: int) -> None:
    """Open, grow, shrink or resolve the gateway's seq_gap incident for this batch."""
    seqs = [event.seq for event in stored.events]
    lowest = min(seqs)
    stored_end = session.scalar(
        select(func.max(StoredEvent.seq)).where(
            StoredEvent.gateway_id == stored.gateway_id, StoredEvent.seq < lowest
        )
    )
    new = gap_ranges.skipped(stored_end, lowest)
    if new is not None:
        head = archived_head(session, gateway_id=stored.gateway_id)
        if head is not None and head[0] < lowest:
            new = gap_ranges.skipped(max(stored_end or 0, head[0]), lowest)
    row = session.scalars(
        select(Incident)
        .where(
            Incident.kind == IncidentKind.SEQ_GAP.value,
            Incident.gateway_id == stored.gateway_id,
            Incident.device_id.is_(None),
            Incident.state.in_(ACTIVE_STATES),
        )
        .order_by(Incident.id)
        .limit(1)
    ).first()
    if row is None and new is None:
        return
    known = [(int(a), int(b)) for a, b in ((row.evidence or {}).get("missing", []) if row else [])]
    grown = new is not None and gap_ranges.subtract([new], known) != []
    missing = gap_ranges.subtract(
        gap_ranges.union([*known, *([new] if new else [])]), gap_ranges.runs(seqs)
    )
    missing = missing[: gap_ranges.MAX_RANGES]
    if row is None:
        record_incident(
            session,
            kind=IncidentKind.SEQ_GAP,
            gateway_id=stored.gateway_id,
            detail=_gap_detail(missing),
            evidence=_gap_evidence(missing, batch_id),
            at=stored.received_at,
            first_seq=missing[0][0],
            last_seq=missing[-1][1],
        )
    elif not missing:
        resolve_incidents(
            session,
            kind=IncidentKind.SEQ_GAP,
            gateway_id=stored.gateway_id,
            reason=f"missing seqs filled by batch {batch_id}",
            at=stored.received_at,
        )
    elif missing != known:
        row.evidence = {**(row.evidence or {}), **_gap_evidence(missing, batch_id)}
        row.detail = _gap_detail(missing)
        row.first_seq, row.last_seq = missing[0][0], missing[-1][1]
        if grown:
            row.count += 1
            row.last_seen = max(row.last_seen, stored.received_at)


def _gap_detail(missing: gap_ranges.Ranges) -> str:
    first, last = missing[0]
    return (
        f"{gap_ranges.count(missing)} seq(s) missing in {len(missing)} range(s), "
        f"the first {first}..{last}"
    )


def _gap_evidence(missing: gap_ranges.Ranges, batch_id: int) -> dict[str, Any]:
    return {"missing": [list(pair) for pair in missing], "batch_id": batch_id}


def load_catalog(session: Session, events: Sequence[Any]) -> Catalog:
    """What the rules need to know about the batch's devices (nothing if none is in the catalog)."""
    device_ids = sorted({event.device_id for event in events})
    profile_of = dict(_rows(session, select(Device.id, Device.profile_id), Device.id, device_ids))
    if not profile_of:
        return Catalog()
    earliest = min(event.occurred_at for event in events)
    latest = max(event.occurred_at for event in events)
    bindings: dict[str, list[BoundSpan]] = {}
    overlapping = select(
        Binding.device_id, Binding.account_id, Binding.valid_from, Binding.valid_to
    ).where(
        Binding.valid_from <= latest, or_(Binding.valid_to.is_(None), Binding.valid_to > earliest)
    )
    for device_id, account_id, valid_from, valid_to in _rows(
        session, overlapping, Binding.device_id, list(profile_of)
    ):
        bindings.setdefault(device_id, []).append(BoundSpan(account_id, valid_from, valid_to))
    accounts = _accounts(
        session, sorted({b.account_id for spans in bindings.values() for b in spans})
    )
    metric_ids = sorted(
        {c.metric for a in accounts.values() for v in a.versions for c in v.charges}
    )
    metrics = {
        row.id: metric_spec(row) for (row,) in _rows(session, select(Metric), Metric.id, metric_ids)
    }
    sessions = {
        profile_id: ProfileSessions(frozenset(start_on), frozenset(end_on))
        for profile_id, start_on, end_on in _rows(
            session,
            select(DeviceProfile.id, DeviceProfile.start_on, DeviceProfile.end_on),
            DeviceProfile.id,
            sorted(set(profile_of.values())),
        )
    }
    return Catalog(
        profile_of=profile_of,
        bindings=bindings,
        accounts=accounts,
        metrics=metrics,
        sessions=sessions,
    )


def _accounts(session: Session, account_ids: list[str]) -> dict[str, AccountTerms]:
    found = list(
        _rows(
            session, select(Account.id, Account.time_zone, Account.plan_id), Account.id, account_ids
        )
    )
    plan_ids = sorted({plan_id for _, _, plan_id in found if plan_id is not None})
    versions: dict[str, list[Any]] = {}
    query = (
        select(PlanVersionRow, Plan.currency)
        .join(Plan, Plan.id == PlanVersionRow.plan_id)
        .order_by(PlanVersionRow.plan_id, PlanVersionRow.effective_from)
    )
    for row, currency in _rows(session, query, PlanVersionRow.plan_id, plan_ids):
        terms = load_stored_terms(row.terms, effective_from=row.effective_from)
        versions.setdefault(row.plan_id, []).append(
            plan_version(terms, plan_id=row.plan_id, version=row.version, currency=currency)
        )
    return {
        account_id: AccountTerms(
            time_zone=time_zone,
            versions=tuple(sorted(versions.get(plan_id or "", []), key=_effective)),
        )
        for account_id, time_zone, plan_id in found
    }


def _effective(version: Any) -> datetime:
    effective: datetime = version.effective_from
    return effective


def _rows(
    session: Session, query: Any, column: ColumnElement[Any] | Any, ids: Sequence[str]
) -> Iterable[Any]:
    """`query` restricted to `column IN ids`, in chunks of `CHUNK` ids."""
    for start in range(0, len(ids), CHUNK):
        yield from session.execute(query.where(column.in_(ids[start : start + CHUNK])))
