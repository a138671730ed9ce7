"""Receiving a gateway's signed heartbeat (the contract is shared/heartbeat.py).

The body is read with a byte cap before anything parses it; the gateway must be registered and
not revoked (403), the envelope signed by its current key (401), valid (422) and sent within
MAX_SKEW of the collector's clock (401: a replayed or badly skewed heartbeat proves nothing
about now). Nothing is written for a refused heartbeat.

An accepted heartbeat is a report: the gateway is online (`gateway_status.note_report`). Only
the newest by `sent_at` is kept: an older one (delivered late) is accepted and changes nothing
else. The kept one is the gateway twin's `heartbeat`, and each device report is copied into its
device twin (battery, firmware, clock offset, health). A device whose battery drops below the
threshold gets a `low_battery` incident; it is resolved when a heartbeat reports it at or above.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cloud.errors import (
    GatewayRevoked,
    InvalidHeartbeat,
    InvalidHeartbeatSignature,
    StaleHeartbeat,
)
from cloud.fleet.gateway_status import note_report
from cloud.fleet.models import DeviceTwin
from cloud.gateways.models import Gateway
from cloud.incidents.models import IncidentKind
from cloud.incidents.sink import IncidentSubject, record_incidents, resolve_incidents
from cloud.ingest.store import lock_gateway, unknown_gateway
from shared.canonical import format_time
from shared.errors import InvalidSignature, MalformedHeartbeat
from shared.heartbeat import DeviceReport, Heartbeat, verify_heartbeat
from shared.signing import load_public_key

MAX_SKEW = timedelta(seconds=300)


@dataclass(frozen=True, slots=True)
class HeartbeatOutcome:
    """What receiving a heartbeat did."""

    heartbeat: Heartbeat
    received_at: datetime
    current: bool  # False: an older heartbeat than the stored one, accepted and not kept
    low_battery_opened: int
    low_battery_resolved: int


def gateway_key(gateway: Gateway | None, gateway_id: str) -> Ed25519PublicKey:
    """The key a heartbeat of `gateway_id` must verify under; 403 if unknown or revoked."""
    if gateway is None:
        raise unknown_gateway(gateway_id)
    if gateway.revoked_at is not None:
        raise GatewayRevoked(
            f"gateway {gateway_id!r} was revoked: its heartbeats are refused",
            detail={"gateway_id": gateway_id},
        )
    return load_public_key(gateway.public_key_pem.encode("ascii"))


def verified_heartbeat(
    key: Ed25519PublicKey, body: bytes, *, gateway_id: str, now: datetime
) -> Heartbeat:
    """The heartbeat of a signed envelope (401 bad signature or stale, 422 invalid)."""
    try:
        heartbeat = verify_heartbeat(key, body, gateway_id=gateway_id)
    except InvalidSignature as exc:
        raise InvalidHeartbeatSignature(str(exc), detail={"gateway_id": gateway_id}) from exc
    except MalformedHeartbeat as exc:
        raise InvalidHeartbeat(str(exc), detail={"gateway_id": gateway_id}) from exc
    if abs(heartbeat.sent_at - now) > MAX_SKEW:
        raise StaleHeartbeat(
            f"heartbeat sent_at {format_time(heartbeat.sent_at)} is more than "
            f"{int(MAX_SKEW.total_seconds())} s from the collector's clock {format_time(now)}",
            detail={"sent_at": format_time(heartbeat.sent_at), "received_at": format_time(now)},
        )
    return heartbeat


def store_heartbeat(
    session: Session, heartbeat: Heartbeat, *, received_at: datetime, low_battery: int
) -> HeartbeatOutcome:
    """Note the report and keep the heartbeat if it is the newest (in a write transaction)."""
    lock_gateway(session, gateway_id=heartbeat.gateway_id)  # serialized with its batches
    twin = note_report(session, gateway_id=heartbeat.gateway_id, at=received_at, kind="heartbeat")
    if twin.heartbeat_sent_at is not None and heartbeat.sent_at <= twin.heartbeat_sent_at:
        return HeartbeatOutcome(heartbeat, received_at, False, 0, 0)
    twin.heartbeat = heartbeat.content()
    twin.heartbeat_sent_at = heartbeat.sent_at
    opened, resolved = _copy_devices(session, heartbeat, at=received_at, low_battery=low_battery)
    return HeartbeatOutcome(heartbeat, received_at, True, opened, resolved)


def _copy_devices(
    session: Session, heartbeat: Heartbeat, *, at: datetime, low_battery: int
) -> tuple[int, int]:
    """Each device report into its twin (one read, one upsert); low battery opened / resolved."""
    reports = {report.device_id: report for report in heartbeat.devices}
    if not reports:
        return 0, 0
    ids = sorted(reports)
    known = {
        twin.device_id: twin.battery
        for twin in session.scalars(
            select(DeviceTwin)
            .where(DeviceTwin.device_id.in_(ids))
            .order_by(DeviceTwin.device_id)
            .with_for_update()
        )
    }
    rows = [_health_row(reports[device_id], heartbeat, at) for device_id in ids]
    session.execute(_upsert(session.get_bind().dialect.name), rows)
    dropped, recovered = [], []
    for device_id in ids:
        battery = _battery(reports[device_id])
        if battery is None:
            continue
        before = known.get(device_id)
        if battery < low_battery and (before is None or before >= low_battery):
            dropped.append(
                IncidentSubject(
                    gateway_id=heartbeat.gateway_id,
                    device_id=device_id,
                    detail=f"battery at {battery} %, below {low_battery} %",
                    evidence={"battery": battery, "sent_at": format_time(heartbeat.sent_at)},
                )
            )
        elif battery >= low_battery and before is not None and before < low_battery:
            recovered.append(device_id)
    opened = record_incidents(session, kind=IncidentKind.LOW_BATTERY, subjects=dropped, at=at)
    resolved = 0
    if recovered:
        resolved = resolve_incidents(
            session,
            kind=IncidentKind.LOW_BATTERY,
            device_ids=recovered,
            reason=f"battery back at or above {low_battery} %",
            at=at,
        )
    return opened, resolved


def _battery(report: DeviceReport) -> int | None:
    return None if report.last_values is None else report.last_values.battery


def _health_row(report: DeviceReport, heartbeat: Heartbeat, at: datetime) -> dict[str, Any]:
    values = report.last_values
    health = report.model_dump(mode="json", exclude={"device_id", "last_values"})
    return {
        "device_id": report.device_id,
        "gateway_id": heartbeat.gateway_id,
        "channels": {},
        "points": {},
        "battery": None if values is None else values.battery,
        "firmware": None if values is None else values.firmware,
        "clock_offset_ms": None if values is None else values.clock_offset_ms,
        "health": health,
        "health_at": heartbeat.sent_at,
        "updated_at": at,
    }


def _upsert(dialect_name: str) -> Any:
    """INSERT ... ON CONFLICT DO UPDATE of the heartbeat's columns; unreported values stay."""
    dialect_insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    statement = dialect_insert(DeviceTwin)
    table = DeviceTwin
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=["device_id"],
        set_={
            "battery": _coalesce(excluded.battery, table.battery),
            "firmware": _coalesce(excluded.firmware, table.firmware),
            "clock_offset_ms": _coalesce(excluded.clock_offset_ms, table.clock_offset_ms),
            "health": excluded.health,
            "health_at": excluded.health_at,
            "updated_at": excluded.updated_at,
        },
    )


def _coalesce(new: Any, old: Any) -> Any:
    return func.coalesce(new, old)
