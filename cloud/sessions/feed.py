"""The sessions' consumer of the change feed: every stored event's (device, channel) becomes
session work, in the batch's own transaction (a refused batch leaves no work behind)."""

from sqlalchemy.orm import Session

from cloud.ingest.feed import StoredBatch
from cloud.session_work import note_events


def note_stored_batch(session: Session, stored: StoredBatch) -> None:
    """Queue the batch's new events for the session refresh."""
    note_events(session, ((e.device_id, e.channel, e.occurred_at) for e in stored.events))
