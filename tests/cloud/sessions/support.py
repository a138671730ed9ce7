"""Helpers of the session store tests: catalog rows straight into the tables, readers."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from cloud.catalog.models import Device, DeviceProfile
from cloud.db import Database
from cloud.session_work import EPOCH, SessionWork
from cloud.sessions.models import SessionRow
from cloud.sessions.service import StoredSession, sessions_overlapping

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
FAR = datetime(9999, 1, 1, tzinfo=UTC)
CAMERA = {"start_on": ["stream_start"], "end_on": ["stream_stop"], "timeout_seconds": None}
LOCK = {"start_on": ["opened"], "end_on": ["closed"], "timeout_seconds": 600}


def at(minute: float) -> datetime:
    """T0 plus some minutes."""
    return T0 + timedelta(minutes=minute)


async def add_profile(db: Database, profile_id: str, rule: dict[str, object]) -> None:
    """A device profile row."""
    async with db.transaction(write=True) as session:
        await session.execute(
            insert(DeviceProfile).values(id=profile_id, name=profile_id, created_at=T0, **rule)
        )


async def add_device(db: Database, device_id: str, profile_id: str) -> None:
    """A device row (no site)."""
    async with db.transaction(write=True) as session:
        await session.execute(
            insert(Device).values(
                id=device_id, site_id=None, profile_id=profile_id, name=device_id, created_at=T0
            )
        )


async def current(db: Database, device_id: str) -> list[StoredSession]:
    """The device's current sessions, all of them."""
    async with db.transaction() as session:
        return await sessions_overlapping(
            session=session, start=EPOCH, end=FAR, device_ids=[device_id]
        )


async def row_count(db: Database, *, current_only: bool = False) -> int:
    """Session rows in the table (all, or current ones)."""
    query = select(SessionRow.id)
    if current_only:
        query = query.where(SessionRow.current.is_(True))
    async with db.transaction() as session:
        return len(list(await session.scalars(query)))


async def work(db: Database) -> dict[tuple[str, str], datetime]:
    """The session work queue."""
    async with db.transaction() as session:
        rows = await session.execute(
            select(SessionWork.device_id, SessionWork.channel, SessionWork.since)
        )
        return {(d, c): since for d, c, since in rows}
