"""HTTP routes of this package: a device's sessions (reading key), the refresh (billing key)."""

from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel
from sqlalchemy import select

from cloud.api import BillingDep, DatabaseDep, ReadDep, error_responses
from cloud.catalog.models import Device
from cloud.domain import CloseReason
from cloud.errors import DeviceNotFound, InvalidParameters
from cloud.session_work import EPOCH
from cloud.sessions.service import StoredSession, refresh_sessions, sessions_overlapping

router = APIRouter(tags=["sessions"])

FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


class EventKeyOut(BaseModel):
    """One event of a session: its identity in the gateway's chain."""

    gateway_id: str
    seq: int


class SessionOut(BaseModel):
    """A current session of a device."""

    id: int
    device_id: str
    channel: str | None
    name: str
    started_at: datetime
    ended_at: datetime | None
    last_activity_at: datetime
    close_reason: CloseReason
    events: list[EventKeyOut]

    @classmethod
    def of(cls, stored: StoredSession) -> "SessionOut":
        """The answer for a stored session."""
        return cls(
            id=stored.id,
            device_id=stored.device_id,
            channel=stored.channel,
            name=stored.name,
            started_at=stored.started_at,
            ended_at=stored.ended_at,
            last_activity_at=stored.last_activity_at,
            close_reason=stored.close_reason,
            events=[EventKeyOut(gateway_id=g, seq=s) for g, s in stored.events],
        )


class RefreshOut(BaseModel):
    """What a session refresh did."""

    pairs: int
    events: int
    written: int
    retired: int


@router.get(
    "/v1/devices/{device_id:path}/sessions",
    response_model=list[SessionOut],
    responses=error_responses(401, 403, 404, 422),
)
async def list_device_sessions(
    device_id: str,
    db: DatabaseDep,
    _: ReadDep,
    start: AwareDatetime | None = None,
    end: AwareDatetime | None = None,
) -> list[SessionOut]:
    """The device's current sessions overlapping [start, end) (default: all of them)."""
    lower, upper = start or EPOCH, end or FAR_FUTURE
    if lower >= upper:
        raise InvalidParameters(
            "start must be before end",
            detail={"errors": [{"loc": ["query", "start"], "msg": "start must be before end"}]},
        )
    async with db.transaction() as session:
        if await session.scalar(select(Device.id).where(Device.id == device_id)) is None:
            raise DeviceNotFound(f"no device {device_id!r}", detail={"device_id": device_id})
        stored = await sessions_overlapping(
            session=session, start=lower, end=upper, device_ids=[device_id]
        )
    return [SessionOut.of(s) for s in stored]


@router.post("/v1/sessions/refresh", response_model=RefreshOut, responses=error_responses(401, 403))
async def refresh(db: DatabaseDep, _: BillingDep) -> RefreshOut:
    """Recompute the sessions of every (device, channel) with new events, as of now."""
    report = await refresh_sessions(db=db, as_of=datetime.now(UTC))
    return RefreshOut(
        pairs=report.pairs, events=report.events, written=report.written, retired=report.retired
    )
