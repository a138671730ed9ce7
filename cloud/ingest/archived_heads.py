"""The `archived_heads` table: per gateway, the newest event `tollgate-cloud archive` moved out.

Archived events are no longer in `events`, but the chain they belong to goes on: a re-sent
batch of archived seqs is a duplicate, the next batch links to the archived head's hash, a
direct source seals after it, and `missing_ranges` does not list archived seqs. The archive
(`cloud.archive.service`) raises a gateway's row (never lowers it) in the transaction that
removes a month. The head keeps its event's `prev_hash` too, so it stands in for that stored
event on both sides of a batch's link check. It lives in ingest, below the archive, because the
store reads it.

One head per gateway, no ranges: every seq at or below it counts as archived. A seq that was
missing when its month was archived (a dead-lettered batch, say) is then no longer listed in
`missing_ranges`, and if it arrives later it is acknowledged as a duplicate and not stored; its
open seq_gap incident keeps the range. Keeping the missing ranges below the head here would
close that; not done yet.
"""

from sqlalchemy import BigInteger, ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from cloud.db import Base


class ArchivedHead(Base):
    """The highest archived seq of a gateway's chain and that event's two chain hashes."""

    __tablename__ = "archived_heads"

    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


def archived_head(session: Session, *, gateway_id: str) -> tuple[int, str] | None:
    """The gateway's archived (seq, hash), or None if none of its events were archived."""
    row = session.execute(
        select(ArchivedHead.seq, ArchivedHead.hash).where(ArchivedHead.gateway_id == gateway_id)
    ).first()
    return None if row is None else (row[0], row[1])
