"""The webhook job of the collector's scheduler: send what is due every few seconds."""

from datetime import datetime, timedelta

from cloud.db import Database
from cloud.scheduler import Job
from cloud.settings import Settings
from cloud.webhooks.delivery import DeliveryReport, deliver_due

DELIVERY_INTERVAL = timedelta(seconds=5)  # the shortest backoff step: retries are not late


def webhook_jobs(settings: Settings) -> list[Job]:
    """`webhooks`: deliver_due every 5 s (safe in several collectors at once: leases)."""
    del settings  # the delivery policy's defaults are the contract (cloud/webhooks/policy.py)
    return [Job(name="webhooks", every=DELIVERY_INTERVAL, run=_deliver)]


async def _deliver(db: Database, now: datetime) -> DeliveryReport:
    return await deliver_due(db, now)
