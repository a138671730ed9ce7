"""The `api_keys` table: admin keys as SHA-256 hashes, never in clear."""

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, SurrogateKey, UtcDateTime


class ApiKey(Base):
    """An API key: only its SHA-256 is stored; `prefix` (its first characters) names it."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(200))  # "admin" (later: "ingest:<source>")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
