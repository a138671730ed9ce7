"""API keys (admin keys, and ingest keys scoped to one direct source): made once, shown once,
stored as their SHA-256 only.

A key reads `tg_` followed by 43 URL-safe base64 characters (32 random bytes). The database keeps
its SHA-256 and its first 11 characters (`prefix`, to tell keys apart in listings); a leaked
database therefore gives nobody a usable key. Requests carry it as `Authorization: Bearer KEY`.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.auth.models import ApiKey
from cloud.errors import Forbidden, Unauthorized

KEY_PREFIX = "tg_"
ADMIN_SCOPE = "admin"
INGEST_SCOPE_PREFIX = "ingest:"  # + a direct source id: may send that source's events
_PREFIX_CHARS = 11


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key: `secret` is shown to the operator once and never stored."""

    id: int
    name: str
    scope: str
    prefix: str
    secret: str


def hash_key(secret: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


async def create_api_key(
    *, session: AsyncSession, name: str, scope: str = ADMIN_SCOPE
) -> IssuedKey:
    """Make a key with `scope`; only its hash and prefix are stored."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        name=name,
        prefix=secret[:_PREFIX_CHARS],
        key_hash=hash_key(secret),
        scope=scope,
        created_at=datetime.now(UTC),
    )
    session.add(row)
    await session.flush()
    return IssuedKey(id=row.id, name=name, scope=scope, prefix=row.prefix, secret=secret)


async def revoke_api_key(*, session: AsyncSession, prefix: str) -> int:
    """Revoke every live key whose prefix is `prefix`; how many were revoked."""
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def authenticate(*, session: AsyncSession, secret: str | None, scope: str) -> ApiKey:
    """The live key behind `secret`, if its scope is `scope`; else Unauthorized or Forbidden."""
    row = await live_key(session=session, secret=secret)
    if row.scope != scope:
        raise Forbidden(f"API key {row.prefix}… has scope {row.scope!r}, this needs {scope!r}")
    return row


async def live_key(*, session: AsyncSession, secret: str | None) -> ApiKey:
    """The live key behind `secret`, whatever its scope; else Unauthorized."""
    if not secret:
        raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>'")
    row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(secret)))
    if row is None or row.revoked_at is not None:
        raise Unauthorized("unknown or revoked API key")
    return row


def ingest_scope(source_id: str) -> str:
    """The scope of a key that may send events for the direct source `source_id`."""
    return INGEST_SCOPE_PREFIX + source_id
