"""The threshold job on SQLite and PostgreSQL, over real ingested batches and the real catalog.

Plan home (tests/cloud/invoices/test_runs.py): base 10.00 EUR; stream_hours 0.50/h; kwh graduated
(0, 10] at 0.20, above at 0.10. The webhook endpoint makes `emit` write the messages; nothing is
delivered here (the delivery job belongs to W's tests).
"""

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import update

from cloud.db import Database
from cloud.errors import InvalidSettings
from cloud.invoices.service import load_rates
from cloud.settings import Settings
from cloud.thresholds.check import (
    Firing,
    check_thresholds,
    fire,
    pending_thresholds,
    reached_thresholds,
)
from cloud.thresholds.models import Measure, UsageThreshold
from cloud.thresholds.service import delete_threshold
from cloud.webhooks.types import EventType
from cloud.wiring import jobs
from tests.cloud.invoices.test_runs import Billing, reading, stream, utc
from tests.cloud.thresholds.conftest import add_threshold, firings, payloads, subscribe

D = Decimal
REACHED = EventType.USAGE_THRESHOLD_REACHED


async def household(billing: Billing, account_id: str = "home-1", time_zone: str = "UTC") -> None:
    """An account on plan home with a meter and a camera, and an endpoint for thresholds."""
    await billing.account(account_id, time_zone=time_zone)
    await billing.device(f"meter-{account_id}", "meter", account_id)
    await billing.device(f"cam-{account_id}", "camera", account_id)
    await subscribe(billing.db, REACHED)


async def test_a_units_threshold_fires_once_per_period_when_crossed(billing: Billing) -> None:
    await household(billing)
    kwh = await add_threshold(billing, "home-1", "kwh", Measure.UNITS, "10")
    await billing.send(reading("meter-home-1", utc(2026, 11, 3), "8"))

    before = await check_thresholds(billing.db, utc(2026, 11, 10))
    assert (before.thresholds, before.fired) == (1, [])  # 8 kWh: not yet
    assert await payloads(billing.db, REACHED) == []

    await billing.send(reading("meter-home-1", utc(2026, 11, 11), "5"))
    crossed = await check_thresholds(billing.db, utc(2026, 11, 12))
    again = await check_thresholds(billing.db, utc(2026, 11, 20))

    assert crossed.fired == [kwh]
    assert (again.thresholds, again.fired) == (0, [])  # fired this period: not even rated
    assert await firings(billing.db) == [(kwh, "2026-11", D("13"))]
    [message] = await payloads(billing.db, REACHED)
    assert message == {
        "threshold_id": kwh,
        "account_id": "home-1",
        "metric_id": "kwh",
        "measure": "units",
        "threshold": "10",
        "observed": "13",
        "currency": None,
        "period": "2026-11",
        "period_start": "2026-11-01T00:00:00+00:00",
        "period_end": "2026-12-01T00:00:00+00:00",
        "reached_at": "2026-11-12T00:00:00+00:00",
    }

    # December starts from zero: 4 kWh is short of 10, 12 more crosses it again
    await billing.send(reading("meter-home-1", utc(2026, 12, 1, 8), "4"))
    assert (await check_thresholds(billing.db, utc(2026, 12, 1, 9))).fired == []
    await billing.send(reading("meter-home-1", utc(2026, 12, 2), "12"))
    assert (await check_thresholds(billing.db, utc(2026, 12, 2, 1))).fired == [kwh]
    assert await firings(billing.db) == [(kwh, "2026-11", D("13")), (kwh, "2026-12", D("16"))]
    assert [m["period"] for m in await payloads(billing.db, REACHED)] == ["2026-11", "2026-12"]


