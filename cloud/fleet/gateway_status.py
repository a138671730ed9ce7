"""A gateway's online / offline status: every report (batch or heartbeat) sets it online.

A gateway goes offline only through the offline sweep (`cloud.fleet.sweeps`); the first report
after that sets it online again, resolves its `gateway_offline` incident and emits
`gateway.online`, all in the transaction that stored the report. The caller holds the gateway's
row lock (ingest's `lock_gateway`), so two reports of one gateway never race on its twin.
"""

from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.fleet.models import OFFLINE, ONLINE, GatewayTwin
from cloud.incidents.models import IncidentKind
from cloud.incidents.sink import resolve_incidents
from cloud.webhooks.outbox import emit
from cloud.webhooks.types import EventType
from shared.canonical import format_time

ReportKind = Literal["batch", "heartbeat"]


def note_report(
    session: Session, *, gateway_id: str, at: datetime, kind: ReportKind
) -> GatewayTwin:
    """Record that the gateway reported at `at` (received time); online again if it was not."""
    twin = session.scalar(
        select(GatewayTwin).where(GatewayTwin.gateway_id == gateway_id).with_for_update()
    )
    if twin is None:
        twin = GatewayTwin(gateway_id=gateway_id, status=ONLINE, status_since=at)
        session.add(twin)
    elif twin.status == OFFLINE:
        back_online(session, twin=twin, at=at)
    twin.last_report_at = _later(twin.last_report_at, at)
    if kind == "batch":
        twin.last_batch_at = _later(twin.last_batch_at, at)
    else:
        twin.last_heartbeat_at = _later(twin.last_heartbeat_at, at)
    return twin


def back_online(session: Session, *, twin: GatewayTwin, at: datetime) -> None:
    """An offline gateway reported: online, its offline incident resolved, `gateway.online`."""
    offline_since = twin.status_since
    twin.status, twin.status_since = ONLINE, at
    resolve_incidents(
        session,
        kind=IncidentKind.GATEWAY_OFFLINE,
        gateway_id=twin.gateway_id,
        reason="the gateway reported again",
        at=at,
    )
    emit(
        session,
        EventType.GATEWAY_ONLINE,
        {
            "gateway_id": twin.gateway_id,
            "online_at": format_time(at),
            "offline_since": format_time(offline_since),
        },
        at=at,
    )


def _later(known: datetime | None, at: datetime) -> datetime:
    return at if known is None or at > known else known
