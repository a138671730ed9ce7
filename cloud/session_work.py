"""The session work queue: (device, channel) pairs whose sessions must be recomputed from `since`.

A sink on layer 1, below everything that writes to it: ingest's change feed notes every stored
event here (`note_events`, in the batch's own transaction), the catalog queues a whole device
when it is created or its profile changes (`enqueue_device`), and the session refresh
(`cloud.sessions.service`) consumes it. Writers need only this module, never the sessions
package, so no domain below sessions imports sessions.

Each pair keeps its earliest `since` (`upsert_work`): noting a later event for a queued pair
changes nothing, an earlier one moves the point back.
"""

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Insert, String, Table, case
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, Session, mapped_column

from cloud.db import Base, UtcDateTime

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ALL_CHANNELS = "*"
"""The work item channel meaning every channel of the device, recomputed from the beginning."""


class SessionWork(Base):
    """A (device, channel) whose sessions must be recomputed from `since` on (written by ingest
    in the batch's own transaction, consumed by the session refresh)."""

    __tablename__ = "session_work"

    device_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    since: Mapped[datetime] = mapped_column(UtcDateTime)


WORK = cast(Table, SessionWork.__table__)


def upsert_work(dialect_name: str) -> Insert:
    """`INSERT INTO session_work ... ON CONFLICT DO UPDATE` keeping the earliest `since`."""
    dialect_insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    statement = dialect_insert(WORK)
    earlier = case(
        (statement.excluded.since < WORK.c.since, statement.excluded.since), else_=WORK.c.since
    )
    return statement.on_conflict_do_update(
        index_elements=["device_id", "channel"], set_={"since": earlier}
    )


def note_events(session: Session, events: Iterable[tuple[str, str | None, datetime]]) -> None:
    """Note new events' (device_id, channel, occurred_at) as session work, in one statement.

    Called by ingest in the batch's write transaction: a refused batch leaves no work behind.
    """
    earliest: dict[tuple[str, str], datetime] = {}
    for device_id, channel, occurred_at in events:
        pair = (device_id, channel or "")
        known = earliest.get(pair)
        if known is None or occurred_at < known:
            earliest[pair] = occurred_at
    if not earliest:
        return
    # Sorted: two transactions upserting the same pairs lock them in the same order (PostgreSQL).
    rows = [
        {"device_id": device_id, "channel": channel, "since": since}
        for (device_id, channel), since in sorted(earliest.items())
    ]
    session.execute(upsert_work(session.get_bind().dialect.name), rows)


async def enqueue_device(*, session: AsyncSession, device_id: str) -> None:
    """Recompute all of a device's sessions at the next refresh (created, or profile changed)."""
    await session.execute(
        upsert_work(session.get_bind().dialect.name),
        [{"device_id": device_id, "channel": ALL_CHANNELS, "since": EPOCH}],
    )