async def test_an_amount_threshold_counts_usage_not_the_base_fee(billing: Billing) -> None:
    await household(billing)
    total = await add_threshold(billing, "home-1", None, Measure.AMOUNT, "2.00")
    energy = await add_threshold(billing, "home-1", "kwh", Measure.AMOUNT, "2.25")
    await billing.send(reading("meter-home-1", utc(2026, 11, 3), "8"))

    # 8 kWh x 0.20 = 1.60: short of 2.00, though the draft's total (base 10.00) is past it
    assert (await check_thresholds(billing.db, utc(2026, 11, 4))).fired == []

    await billing.send(reading("meter-home-1", utc(2026, 11, 5), "3"))  # 11 kWh: 2.00 + 0.10
    first = await check_thresholds(billing.db, utc(2026, 11, 6))
    await billing.send(reading("meter-home-1", utc(2026, 11, 7), "2"))  # 13 kWh: 2.30
    second = await check_thresholds(billing.db, utc(2026, 11, 8))

    assert (first.fired, second.fired) == ([total], [energy])
    assert [
        (m["threshold_id"], m["observed"], m["currency"])
        for m in await payloads(billing.db, REACHED)
    ] == [(total, "2.10", "EUR"), (energy, "2.30", "EUR")]


async def test_session_metrics_see_the_sessions_of_stored_events(billing: Billing) -> None:
    """No invoice run and no refresh before the check: the check brings sessions up to date."""
    await household(billing)
    hours = await add_threshold(billing, "home-1", "stream_hours", Measure.UNITS, "2")
    money = await add_threshold(billing, "home-1", "stream_hours", Measure.AMOUNT, "1.50")
    await billing.send(*stream("cam-home-1", utc(2026, 11, 5, 10), utc(2026, 11, 5, 12)))

    report = await check_thresholds(billing.db, utc(2026, 11, 6))

    assert report.fired == [hours]  # 2 h reached; 2 h x 0.50 = 1.00 < 1.50
    assert await firings(billing.db) == [(hours, "2026-11", D("2"))]
    assert money not in report.fired


async def test_the_period_is_the_month_in_the_accounts_time_zone(billing: Billing) -> None:
    await household(billing, "berlin", time_zone="Europe/Berlin")
    kwh = await add_threshold(billing, "berlin", "kwh", Measure.UNITS, "1")
    await billing.send(
        reading("meter-berlin", utc(2026, 11, 30, 22, 30), "5"),  # 23:30 local: November
        reading("meter-berlin", utc(2026, 11, 30, 23, 30), "1"),  # 00:30 local Dec 1
    )

    # 23:45Z is December 1 in Berlin: December so far is the 1 kWh after local midnight
    assert (await check_thresholds(billing.db, utc(2026, 11, 30, 23, 45))).fired == [kwh]
    [message] = await payloads(billing.db, REACHED)
    assert (message["period"], message["observed"]) == ("2026-12", "1")
    assert message["period_start"] == "2026-11-30T23:00:00+00:00"


async def test_two_checks_at_once_fire_a_threshold_once(billing: Billing) -> None:
    await household(billing)
    kwh = await add_threshold(billing, "home-1", "kwh", Measure.UNITS, "1")
    await billing.send(reading("meter-home-1", utc(2026, 11, 3), "2"))

    reports = await asyncio.gather(
        check_thresholds(billing.db, utc(2026, 11, 4)),
        check_thresholds(billing.db, utc(2026, 11, 4)),
    )

    assert sorted(fired for report in reports for fired in report.fired) == [kwh]
    assert len(await payloads(billing.db, REACHED)) == 1
    assert await firings(billing.db) == [(kwh, "2026-11", D("2"))]


async def test_the_unique_key_stops_a_second_run_that_saw_it_unfired(billing: Billing) -> None:
    """Two runs both computed the crossing before either wrote: only one firing, one message."""
    await household(billing)
    kwh = await add_threshold(billing, "home-1", "kwh", Measure.UNITS, "1")
    await billing.send(reading("meter-home-1", utc(2026, 11, 3), "2"))
    now = utc(2026, 11, 4)
    found = await computed_firings(billing.db, now)
    assert len(found) == 1

    results = await asyncio.gather(
        fire(db=billing.db, firings=found, now=now), fire(db=billing.db, firings=found, now=now)
    )
    late = await fire(db=billing.db, firings=found, now=now)

    assert sorted(results) == [[], [kwh]]
    assert late == []
    assert len(await payloads(billing.db, REACHED)) == 1


