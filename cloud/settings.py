"""Collector settings: where the database is and how much one request may carry."""

import os
from dataclasses import dataclass, field

from cloud.errors import InvalidSettings

DB_ENV = "TOLLGATE_DB"
DEFAULT_DB_URL = "sqlite+aiosqlite:///./tollgate-cloud.sqlite"
MIB = 1024 * 1024

# Plain URLs are accepted for convenience; the collector only speaks the async drivers.
_DRIVER_PREFIXES = {
    "sqlite://": "sqlite+aiosqlite://",
    "sqlite+aiosqlite://": "sqlite+aiosqlite://",
    "postgresql://": "postgresql+asyncpg://",
    "postgres://": "postgresql+asyncpg://",
    "postgresql+asyncpg://": "postgresql+asyncpg://",
}


def normalize_db_url(url: str) -> str:
    """Map `sqlite:///...` and `postgresql://...` to their async drivers; refuse anything else."""
    for prefix, driver in _DRIVER_PREFIXES.items():
        if url.startswith(prefix):
            return driver + url[len(prefix) :]
    scheme = url.split("://", 1)[0] if "://" in url else url
    raise InvalidSettings(
        f"unsupported database URL scheme {scheme!r}: use sqlite:///PATH or postgresql://HOST/DB"
    )


@dataclass(frozen=True)
class Limits:
    """How much one ingest request may carry."""

    max_body_bytes: int = 8 * MIB
    max_inflated_bytes: int = 64 * MIB
    max_batch_events: int = 10_000

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_inflated_bytes", "max_batch_events"):
            if getattr(self, name) < 1:
                raise InvalidSettings(f"{name} must be at least 1")


@dataclass(frozen=True)
class Settings:
    """Everything `create_app` and the CLI need to run a collector."""

    db_url: str = DEFAULT_DB_URL
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        object.__setattr__(self, "db_url", normalize_db_url(self.db_url))

    @classmethod
    def load(cls, *, db: str | None = None, limits: Limits | None = None) -> "Settings":
        """Settings from `--db`, else `$TOLLGATE_DB`, else the local SQLite default."""
        url = db or os.environ.get(DB_ENV) or DEFAULT_DB_URL
        return cls(db_url=url, limits=limits or Limits())
