"""Devices: the twin, sessions on a timeline with their close reasons, events with their place in
the chain.

GET /console/devices?q= lists catalog devices by id or name; GET /console/devices/{id} shows one
(cloud.console.devices_reads): sessions of the last 30 days or of ?from=&to= (at most 92 days),
events newest first, 50 a page, older ones with ?before=<seq> (and ?gateway= for another chain).
"""

from datetime import datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from markupsafe import Markup
from pydantic import AwareDatetime
from sqlalchemy import or_, select

from cloud.api import MAX_ROW_ID, DatabaseDep
from cloud.catalog.models import Device
from cloud.console.access import ConsoleReadDep
from cloud.console.charts import Span, timeline
from cloud.console.devices_reads import EVENT_PAGE, Link, read_device_page
from cloud.console.logins import now_utc
from cloud.console.pages import api_link, render
from cloud.domain import CloseReason
from cloud.errors import InvalidParameters
from cloud.sessions.service import StoredSession

router = APIRouter(prefix="/console/devices", include_in_schema=False)

DeviceIdPath = Annotated[str, Path(min_length=1, max_length=128)]
DEFAULT_DAYS = 30
MAX_DAYS = 92
MAX_QUERY = 64
MAX_RESULTS = 50
TONES = {
    CloseReason.STILL_OPEN: "open",
    CloseReason.DEACTIVATED: "ended",
    CloseReason.TIMED_OUT: "other",
    CloseReason.SUPERSEDED: "other",
}
NO_CHANNEL = "(no channel)"


@router.get("")
async def get_devices(
    request: Request,
    db: DatabaseDep,
    live: ConsoleReadDep,
    q: Annotated[str, Query(max_length=MAX_QUERY)] = "",
) -> Response:
    """Catalog devices whose id or name contains `q` (the first 50 by id)."""
    query = select(Device).order_by(Device.id).limit(MAX_RESULTS)
    text = q.strip()
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(Device.id.ilike(pattern, escape="\\"), Device.name.ilike(pattern, escape="\\"))
        )
    async with db.transaction() as session:
        devices = list(await session.scalars(query))
    return render(
        request,
        "devices/search.html",
        user=live,
        q=q,
        devices=devices,
        max_query=MAX_QUERY,
        max_results=MAX_RESULTS,
        source=api_link(request.app, "GET", "/v1/devices"),
    )


@router.get("/{device_id:path}")
async def get_device_page(
    request: Request,
    device_id: DeviceIdPath,
    db: DatabaseDep,
    live: ConsoleReadDep,
    start: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    end: Annotated[AwareDatetime | None, Query(alias="to")] = None,
    gateway: Annotated[str | None, Query(max_length=128)] = None,
    before: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
) -> Response:
    """One device: its twin, its sessions on a timeline, its newest events in their chain."""
    now = now_utc()
    lower, upper = session_range(start, end, now=now)
    async with db.transaction() as session:
        page = await read_device_page(
            session=session,
            device_id=device_id,
            now=now,
            low_battery=request.app.state.settings.low_battery,
            start=lower,
            end=upper,
            gateway_id=gateway,
            before=before,
        )
    app = request.app
    shown = f"/v1/devices/{device_id}"
    zone = ZoneInfo(page.time_zone)
    return render(
        request,
        "devices/device.html",
        user=live,
        page=page,
        twin=page.twin,
        channels=channel_rows(page.twin.channels),
        zone=zone,
        event_page=EVENT_PAGE,
        links_ok=Link.LINKS,
        sessions_svg=sessions_timeline(page.sessions, page.start, page.end, page.time_zone, now),
        links={
            "twin": api_link(app, "GET", "/v1/devices/{device_id}/twin", shown=f"{shown}/twin"),
            "sessions": api_link(
                app,
                "GET",
                "/v1/devices/{device_id}/sessions",
                f"start={lower.isoformat()}&end={upper.isoformat()}",
                shown=f"{shown}/sessions",
            ),
            "events": api_link(
                app, "GET", "/v1/events", f"gateway_id={page.gateway_id}&device_id={device_id}"
            ),
        },
    )


def channel_rows(channels: dict[str, Any]) -> list[tuple[str, str, datetime | None, str]]:
    """(channel, state, since, event) of each channel of the twin, by channel."""
    rows = []
    for channel, value in sorted(channels.items()):
        since = value.get("since")
        moment = datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
        rows.append((channel, str(value.get("state")), moment, str(value.get("event") or "-")))
    return rows


def session_range(
    start: datetime | None, end: datetime | None, *, now: datetime
) -> tuple[datetime, datetime]:
    """[from, to) of the sessions shown: the last 30 days by default, at most 92 days."""
    upper = end or now
    lower = start or upper - timedelta(days=DEFAULT_DAYS)
    if lower >= upper or upper - lower > timedelta(days=MAX_DAYS):
        raise InvalidParameters(
            f"from must be before to, at most {MAX_DAYS} days apart",
            detail={"from": lower.isoformat(), "to": upper.isoformat(), "max_days": MAX_DAYS},
        )
    return lower, upper


def sessions_timeline(
    sessions: list[StoredSession], start: datetime, end: datetime, time_zone: str, now: datetime
) -> Markup:
    """A bar per session on its channel's row, labelled with its close reason."""
    zone = ZoneInfo(time_zone)

    def local(moment: datetime) -> str:
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    spans = [
        Span(
            row=stored.channel or NO_CHANNEL,
            start=stored.started_at,
            end=stored.ended_at or min(now, end),
            label=stored.close_reason.value,
            title=(
                f"session {stored.id} ({stored.name}): {local(stored.started_at)} to "
                f"{local(stored.ended_at) if stored.ended_at else 'now'}, "
                f"{stored.close_reason.value}, {len(stored.events)} events"
            ),
            tone=TONES.get(stored.close_reason, "other"),
        )
        for stored in sessions
    ]
    caption = f"sessions from {local(start)} to {local(end)}, {time_zone}"
    return timeline(
        spans=spans, start=start, end=end, time_zone=time_zone, chart_id="sessions", caption=caption
    )
