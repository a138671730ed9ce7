"""The `api_keys` and `share_links` tables: secrets as SHA-256 hashes, never in clear."""

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, SurrogateKey, UtcDateTime


class ApiKey(Base):
    """An API key: only its SHA-256 is stored; `prefix` (its first characters) names it.

    `scope` is the key's role: `admin`, `billing`, `viewer` or `ingest:<source>`.
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ShareLink(Base):
    """A link that opens one invoice (its page and its evidence) until it expires or is revoked."""

    __tablename__ = "share_links"
    __table_args__ = (Index(None, "invoice_id"),)

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    # No foreign key: discarding a draft leaves its links, which then answer 404.
    invoice_id: Mapped[int] = mapped_column(SurrogateKey)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
