"""`make bench`: the silence sweep over 100,000 devices (issue 14; target < 5 s on SQLite and
PostgreSQL).

Setup shortcut (not timed, and said here so nobody mistakes it): the catalog (one profile with
an expected interval of 60 s, 100,000 devices) and their twins (as the change feed would have
left them, last received 10 minutes ago) are written with Core executemany. What is timed is
the real job, `cloud.fleet.sweeps.sweep_silent_devices`, on the real database:

1. first sweep: every device is overdue, so 100,000 are flagged and 100,000 silent_device
   incidents are opened (the sink's bulk insert and one `incident.opened` emit each; no
   webhook endpoint is registered, as on a collector without webhooks);
2. steady state: the same sweep again, nothing new (what a collector runs every 30 s);
3. 1 % newly silent: 1,000 devices reported since and went silent again.

    python -m bench.fleet [--devices 100000] [--backends sqlite,postgresql]
"""

import argparse
import asyncio
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, update

from bench.collector_ingest import fresh_database
from cloud.catalog.models import Device, DeviceProfile
from cloud.db import Database
from cloud.fleet.models import ONLINE, DeviceTwin, GatewayTwin
from cloud.fleet.sweeps import sweep_silent_devices
from cloud.gateways.models import Gateway
from cloud.incidents.models import Incident, IncidentState
from cloud.schema import migrate

CHUNK = 5_000
GATEWAYS = 100
TARGET_SECONDS = 5.0


async def populate(db: Database, devices: int, now: datetime) -> None:
    """The catalog and twins of `devices` devices spread over GATEWAYS gateways (untimed)."""
    last = now - timedelta(minutes=10)
    async with db.transaction(write=True) as session:
        await session.execute(
            insert(DeviceProfile).values(
                id="meter",
                name="Meter",
                start_on=[],
                end_on=[],
                timeout_seconds=None,
                expected_interval_seconds=60,
                created_at=now,
            )
        )
        await session.execute(
            insert(Gateway),
            [
                {"id": f"gw-{g:03}", "public_key_pem": "bench", "registered_at": now}
                for g in range(GATEWAYS)
            ],
        )
        await session.execute(
            insert(GatewayTwin),
            [
                {
                    "gateway_id": f"gw-{g:03}",
                    "last_report_at": last,
                    "last_batch_at": last,
                    "status": ONLINE,
                    "status_since": last,
                }
                for g in range(GATEWAYS)
            ],
        )
    for start in range(0, devices, CHUNK):
        ids = range(start, min(start + CHUNK, devices))
        async with db.transaction(write=True) as session:
            await session.execute(
                insert(Device),
                [
                    {"id": f"dev-{n:06}", "profile_id": "meter", "name": "m", "created_at": now}
                    for n in ids
                ],
            )
            await session.execute(
                insert(DeviceTwin),
                [
                    {
                        "device_id": f"dev-{n:06}",
                        "gateway_id": f"gw-{n % GATEWAYS:03}",
                        "last_occurred_at": last,
                        "last_received_at": last,
                        "last_seq": n,
                        "channels": {},
                        "points": {"power": {"quantity": "1.5", "unit": "kW", "at": "x"}},
                        "updated_at": last,
                    }
                    for n in ids
                ],
            )


async def timed_sweep(db: Database, now: datetime) -> tuple[float, int, int]:
    start = time.perf_counter()
    report = await sweep_silent_devices(db, now)
    return time.perf_counter() - start, report.flagged, report.opened


async def come_back(db: Database, count: int, at: datetime) -> None:
    """`count` devices reported at `at`, as the feed leaves them (flag cleared, incident
    resolved); untimed."""
    ids = [f"dev-{n:06}" for n in range(count)]
    async with db.transaction(write=True) as session:
        await session.execute(
            update(DeviceTwin)
            .where(DeviceTwin.device_id.in_(ids))
            .values(last_received_at=at, silent_since=None)
        )
        await session.execute(
            update(Incident)
            .where(Incident.device_id.in_(ids))
            .values(state=IncidentState.RESOLVED.value, resolved_at=at)
        )


async def run_backend(backend: str, devices: int) -> None:
    now = datetime.now(UTC)
    async with fresh_database(backend) as url, Database(url) as db:
        await migrate(db.engine)
        await populate(db, devices, now)
        first = await timed_sweep(db, now)
        steady = await timed_sweep(db, now + timedelta(seconds=30))
        await come_back(db, devices // 100, now + timedelta(seconds=40))
        some = await timed_sweep(db, now + timedelta(minutes=5))
    for label, (seconds, flagged, opened) in (
        ("first sweep (all overdue)", first),
        ("steady state (none new)", steady),
        ("1% newly silent", some),
    ):
        verdict = "ok" if seconds < TARGET_SECONDS else "OVER TARGET"
        print(
            f"silence sweep {backend:10} {devices:,} devices, {label:26}: {seconds:6.2f} s "
            f"({flagged:,} flagged, {opened:,} opened; target < {TARGET_SECONDS:g} s: {verdict})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        asyncio.run(run_backend(backend.strip(), args.devices))


if __name__ == "__main__":
    main()