async def computed_firings(db: Database, now: datetime) -> list[Firing]:
    """What a check would fire at `now`, computed without writing anything."""
    async with db.transaction() as session:
        pending = await pending_thresholds(session=session, now=now)
        rates = await load_rates(session=session)
    return await reached_thresholds(db=db, chunk=pending, rates=rates, now=now, failed={})


async def test_removed_or_disabled_thresholds_do_not_fire(billing: Billing) -> None:
    await household(billing)
    removed = await add_threshold(billing, "home-1", "kwh", Measure.UNITS, "1")
    disabled = await add_threshold(billing, "home-1", "kwh", Measure.UNITS, "2")
    await billing.send(reading("meter-home-1", utc(2026, 11, 3), "5"))
    now = utc(2026, 11, 4)
    found = await computed_firings(billing.db, now)
    assert sorted(f.crossing.threshold.id for f in found) == [removed, disabled]

    async with billing.db.transaction(write=True) as session:  # after the check computed them
        await delete_threshold(session=session, threshold_id=removed)
        await session.execute(
            update(UsageThreshold).where(UsageThreshold.id == disabled).values(enabled=False)
        )

    assert await fire(db=billing.db, firings=found, now=now) == []
    assert (await check_thresholds(billing.db, now)).thresholds == 0
    assert await firings(billing.db) == []
    assert await payloads(billing.db, REACHED) == []


async def test_accounts_without_a_plan_or_thresholds_cost_nothing(billing: Billing) -> None:
    await household(billing)
    await billing.account("off-plan", plan=None)
    await billing.device("meter-off", "meter", "off-plan")
    await billing.send(reading("meter-off", utc(2026, 11, 3), "500"))

    report = await check_thresholds(billing.db, utc(2026, 11, 4))

    assert (report.accounts, report.thresholds, report.fired) == (0, 0, [])
    assert str(report) == "0 accounts, 0 thresholds pending, 0 fired, 0 accounts not rated"


async def test_without_a_subscriber_it_still_fires_once_and_writes_no_message(
    billing: Billing,
) -> None:
    await billing.account("quiet")
    await billing.device("meter-quiet", "meter", "quiet")
    kwh = await add_threshold(billing, "quiet", "kwh", Measure.UNITS, "1")
    await billing.send(reading("meter-quiet", utc(2026, 11, 3), "2"))

    assert (await check_thresholds(billing.db, utc(2026, 11, 4))).fired == [kwh]
    await subscribe(billing.db, REACHED)
    assert (await check_thresholds(billing.db, utc(2026, 11, 5))).fired == []  # not re-fired
    assert await payloads(billing.db, REACHED) == []


def test_the_job_runs_in_the_background_at_its_own_interval() -> None:
    [job] = [job for job in jobs(Settings()) if job.name == "thresholds"]
    assert job.run is check_thresholds
    assert job.every == Settings().threshold_interval


async def test_an_account_that_cannot_be_rated_is_reported_and_others_still_fire(
    billing: Billing,
) -> None:
    await household(billing, "huge")
    await household(billing, "fine")
    await add_threshold(billing, "huge", "kwh", Measure.UNITS, "1")
    fine = await add_threshold(billing, "fine", "kwh", Measure.UNITS, "1")
    await billing.send(
        reading("meter-huge", utc(2026, 11, 3), "1" + "0" * 29),  # x 0.10: beyond 10^18
        reading("meter-fine", utc(2026, 11, 3), "2"),
    )

    report = await check_thresholds(billing.db, utc(2026, 11, 4))

    assert report.fired == [fine]
    assert report.failed == {"huge": "rating_out_of_bounds"}
    assert str(report).endswith("1 fired, 1 accounts not rated (huge)")
    assert [m["account_id"] for m in await payloads(billing.db, REACHED)] == ["fine"]


def test_the_interval_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLGATE_THRESHOLD_INTERVAL", "10m")
    assert Settings.load().threshold_interval == timedelta(minutes=10)
    for bad in ("0s", "soon", "-5m"):
        monkeypatch.setenv("TOLLGATE_THRESHOLD_INTERVAL", bad)
        with pytest.raises(InvalidSettings, match=r"threshold|TOLLGATE_THRESHOLD_INTERVAL"):
            Settings.load()
