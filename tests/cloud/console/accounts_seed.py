"""An account with usage in the current period, for the accounts and devices pages' tests.

Built through the catalog's services and the real ingest path (signed, chained batches), its
sessions refreshed and its draft written by a real invoice run, all as of `now`:

    account "acme-home" (Europe/Berlin, EUR, plan "home": kwh standard 0.20 EUR)
    meter-1 bound from 40 days ago (open); old-meter bound 60..45 days ago (ended)
    cam-1 (camera profile, sessions) bound from 40 days ago; one session of 20 minutes
    readings of meter-1: 1.5, 2.25 and 3 kWh in the last 30 minutes (clamped into the period)
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from cloud.catalog.accounts import create_account
from cloud.catalog.bindings import create_binding
from cloud.catalog.devices import create_device, create_profile
from cloud.catalog.metrics import create_metric
from cloud.catalog.plan_terms import PlanTerms
from cloud.catalog.plans import create_plan, create_plan_version
from cloud.db import Database
from cloud.invoices.service import run_invoices
from cloud.rating.periods import period_of
from cloud.sessions.service import refresh_sessions
from shared.events import EventKind, UsageEvent
from tests.support.usage import GatewayFeed, usage

ACCOUNT = "acme-home"
ZONE = "Europe/Berlin"
READINGS = (Decimal("1.5"), Decimal("2.25"), Decimal("3"))
GATEWAY = "gw-console-accounts"


@dataclass(frozen=True, slots=True)
class Seeded:
    """What was stored: the events in chain order, the reading times, the session's bounds."""

    events: list[UsageEvent]
    reading_times: list[datetime]
    session_start: datetime
    session_stop: datetime


async def seed_account(db: Database, *, now: datetime, feed: GatewayFeed | None = None) -> Seeded:
    """The account, its devices, bindings, usage, sessions and draft (see the module doc)."""
    period = period_of(now, ZONE)

    def recent(minutes: int) -> datetime:  # in the last half hour, but inside the period
        return max(period.start + timedelta(seconds=minutes), now - timedelta(minutes=minutes))

    async with db.transaction(write=True) as session:
        await create_profile(session=session, profile_id="meter", name="Meter")
        await create_profile(
            session=session,
            profile_id="camera",
            name="Camera",
            start_on=["stream_start"],
            end_on=["stream_stop"],
        )
        await create_metric(
            session=session,
            metric_id="kwh",
            name="Energy",
            source="events",
            aggregation="sum",
            field="quantity",
            names=["reading"],
            unit="kWh",
        )
        await create_plan(session=session, plan_id="home", name="Home", currency="EUR")
        await create_plan_version(
            session=session,
            plan_id="home",
            terms=PlanTerms.model_validate(
                {
                    "effective_from": "2020-01-01T00:00:00+00:00",
                    "charges": [{"metric": "kwh", "model": "standard", "unit_price": "0.20"}],
                }
            ),
        )
        await create_account(
            session=session,
            account_id=ACCOUNT,
            name="Acme Household",
            kind="household",
            currency="EUR",
            time_zone=ZONE,
            plan_id="home",
        )
        await create_account(
            session=session,
            account_id="bolt-works",
            name="Bolt Works",
            kind="company",
            currency="EUR",
            time_zone="UTC",
        )
        for device, profile in (("meter-1", "meter"), ("old-meter", "meter"), ("cam-1", "camera")):
            await create_device(session=session, device_id=device, name=device, profile_id=profile)
        for device in ("meter-1", "cam-1"):
            await create_binding(
                session=session,
                device_id=device,
                account_id=ACCOUNT,
                valid_from=now - timedelta(days=40),
            )
        await create_binding(
            session=session,
            device_id="old-meter",
            account_id=ACCOUNT,
            valid_from=now - timedelta(days=60),
            valid_to=now - timedelta(days=45),
        )
    feed = feed or await GatewayFeed(GATEWAY).register(db)
    times = [recent(30), recent(20), recent(10)]
    start, stop = recent(28), recent(8)
    measurement = EventKind.MEASUREMENT
    drafts = [
        usage("meter-1", "reading", times[0], kind=measurement, quantity=READINGS[0], unit="kWh"),
        usage("cam-1", "stream_start", start, kind=EventKind.ACTIVATION, channel="video"),
        usage("meter-1", "reading", times[1], kind=measurement, quantity=READINGS[1], unit="kWh"),
        usage("meter-1", "reading", times[2], kind=measurement, quantity=READINGS[2], unit="kWh"),
        usage("cam-1", "stream_stop", stop, kind=EventKind.DEACTIVATION, channel="video"),
    ]
    drafts.sort(key=lambda draft: draft.occurred_at)
    events = await feed.send(db, drafts[:3])
    events += await feed.send(db, drafts[3:])
    await refresh_sessions(db=db, as_of=now)
    await run_invoices(
        db=db, period=period.label, now=now, grace=timedelta(days=7), account_id=ACCOUNT
    )
    return Seeded(events=events, reading_times=times, session_start=start, session_stop=stop)
