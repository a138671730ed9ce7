"""Console sessions: a random cookie token (only its SHA-256 stored), idle and absolute expiry.

    open_session    a new session for a user: (cookie token, CSRF token)
    live_session    the session and user behind a cookie token, if neither expiry has passed
    close_session   logout; `reset_password` ends all of a user's sessions (cloud.console.users)

The rows are in the database (`console_sessions`), so every collector process serving the
console knows every session. `last_seen_at` is written at most once a minute per session.
"""

import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.auth.service import hash_key
from cloud.console.models import ConsoleSession, ConsoleUser
from cloud.errors import InvalidSettings

IDLE_ENV = "TOLLGATE_CONSOLE_IDLE"
DEFAULT_IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=12)
TOUCH_EVERY = timedelta(minutes=1)
TOKEN_PREFIX = "tgc_"
MAX_TOKEN = 64  # characters of a cookie token we look up at all


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """How long a session lives: `idle` without a request, `absolute` at most."""

    idle: timedelta = DEFAULT_IDLE
    absolute: timedelta = ABSOLUTE
    secure_cookies: bool = False  # TOLLGATE_PUBLIC_URL is https: Secure whatever the request

    @classmethod
    def load(cls, *, public_url: str = "") -> "ConsoleSettings":
        """From $TOLLGATE_CONSOLE_IDLE (`1800`, `30m`, `2h`; default 30 minutes)."""
        text = os.environ.get(IDLE_ENV, "").strip()
        idle = parse_duration(text, name=IDLE_ENV) if text else DEFAULT_IDLE
        return cls(idle=idle, secure_cookies=public_url.startswith("https://"))


def parse_duration(text: str, *, name: str) -> timedelta:
    """`90`, `90s`, `30m` or `2h` as a duration of 1 s to 12 h; InvalidSettings otherwise."""
    found = re.fullmatch(r"(\d{1,6})([smh]?)", text)
    if found is None:
        raise InvalidSettings(f"{name}={text!r}: use seconds, or a number with s, m or h")
    seconds = int(found[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[found[2]]
    if not 1 <= seconds <= ABSOLUTE.total_seconds():
        raise InvalidSettings(f"{name}={text!r}: between 1 s and 12 h")
    return timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True)
class LiveSession:
    """A logged-in browser: who, with which role, and the CSRF token its forms carry."""

    session_id: int
    user_name: str
    role: str
    csrf_token: str


async def open_session(
    *, session: AsyncSession, user: ConsoleUser, settings: ConsoleSettings, now: datetime
) -> tuple[str, LiveSession]:
    """A new session for `user`: the cookie token (shown once, never stored) and the session."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ConsoleSession(
        token_hash=hash_key(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + settings.absolute,
    )
    session.add(row)
    await session.flush()
    return token, LiveSession(
        session_id=row.id, user_name=user.name, role=user.role, csrf_token=row.csrf_token
    )


async def live_session(
    *, session: AsyncSession, token: str | None, settings: ConsoleSettings, now: datetime
) -> LiveSession | None:
    """The live session behind `token`; None when unknown, expired (then deleted) or disabled."""
    if not token or len(token) > MAX_TOKEN or not token.startswith(TOKEN_PREFIX):
        return None
    found = (
        await session.execute(
            select(ConsoleSession, ConsoleUser)
            .join(ConsoleUser, ConsoleUser.id == ConsoleSession.user_id)
            .where(ConsoleSession.token_hash == hash_key(token))
        )
    ).first()
    if found is None:
        return None
    row, user = found
    if row.expires_at <= now or row.last_seen_at + settings.idle <= now or user.disabled:
        await session.execute(delete(ConsoleSession).where(ConsoleSession.id == row.id))
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        await session.execute(
            update(ConsoleSession).where(ConsoleSession.id == row.id).values(last_seen_at=now)
        )
    return LiveSession(
        session_id=row.id, user_name=user.name, role=user.role, csrf_token=row.csrf_token
    )


async def close_session(*, session: AsyncSession, session_id: int) -> None:
    """End one session (logout)."""
    await session.execute(delete(ConsoleSession).where(ConsoleSession.id == session_id))


def now_utc() -> datetime:
    """The time sessions are judged by."""
    return datetime.now(UTC)
