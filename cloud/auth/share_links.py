"""Share links: a token that opens one invoice's page and evidence, and nothing else.

A token reads `tgs_` followed by 43 URL-safe base64 characters; like API keys, only its SHA-256
is stored. A link expires (at most `MAX_LIFETIME` after it is made) and can be revoked; it is
meant for a customer's browser or an e-mail, where no API key may go.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.auth.models import ShareLink
from cloud.auth.service import hash_key, new_secret
from cloud.errors import InvalidParameters, Unauthorized

TOKEN_PREFIX = "tgs_"
DEFAULT_LIFETIME = timedelta(days=14)
MAX_LIFETIME = timedelta(days=90)
_PREFIX_CHARS = 12


@dataclass(frozen=True, slots=True)
class IssuedLink:
    """A new share link: `token` is shown once and never stored."""

    id: int
    invoice_id: int
    token: str
    expires_at: datetime

    @property
    def path(self) -> str:
        """The page's path on the collector."""
        return f"/v1/shared/{self.token}"


async def create_share_link(
    *, session: AsyncSession, invoice_id: int, created_by: str, lifetime: timedelta
) -> IssuedLink:
    """A link to invoice `invoice_id` that expires after `lifetime` (at most 90 days)."""
    if not timedelta(0) < lifetime <= MAX_LIFETIME:
        raise InvalidParameters(
            f"a share link lives more than 0 s and at most {MAX_LIFETIME.days} days",
            detail={"max_seconds": int(MAX_LIFETIME.total_seconds())},
        )
    token, token_hash, prefix = new_secret(TOKEN_PREFIX, prefix_chars=_PREFIX_CHARS)
    now = datetime.now(UTC)
    row = ShareLink(
        invoice_id=invoice_id,
        token_hash=token_hash,
        prefix=prefix,
        created_by=created_by,
        created_at=now,
        expires_at=now + lifetime,
    )
    session.add(row)
    await session.flush()
    return IssuedLink(id=row.id, invoice_id=invoice_id, token=token, expires_at=row.expires_at)


async def open_share_link(
    *, session: AsyncSession, token: str, now: datetime | None = None
) -> ShareLink:
    """The live link behind `token`; else Unauthorized saying why."""
    row = await session.scalar(select(ShareLink).where(ShareLink.token_hash == hash_key(token)))
    if row is None:
        raise Unauthorized("unknown share link", detail={"missing": "valid_share_link"})
    if row.revoked_at is not None:
        raise Unauthorized(
            "this share link was revoked",
            detail={"missing": "live_share_link", "reason": "revoked"},
        )
    if row.expires_at <= (now or datetime.now(UTC)):
        raise Unauthorized(
            f"this share link expired at {row.expires_at.isoformat()}",
            detail={"missing": "live_share_link", "reason": "expired"},
        )
    return row


async def revoke_share_links(*, session: AsyncSession, invoice_id: int) -> int:
    """Revoke every live link to the invoice; how many were revoked."""
    result = await session.execute(
        update(ShareLink)
        .where(ShareLink.invoice_id == invoice_id, ShareLink.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
