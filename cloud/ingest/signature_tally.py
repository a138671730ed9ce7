"""Bad signatures of registered gateways: counted in memory per request, filed by a job.

A batch whose signature does not verify proves nothing about who sent it. Filing each one would
give anyone a database write per request and a real gateway's record to fill, so ingest never
writes for it (the trust issue's rule). But the gateway's operator must still learn that batches
arrive in its name that its key did not sign (a forger, or a gateway whose key file was
replaced). So each collector process counts them here, per gateway, and the `bad_signatures` job
files the tally every sweep interval as one `invalid_signature` incident per gateway, bumped by
the count: at most one write per gateway per interval, whatever the request rate.

The tally is bounded by the registered gateways: an unknown gateway is refused before its
signature is read, and a revoked one is refused as revoked. A crash loses at most one interval's
counts (they are only counts: the refused batches were never stored).
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from cloud.db import Database
from cloud.incidents.models import IncidentKind
from cloud.incidents.sink import record_incident


@dataclass(slots=True)
class BadSignatures:
    """The bad signatures one gateway's batches had since the last filing."""

    count: int
    first_seen: datetime
    last_seen: datetime
    first_seq: int
    last_seq: int

    def add(self, other: "BadSignatures") -> None:
        """Fold `other` (a later or a restored tally) into this one."""
        self.count += other.count
        self.first_seen = min(self.first_seen, other.first_seen)
        self.last_seen = max(self.last_seen, other.last_seen)
        self.first_seq = min(self.first_seq, other.first_seq)
        self.last_seq = max(self.last_seq, other.last_seq)


_tally: dict[str, BadSignatures] = {}


def note_bad_signature(*, gateway_id: str, first_seq: int, last_seq: int, at: datetime) -> None:
    """Count one refused batch of a registered gateway whose signature did not verify."""
    seen = BadSignatures(1, at, at, first_seq, last_seq)
    known = _tally.get(gateway_id)
    if known is None:
        _tally[gateway_id] = seen
    else:
        known.add(seen)


def pending() -> dict[str, int]:
    """The counts not filed yet, per gateway (for tests and the job's report)."""
    return {gateway_id: tally.count for gateway_id, tally in _tally.items()}


async def file_bad_signatures(db: Database, now: datetime) -> str:
    """File the tally: one `invalid_signature` incident per gateway, bumped by its count."""
    del now  # the incident's times are the refusals' own
    taken = dict(_tally)
    _tally.clear()
    if not taken:
        return "no bad signatures"
    try:
        await db.run_write(lambda session: _file(session, taken))
    except BaseException:
        for gateway_id, tally in taken.items():  # filed next time, nothing lost
            known = _tally.setdefault(gateway_id, tally)
            if known is not tally:
                known.add(tally)
        raise
    total = sum(tally.count for tally in taken.values())
    return f"{total} bad signature(s) filed for {len(taken)} gateway(s)"


def _file(session: Session, taken: dict[str, BadSignatures]) -> None:
    for gateway_id, tally in sorted(taken.items()):
        record_incident(
            session,
            kind=IncidentKind.INVALID_SIGNATURE,
            gateway_id=gateway_id,
            detail=(
                f"{tally.count} batch(es) in this gateway's name whose signature does not "
                "verify under its key (refused, nothing stored)"
            ),
            evidence={
                "refused": tally.count,
                "first_refused_at": tally.first_seen.isoformat(),
                "last_refused_at": tally.last_seen.isoformat(),
            },
            at=tally.last_seen,
            first_seq=tally.first_seq,
            last_seq=tally.last_seq,
            occurrences=tally.count,
        )
