"""The composition root: which consumers read the change feed and which jobs run in the
background. Only the app and the CLI import this module; every domain stays unaware of the
others that consume what it writes (ARCHITECTURE.md draws the arrows)."""

from cloud.fleet.jobs import fleet_jobs
from cloud.fleet.twins import update_twins
from cloud.ingest import feed
from cloud.ingest.signature_tally import file_bad_signatures
from cloud.quality.detection import detector, thresholds
from cloud.scheduler import Job
from cloud.sessions.feed import note_stored_batch
from cloud.settings import Settings
from cloud.thresholds.jobs import threshold_jobs
from cloud.webhooks.jobs import webhook_jobs


def connect(settings: Settings | None = None) -> None:
    """Subscribe every consumer of the change feed (idempotent); called at every start.

    `settings` (else `Settings.load()`) gives the detection thresholds."""
    feed.subscribe("sessions", note_stored_batch)
    feed.subscribe("twins", update_twins)
    feed.subscribe("quality", detector(thresholds(settings or Settings.load())))


def jobs(settings: Settings) -> list[Job]:
    """The background jobs `serve` runs and `tollgate-cloud sweep` runs once."""
    bad_signatures = Job("bad_signatures", settings.sweep_interval, file_bad_signatures)
    return [
        bad_signatures,
        *fleet_jobs(settings),
        *webhook_jobs(settings),
        *threshold_jobs(settings),
    ]
