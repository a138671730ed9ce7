"""Status reports through the session store: ingest, `attrs["report"]` read back, one session."""

from cloud.db import Database
from cloud.domain import CloseReason
from cloud.sessions.service import refresh_sessions
from shared.events import EventDraft, EventKind
from tests.cloud.sessions.support import add_device, add_profile, at, current
from tests.support.usage import GatewayFeed, usage

ALARM: dict[str, object] = {"start_on": ["armed"], "end_on": ["disarmed"], "timeout_seconds": None}


def armed(minute: float, *, report: bool = False) -> EventDraft:
    """Partition 1 armed; `report` marks it as the answer to a status request."""
    draft = usage("dsc-1", "armed", at(minute), kind=EventKind.ACTIVATION, channel="1")
    attrs = {"command": "652", "partition": "1"}
    return draft.model_copy(update={"attrs": {**attrs, "report": "status"} if report else attrs})


async def test_restarts_reporting_an_armed_partition_make_one_session(db: Database) -> None:
    await add_profile(db, "alarm", ALARM)
    await add_device(db, "dsc-1", "alarm")
    feed = await GatewayFeed("gw-r1").register(db)
    await feed.send(db, [armed(0)])  # the user armed it
    await refresh_sessions(db=db, as_of=at(1))
    for restart in range(1, 7):  # six agent starts, each answered by a status report
        await feed.send(db, [armed(60 * restart, report=True)])
        await refresh_sessions(db=db, as_of=at(60 * restart + 1))
    [session] = await current(db, "dsc-1")
    assert (session.started_at, session.ended_at, session.close_reason) == (
        at(0),
        None,
        CloseReason.STILL_OPEN,
    )
    assert [seq for _, seq in session.events] == list(range(1, 8))
    # A real arming (no report) while armed is a new start: it supersedes, as before.
    await feed.send(db, [armed(500), usage("dsc-1", "disarmed", at(510), channel="1")])
    await refresh_sessions(db=db, as_of=at(520))
    sessions = await current(db, "dsc-1")
    assert [(s.started_at, s.ended_at, s.close_reason) for s in sessions] == [
        (at(0), at(500), CloseReason.SUPERSEDED),
        (at(500), at(510), CloseReason.DEACTIVATED),
    ]


async def test_a_report_with_no_open_session_opens_one_at_its_time(db: Database) -> None:
    await add_profile(db, "alarm", ALARM)
    await add_device(db, "dsc-1", "alarm")
    feed = await GatewayFeed("gw-r2").register(db)
    await feed.send(db, [armed(30, report=True), armed(90, report=True)])
    await refresh_sessions(db=db, as_of=at(100))
    [session] = await current(db, "dsc-1")
    assert (session.started_at, session.close_reason) == (at(30), CloseReason.STILL_OPEN)
    assert len(session.events) == 2
