"""The twins' consumer of the change feed: each stored batch updates its devices' twins.

Set-based and in the batch's own write transaction (`cloud.ingest.feed`): one read of the
batch's devices' twins (FOR UPDATE on PostgreSQL; SQLite has one writer), one upsert statement
writing every device of the batch, and the gateway's twin. The events table is never read:
a twin is the fold (`cloud.fleet.twin_state`) of what was stored since it was created. A device
the silence sweep flagged has its `silent_device` incident resolved by its first new event.
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cloud.fleet.gateway_status import note_report
from cloud.fleet.models import DeviceTwin
from cloud.fleet.twin_state import TwinValues, fold_events, group_by_device
from cloud.incidents.models import IncidentKind
from cloud.incidents.sink import resolve_incidents
from cloud.ingest.feed import StoredBatch

CHUNK = 500  # device ids per IN list (well below SQLite's and asyncpg's parameter limits)
_FED = ("gateway_id", "last_occurred_at", "last_received_at", "last_seq", "state")
_MAPS = ("channels", "points", "counter", "clock_offset_ms")


def update_twins(session: Session, stored: StoredBatch) -> None:
    """Fold the batch into its devices' twins and note the gateway's report (feed consumer)."""
    grouped = group_by_device(stored.events)
    known = _locked_twins(session, list(grouped))
    rows: list[dict[str, Any]] = []
    back: list[str] = []
    for device_id, events in grouped.items():
        twin = known.get(device_id)
        values = fold_events(
            _values_of(twin, stored.gateway_id),
            events,
            gateway_id=stored.gateway_id,
            received_at=stored.received_at,
        )
        rows.append(_row(device_id, values, stored))
        if twin is not None and twin.silent_since is not None:
            back.append(device_id)
    if rows:
        session.execute(_upsert(session.get_bind().dialect.name), rows)
    if back:
        resolve_incidents(
            session,
            kind=IncidentKind.SILENT_DEVICE,
            device_ids=back,
            reason="the device reported again",
            at=stored.received_at,
        )
    note_report(session, gateway_id=stored.gateway_id, at=stored.received_at, kind="batch")


def _locked_twins(session: Session, device_ids: Sequence[str]) -> dict[str, DeviceTwin]:
    found: dict[str, DeviceTwin] = {}
    for start in range(0, len(device_ids), CHUNK):
        chunk = device_ids[start : start + CHUNK]
        rows = session.scalars(
            select(DeviceTwin)
            .where(DeviceTwin.device_id.in_(chunk))
            .order_by(DeviceTwin.device_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        found.update((row.device_id, row) for row in rows)
    return found


def _values_of(twin: DeviceTwin | None, gateway_id: str) -> TwinValues:
    if twin is None:
        return TwinValues(gateway_id=gateway_id)
    return TwinValues(
        gateway_id=twin.gateway_id,
        last_occurred_at=twin.last_occurred_at,
        last_received_at=twin.last_received_at,
        last_seq=twin.last_seq,
        channels=dict(twin.channels or {}),
        points=dict(twin.points or {}),
        counter=dict(twin.counter or {}),
        clock_offset_ms=twin.clock_offset_ms,
    )


def _row(device_id: str, values: TwinValues, stored: StoredBatch) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "gateway_id": values.gateway_id,
        "last_occurred_at": values.last_occurred_at,
        "last_received_at": values.last_received_at,
        "last_seq": values.last_seq,
        "state": values.state,
        "channels": values.channels,
        "points": values.points,
        "counter": values.counter or None,
        "clock_offset_ms": values.clock_offset_ms,
        "silent_since": None,
        "updated_at": stored.received_at,
    }


def _upsert(dialect_name: str) -> Any:
    """INSERT ... ON CONFLICT (device_id) DO UPDATE of the fed columns (health stays as is)."""
    dialect_insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    statement = dialect_insert(DeviceTwin)
    updated = (*_FED, *_MAPS, "silent_since", "updated_at")
    return statement.on_conflict_do_update(
        index_elements=["device_id"],
        set_={name: statement.excluded[name] for name in updated},
    )
