"""Scheduled detection of what does not arrive: silent devices and offline gateways.

Both sweeps are set-based: one UPDATE ... RETURNING flags every subject that just crossed its
limit (so a sweep repeated, or run by two collectors at once, flags each subject once), then the
incident sink opens their incidents in bulk (`record_incidents`).

Silence compares the collector's clock with the collector's clock: a device is silent when its
profile has `expected_interval_seconds` and the twin's `last_received_at` is older than that.
Devices never heard (no twin, or a twin only a heartbeat made) are not silent: there is no gateway
to attribute the incident to and no "since"; they show in the twin list with no
`last_received_at`. The flag (`silent_since`) is cleared, and the incident resolved, by the
device's next stored event (`cloud.fleet.twins`).

Offline: a gateway whose last report (batch or heartbeat) is older than
`settings.gateway_offline_after` becomes offline, gets a `gateway_offline` incident and emits
`gateway.offline`. Revoked gateways and direct sources' gateway rows (`source:<name>`: they
report when someone imports, not on a schedule) are never swept.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import ColumnElement, Table, and_, false, or_, select, update
from sqlalchemy.orm import Session

from cloud.catalog.models import Device, DeviceProfile
from cloud.db import Database
from cloud.direct.models import Source
from cloud.fleet.models import OFFLINE, ONLINE, DeviceTwin, GatewayTwin
from cloud.gateways.models import Gateway
from cloud.incidents.models import IncidentKind
from cloud.incidents.sink import IncidentSubject, record_incidents
from cloud.webhooks.outbox import emit
from cloud.webhooks.types import EventType
from shared.canonical import format_time

TWINS = cast(Table, DeviceTwin.__table__)


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one sweep found: subjects newly flagged, incidents opened for them."""

    flagged: int
    opened: int

    def __str__(self) -> str:
        return f"{self.flagged} flagged, {self.opened} incidents opened"


async def sweep_silent_devices(db: Database, now: datetime) -> SweepReport:
    """Flag the devices silent longer than their profile's interval, open `silent_device`."""
    return await db.run_write(lambda session: flag_silent_devices(session, now))


async def sweep_offline_gateways(
    db: Database, now: datetime, *, offline_after: timedelta
) -> SweepReport:
    """Set offline the gateways unheard for `offline_after`, open `gateway_offline`."""
    return await db.run_write(
        lambda session: flag_offline_gateways(session, now, offline_after=offline_after)
    )


def flag_silent_devices(session: Session, now: datetime) -> SweepReport:
    """`sweep_silent_devices` in the caller's write transaction."""
    overdue = _overdue(session, now)
    twins = TWINS.c
    flagged = session.execute(  # Core, not ORM: 100,000 rows come back, no objects needed
        update(TWINS)
        .where(twins.silent_since.is_(None), overdue)
        .values(silent_since=now)
        .returning(twins.device_id, twins.gateway_id, twins.last_received_at)
    ).all()
    times: dict[datetime, str] = {}  # many devices share a batch's received time
    subjects = []
    for device_id, gateway_id, last in sorted(flagged, key=lambda row: row[0]):
        since = times.get(last) or times.setdefault(last, format_time(last))
        subjects.append(
            IncidentSubject(
                gateway_id=gateway_id,
                device_id=device_id,
                detail=f"no data from {device_id} since {since}",
                evidence={"last_received_at": since},
            )
        )
    opened = record_incidents(session, kind=IncidentKind.SILENT_DEVICE, subjects=subjects, at=now)
    return SweepReport(len(flagged), opened)


def _overdue(session: Session, now: datetime) -> ColumnElement[bool]:
    """Twins older than their profile's interval: one clause per profile that has one."""
    intervals = session.execute(
        select(DeviceProfile.id, DeviceProfile.expected_interval_seconds).where(
            DeviceProfile.expected_interval_seconds.is_not(None)
        )
    ).all()
    clauses = [
        and_(
            DeviceTwin.last_received_at < now - timedelta(seconds=seconds or 0),
            DeviceTwin.device_id.in_(select(Device.id).where(Device.profile_id == profile_id)),
        )
        for profile_id, seconds in intervals
    ]
    return or_(*clauses) if clauses else false()


def flag_offline_gateways(
    session: Session, now: datetime, *, offline_after: timedelta
) -> SweepReport:
    """`sweep_offline_gateways` in the caller's write transaction."""
    swept = select(Gateway.id).where(
        Gateway.revoked_at.is_(None), Gateway.id.not_in(select(Source.gateway_id))
    )
    flagged = session.execute(
        update(GatewayTwin)
        .where(
            GatewayTwin.status == ONLINE,
            GatewayTwin.last_report_at < now - offline_after,
            GatewayTwin.gateway_id.in_(swept),
        )
        .values(status=OFFLINE, status_since=now)
        .execution_options(synchronize_session=False)
        .returning(GatewayTwin.gateway_id, GatewayTwin.last_report_at)
    ).all()
    subjects = []
    for gateway_id, last in sorted(flagged):
        since = _time(last)
        subjects.append(
            IncidentSubject(
                gateway_id=gateway_id,
                device_id=None,
                detail=f"no report from gateway {gateway_id} since {since}",
                evidence={"last_report_at": since},
            )
        )
        emit(
            session,
            EventType.GATEWAY_OFFLINE,
            {"gateway_id": gateway_id, "last_report_at": since, "offline_at": format_time(now)},
            at=now,
        )
    opened = record_incidents(session, kind=IncidentKind.GATEWAY_OFFLINE, subjects=subjects, at=now)
    return SweepReport(len(flagged), opened)


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else format_time(moment)
