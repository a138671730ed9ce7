"""The fleet's background jobs (the composition root lists them in `cloud.wiring.jobs`)."""

from datetime import datetime

from cloud.db import Database
from cloud.fleet.sweeps import SweepReport, sweep_offline_gateways, sweep_silent_devices
from cloud.scheduler import Job
from cloud.settings import Settings


def fleet_jobs(settings: Settings) -> list[Job]:
    """The silence sweep and the offline sweep, every `settings.sweep_interval`."""

    async def offline(db: Database, now: datetime) -> SweepReport:
        return await sweep_offline_gateways(db, now, offline_after=settings.gateway_offline_after)

    return [
        Job(name="silent_devices", every=settings.sweep_interval, run=sweep_silent_devices),
        Job(name="offline_gateways", every=settings.sweep_interval, run=offline),
    ]
