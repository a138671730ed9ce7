"""The `archived_months` table: one row per file `tollgate-cloud archive` wrote and verified.

A month archived again (late events arrived after its partition was dropped) gets the next
`part`; `file_name` is the file's name inside the archive directory, `sha256` its digest.
"""

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, SurrogateKey, UtcDateTime


class ArchivedMonth(Base):
    """A month's events (or a later part of them) moved to one verified, compressed file."""

    __tablename__ = "archived_months"
    __table_args__ = (UniqueConstraint("month", "part"),)

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    part: Mapped[int] = mapped_column(Integer)
    file_name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    event_count: Mapped[int] = mapped_column(BigInteger)
    batch_count: Mapped[int] = mapped_column(Integer)
    archived_at: Mapped[datetime] = mapped_column(UtcDateTime)
