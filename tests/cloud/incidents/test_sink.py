"""The incident sink in a real database (SQLite and PostgreSQL): subjects bump one incident,
openings and resolutions emit webhooks in the same transaction, the set-based form for sweeps,
bounded evidence, and a rolled back transaction leaves neither incident nor webhook."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from cloud.db import Database
from cloud.incidents.models import Incident, IncidentKind
from cloud.incidents.sink import (
    IncidentSubject,
    record_incident,
    record_incidents,
    resolve_incidents,
)
from cloud.webhooks.endpoints import create_endpoint
from cloud.webhooks.models import WebhookMessage
from cloud.webhooks.types import EventType

T0 = datetime(2026, 11, 20, 8, tzinfo=UTC)


@pytest.fixture
async def endpoint(db: Database) -> None:
    """A webhook endpoint subscribed to both incident events."""
    async with db.transaction(write=True) as session:
        await create_endpoint(
            session=session,
            url="http://127.0.0.1:9/hooks",
            event_types=[EventType.INCIDENT_OPENED, EventType.INCIDENT_RESOLVED],
        )


async def rows(db: Database) -> list[Incident]:
    """Every incident in id order."""
    async with db.transaction() as session:
        return list(await session.scalars(select(Incident).order_by(Incident.id)))


async def messages(db: Database) -> list[tuple[str, dict[str, Any]]]:
    """The webhook messages emitted, oldest first: (type, payload)."""
    async with db.transaction() as session:
        found = await session.execute(
            select(WebhookMessage.event_type, WebhookMessage.payload).order_by(WebhookMessage.id)
        )
        return [(kind, payload) for kind, payload in found]


@pytest.mark.usefixtures("endpoint")
async def test_a_subject_is_bumped_while_active_and_webhooks_follow_the_lifecycle(
    db: Database,
) -> None:
    def occur(at: datetime, seqs: list[int]) -> Any:
        return lambda session: record_incident(
            session,
            kind=IncidentKind.CLOCK_SKEW,
            gateway_id="gw-a",
            device_id="lock-1",
            detail=f"skew at {at:%H:%M}",
            evidence={"seqs": seqs, "batch_id": seqs[0]},
            at=at,
            first_seq=seqs[0],
            last_seq=seqs[-1],
        )

    first = await db.run_write(occur(T0, [1, 2]))
    again = await db.run_write(occur(T0 + timedelta(minutes=5), [2, 3]))
    other = await db.run_write(
        lambda s: record_incident(
            s,
            kind=IncidentKind.CLOCK_SKEW,
            gateway_id="gw-a",
            device_id="lock-2",
            detail="x",
            at=T0,
        )
    )

    assert first == again != other
    bumped = (await rows(db))[0]
    assert (bumped.count, bumped.first_seen, bumped.last_seen) == (2, T0, T0 + timedelta(minutes=5))
    assert bumped.evidence == {"seqs": [1, 2, 3], "batch_id": 2}
    assert (bumped.first_seq, bumped.last_seq, bumped.detail) == (1, 3, "skew at 08:05")
    assert [kind for kind, _ in await messages(db)] == ["incident.opened", "incident.opened"]

    resolved = await db.run_write(
        lambda s: resolve_incidents(
            s,
            kind=IncidentKind.CLOCK_SKEW,
            device_ids=["lock-1"],
            reason="clock fixed",
            at=T0 + timedelta(minutes=10),  # message ids sort by time
        )
    )

    assert resolved == 1
    states = {row.device_id: (row.state, row.resolved_reason) for row in await rows(db)}
    assert states == {"lock-1": ("resolved", "clock fixed"), "lock-2": ("open", None)}
    kind, payload = (await messages(db))[-1]
    assert kind == "incident.resolved"
    assert (payload["id"], payload["state"], payload["device_id"]) == (first, "resolved", "lock-1")
    assert payload["count"] == 2 and payload["resolved_reason"] == "clock fixed"


@pytest.mark.usefixtures("endpoint")
async def test_sweeps_open_only_subjects_without_an_active_incident(db: Database) -> None:
    subjects = [IncidentSubject("gw-a", f"dev-{n}", f"dev-{n} silent") for n in range(300)]
    opened = await db.run_write(
        lambda s: record_incidents(
            s, kind=IncidentKind.SILENT_DEVICE, subjects=subjects[:100], at=T0
        )
    )
    again = await db.run_write(
        lambda s: record_incidents(s, kind=IncidentKind.SILENT_DEVICE, subjects=subjects, at=T0)
    )

    assert (opened, again) == (100, 200)
    found = await rows(db)
    assert len(found) == 300 and {row.count for row in found} == {1}
    assert {row.device_id for row in found} == {f"dev-{n}" for n in range(300)}
    sent = await messages(db)
    assert len(sent) == 300
    # each message names the incident it opened (read back after the bulk insert)
    by_id = {row.id: row.device_id for row in found}
    assert {payload["id"]: payload["device_id"] for _, payload in sent} == by_id

    back = await db.run_write(
        lambda s: resolve_incidents(
            s,
            kind=IncidentKind.SILENT_DEVICE,
            device_ids=[f"dev-{n}" for n in range(0, 300, 2)] * 2,  # repeats count once
            reason="data came back",
        )
    )
    assert back == 150
    assert sum(row.state == "resolved" for row in await rows(db)) == 150


async def test_nothing_is_recorded_when_the_transaction_rolls_back(db: Database) -> None:
    def fail(session: Any) -> None:
        record_incident(session, kind=IncidentKind.SEQ_GAP, gateway_id="gw-a", detail="gap")
        raise RuntimeError("the batch's transaction failed")

    with pytest.raises(RuntimeError):
        await db.run_write(fail)

    assert await rows(db) == []
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookMessage)) == 0


async def test_evidence_stays_bounded_however_often_it_is_bumped(db: Database) -> None:
    for start in range(0, 100, 10):
        await db.run_write(
            lambda s, start=start: record_incident(
                s,
                kind=IncidentKind.DUPLICATE_DELIVERY,
                gateway_id="gw-a",
                detail="dup",
                evidence={"seqs": list(range(start, start + 10)), "readings": [{"n": start}] * 30},
            )
        )

    (row,) = await rows(db)
    assert row.count == 10 and row.evidence is not None
    assert row.evidence["seqs"] == list(range(80, 100))
    assert len(row.evidence["readings"]) == 20
