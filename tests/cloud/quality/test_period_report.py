"""The invoice run reports, per account, the period's incidents touching its billed devices:
through the service, POST /v1/invoice-runs and `tollgate-cloud invoice run` (both backends)."""

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from cloud.auth.service import create_api_key
from cloud.cli import main
from cloud.db import Database
from cloud.incidents.models import IncidentKind
from cloud.incidents.sink import record_incident
from cloud.quality.period_report import period_report
from cloud.schema import migrate
from tests.cloud.conftest import JSON
from tests.cloud.quality.scenario import set_up_catalog

GRACE = timedelta(days=5)
RUN_AT = datetime(2026, 12, 2, 9, tzinfo=UTC)
SUMMARY = "2 devices silent, 1 counter reset, 1 device with late events"


def nov(day: int, hour: int = 12) -> datetime:
    """An instant of November 2026 (UTC)."""
    return datetime(2026, 11, day, hour, tzinfo=UTC)


async def file_incidents(db: Database) -> None:
    """The incidents of the scenario: four that count for acme's November, five that do not."""
    occurrences = [
        (IncidentKind.SILENT_DEVICE, "meter-1", nov(10)),
        (IncidentKind.SILENT_DEVICE, "cam-1", nov(20)),
        (IncidentKind.COUNTER_RESET, "meter-1", nov(15)),
        (IncidentKind.COUNTER_RESET, "meter-1", nov(16)),  # bumps the one above
        (IncidentKind.LATE_ARRIVAL, "meter-1", datetime(2026, 12, 1, 8, tzinfo=UTC)),  # in grace
        # Not acme's November:
        (IncidentKind.COUNTER_RESET, "loose-1", nov(15)),  # bound to nobody
        (IncidentKind.CLOCK_SKEW, "meter-1", datetime(2026, 10, 15, tzinfo=UTC)),  # October
        (IncidentKind.UNBILLED_USAGE, "cam-1", datetime(2026, 12, 3, tzinfo=UTC)),  # after the run
        (IncidentKind.SEQ_GAP, None, nov(12)),  # the gateway's, no device
    ]
    for kind, device, at in occurrences:
        await db.run_write(
            lambda s, kind=kind, device=device, at=at: record_incident(
                s, kind=kind, gateway_id="gw-a", device_id=device, detail=str(kind), at=at
            )
        )


async def test_the_report_counts_devices_and_occurrences_per_kind(db: Database) -> None:
    await set_up_catalog(db)
    await file_incidents(db)

    async with db.transaction() as session:
        report = await period_report(
            session=session,
            label="2026-11",
            accounts=[("acme", "Europe/Berlin")],
            now=RUN_AT,
            grace=GRACE,
        )

    quality = report["acme"]
    assert quality.summary == SUMMARY
    tallies = {k: (t.devices, t.occurrences) for k, t in quality.kinds.items()}
    assert tallies == {"silent_device": (2, 2), "counter_reset": (1, 2), "late_arrival": (1, 1)}


async def test_an_account_without_incidents_is_left_out(db: Database) -> None:
    await set_up_catalog(db)

    async with db.transaction() as session:
        report = await period_report(
            session=session,
            label="2026-11",
            accounts=[("acme", "Europe/Berlin")],
            now=RUN_AT,
            grace=GRACE,
        )

    assert report == {}


async def test_the_run_answer_carries_the_report(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    await set_up_catalog(db)
    await file_incidents(db)
    async with db.transaction(write=True) as session:
        issued = await create_api_key(session=session, name="billing", scope="billing")

    response = await client.post(
        "/v1/invoice-runs",
        headers={"Authorization": f"Bearer {issued.secret}", **JSON},
        json={"period": "2026-11"},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["drafted"] == 1
    # Run now (after December 3): the unbilled usage of December 3 is in the grace window too.
    assert body["quality"]["acme"]["kinds"]["unbilled_usage"] == {"devices": 1, "occurrences": 1}
    assert body["quality"]["acme"]["kinds"]["silent_device"] == {"devices": 2, "occurrences": 2}


@pytest.fixture
def url(db_url: str) -> str:
    """A migrated database holding the scenario's catalog and incidents."""

    async def seed() -> None:
        async with Database(db_url) as db:
            await migrate(db.engine)
            await set_up_catalog(db)
            await file_incidents(db)

    asyncio.run(seed())
    return db_url.replace("+aiosqlite", "").replace("+asyncpg", "")


def test_invoice_run_prints_the_report(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        ["invoice", "run", "--period", "2026-11", "--now", RUN_AT.isoformat(), "--db", url]
    )

    out = capsys.readouterr().out
    assert status == 0
    assert f"data quality: acme: {SUMMARY}" in out.splitlines()
