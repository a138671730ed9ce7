"""API keys: made once, shown once, stored as their SHA-256 only; they can expire and be revoked.

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
from cloud.auth.roles import INGEST_PREFIX, Role, check_scope
from cloud.errors import Unauthorized

KEY_PREFIX = "tg_"
ADMIN_SCOPE = Role.ADMIN.value
INGEST_SCOPE_PREFIX = INGEST_PREFIX  # + a direct source id: may send that source's events
_PREFIX_CHARS = 11


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key: `secret` is shown to the operator once and never stored."""

    id: int
    name: str
    scope: str
    prefix: str
    secret: str
    expires_at: datetime | None = None


def hash_key(secret: str) -> str:
    """The stored form of a key (or of a share link's token)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_secret(kind: str, *, prefix_chars: int) -> tuple[str, str, str]:
    """A new secret reading `kind` + 32 random bytes: (secret, its hash, its shown prefix)."""
    secret = kind + secrets.token_urlsafe(32)
    return secret, hash_key(secret), secret[:prefix_chars]


async def create_api_key(
    *,
    session: AsyncSession,
    name: str,
    scope: str = ADMIN_SCOPE,
    expires_at: datetime | None = None,
) -> IssuedKey:
    """Make a key with role `scope`; only its hash and prefix are stored."""
    check_scope(scope)
    secret, key_hash, prefix = new_secret(KEY_PREFIX, prefix_chars=_PREFIX_CHARS)
    row = ApiKey(
        name=name,
        prefix=prefix,
        key_hash=key_hash,
        scope=scope,
        created_at=datetime.now(UTC),
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    return IssuedKey(
        id=row.id,
        name=name,
        scope=scope,
        prefix=row.prefix,
        secret=secret,
        expires_at=expires_at,
    )


async def revoke_api_key(*, session: AsyncSession, prefix: str) -> int:
    """Revoke every live key whose prefix is `prefix`; how many were revoked."""
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def live_key(
    *, session: AsyncSession, secret: str | None, now: datetime | None = None
) -> ApiKey:
    """The live key behind `secret`, whatever its role; else Unauthorized saying why."""
    if not secret:
        raise Unauthorized(
            "an API key is required: send 'Authorization: Bearer <key>'",
            detail={"missing": "api_key"},
        )
    row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(secret)))
    if row is None:
        raise Unauthorized("unknown API key", detail={"missing": "valid_api_key"})
    if row.revoked_at is not None:
        raise Unauthorized(
            f"API key {row.prefix}… was revoked at {row.revoked_at.isoformat()}",
            detail={"missing": "live_api_key", "prefix": row.prefix, "reason": "revoked"},
        )
    moment = now or datetime.now(UTC)
    if row.expires_at is not None and row.expires_at <= moment:
        raise Unauthorized(
            f"API key {row.prefix}… expired at {row.expires_at.isoformat()}",
            detail={"missing": "live_api_key", "prefix": row.prefix, "reason": "expired"},
        )
    return row


def ingest_scope(source_id: str) -> str:
    """The scope of a key that may send events for the direct source `source_id`."""
    return INGEST_SCOPE_PREFIX + source_id
