"""Console users: add, reset a password (which ends the user's sessions), list, check a login.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second recommended
profile); only the PHC string is stored. `check_login` spends one argon2 verification whether or
not the name exists, so an unknown name and a wrong password take the same time and answer alike.
"""

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.auth.roles import Role
from cloud.console.models import MAX_NAME, MAX_PASSWORD, MIN_PASSWORD, ConsoleSession, ConsoleUser
from cloud.errors import AlreadyExists, CollectorError, InvalidParameters

NAME_CHARACTERS = "letters, digits, '.', '_', '-' and '@'"


class UserNotFound(CollectorError):
    """No console user of that name."""

    status = 404
    code = "user_not_found"


@dataclass(frozen=True, slots=True)
class UserView:
    """A user as listed (never the hash)."""

    name: str
    role: str
    created_at: datetime
    disabled: bool


@cache
def hasher() -> PasswordHasher:
    """The argon2id hasher (argon2-cffi's default parameters)."""
    return PasswordHasher()


@cache
def _dummy_hash() -> str:
    """A hash to verify against when the name is unknown: the same work as a real one."""
    return hasher().hash("not the password of anyone at all")


def check_password_rule(password: str) -> str:
    """`password` if it has 12 to 256 characters; else ValueError saying so."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a console password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ValueError(f"a console password has at most {MAX_PASSWORD} characters")
    return password


def check_name(name: str) -> str:
    """`name` if it is a usable login name; else ValueError."""
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")
    if not 1 <= len(name) <= MAX_NAME or not set(name) <= allowed:
        raise ValueError(f"a login name has 1 to {MAX_NAME} of {NAME_CHARACTERS}")
    return name


def check_role(role: str) -> Role:
    """`role` as a console role (admin, billing, viewer); else ValueError."""
    if role not in set(Role):
        raise ValueError(f"unknown role {role!r}: admin, billing or viewer")
    return Role(role)


async def add_user(*, session: AsyncSession, name: str, role: str, password: str) -> UserView:
    """Create a user; AlreadyExists if the name is taken, InvalidParameters for a bad input."""
    try:
        check_name(name)
        check_role(role)
        check_password_rule(password)
    except ValueError as exc:
        raise InvalidParameters(str(exc)) from None
    if await _find(session, name) is not None:
        raise AlreadyExists(f"a console user {name!r} exists", detail={"name": name})
    row = ConsoleUser(
        name=name,
        role=role,
        password_hash=hasher().hash(password),
        created_at=datetime.now(UTC),
        disabled=False,
    )
    session.add(row)
    await session.flush()
    return _view(row)


async def reset_password(*, session: AsyncSession, name: str, password: str) -> int:
    """Give `name` a new password and end their sessions; how many sessions ended."""
    try:
        check_password_rule(password)
    except ValueError as exc:
        raise InvalidParameters(str(exc)) from None
    row = await _find(session, name)
    if row is None:
        raise UserNotFound(f"no console user {name!r}", detail={"name": name})
    row.password_hash = hasher().hash(password)
    ended = await session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == row.id))
    return int(ended.rowcount)  # type: ignore[attr-defined]


async def set_disabled(*, session: AsyncSession, name: str, disabled: bool) -> int:
    """Disable (ending their sessions) or enable `name`; how many sessions ended."""
    row = await _find(session, name)
    if row is None:
        raise UserNotFound(f"no console user {name!r}", detail={"name": name})
    row.disabled = disabled
    if not disabled:
        return 0
    ended = await session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == row.id))
    return int(ended.rowcount)  # type: ignore[attr-defined]


async def list_users(*, session: AsyncSession) -> list[UserView]:
    """Every user, by name."""
    rows = await session.scalars(select(ConsoleUser).order_by(ConsoleUser.name))
    return [_view(row) for row in rows]


async def check_login(*, session: AsyncSession, name: str, password: str) -> ConsoleUser | None:
    """The enabled user whose password this is, else None (one argon2 verify either way).

    The caller bounds `name` and `password` before: argon2 is the expensive step, run in a
    worker thread so that the event loop goes on serving.
    """
    row = await _find(session, name)
    stored = row.password_hash if row is not None else _dummy_hash()
    if not await asyncio.to_thread(_verifies, stored, password):
        return None
    if row is None or row.disabled:
        return None
    return row


def _verifies(stored: str, password: str) -> bool:
    try:
        return hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


async def _find(session: AsyncSession, name: str) -> ConsoleUser | None:
    found: ConsoleUser | None = await session.scalar(
        select(ConsoleUser).where(ConsoleUser.name == name)
    )
    return found


def _view(row: ConsoleUser) -> UserView:
    return UserView(name=row.name, role=row.role, created_at=row.created_at, disabled=row.disabled)
