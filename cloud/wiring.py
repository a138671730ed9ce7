"""The composition root: which consumers read the change feed and which jobs run in the
background. Only the app and the CLI import this module; every domain stays unaware of the
others that consume what it writes (ARCHITECTURE.md draws the arrows)."""

from cloud.ingest import feed
from cloud.scheduler import Job
from cloud.sessions.feed import note_stored_batch
from cloud.settings import Settings


def connect() -> None:
    """Subscribe every consumer of the change feed (idempotent); called at every start."""
    feed.subscribe("sessions", note_stored_batch)


def jobs(settings: Settings) -> list[Job]:
    """The background jobs `serve` runs and `tollgate-cloud sweep` runs once."""
    del settings  # each job reads its own settings
    return []
