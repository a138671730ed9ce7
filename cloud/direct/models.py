"""Tables of direct ingestion: sources, the idempotency keys of their events, and import runs.

A direct source (CloudEvents from modern devices, files from legacy systems) has no gateway of its
own, so the collector keeps one for it: `gateway_id` names a gateway row (`source:<name>`) whose
chain the collector extends and whose batches it signs with the source's own Ed25519 key. Its
events therefore sit in the same `events` table, with the same evidence, as gateway events.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, SurrogateKey, UtcDateTime


class Source(Base):
    """A direct source: its mapping, the CloudEvents `source` URIs it owns and its sealing key."""

    __tablename__ = "sources"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(128), unique=True)
    mapping: Mapped[dict[str, Any]] = mapped_column(JSON)
    private_key_pem: Mapped[str] = mapped_column(Text)  # the collector's seal; see ARCHITECTURE.md
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SourceUri(Base):
    """A CloudEvents `source` attribute and the one direct source that owns it."""

    __tablename__ = "source_uris"

    uri: Mapped[str] = mapped_column(String(255), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(64))


class DirectEventKey(Base):
    """An idempotency key: `(origin, event_id)` was stored as `(gateway_id, seq)`.

    `origin` is a CloudEvents `source` URI, or `import:<source>` for rows of imported files.
    """

    __tablename__ = "direct_event_keys"
    # SQLite: the rows live in the primary key's b-tree; one insert per key instead of two.
    __table_args__ = {"sqlite_with_rowid": False}

    # The id leads the key: a lookup of many ids of one origin seeks each id, whatever the
    # planner's statistics say (PostgreSQL scanned every key of the origin with the other order).
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    origin: Mapped[str] = mapped_column(String(255), primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(128))
    seq: Mapped[int] = mapped_column(BigInteger)


class ImportRun(Base):
    """One import of a file (dry runs are not recorded): what it held and what became of it."""

    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    source_id: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    file_format: Mapped[str] = mapped_column(String(8))
    rows: Mapped[int] = mapped_column(Integer)
    stored: Mapped[int] = mapped_column(Integer)
    duplicates: Mapped[int] = mapped_column(Integer)
    rejected: Mapped[int] = mapped_column(Integer)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
