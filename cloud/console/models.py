"""The `users` and `console_sessions` tables: argon2id hashes and session-token SHA-256s only."""

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, SurrogateKey, UtcDateTime

MAX_NAME = 64  # a login name's length
MAX_PASSWORD = 256  # characters: argon2 works on at most this much
MIN_PASSWORD = 12


class ConsoleUser(Base):
    """A person who logs in to the console; `role` is admin, billing or viewer."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))  # argon2id, PHC string
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    disabled: Mapped[bool] = mapped_column(Boolean)


class ConsoleSession(Base):
    """A logged-in browser: only the SHA-256 of its cookie's token is stored.

    Kept in the database so that every collector process serving the console shares it.
    """

    __tablename__ = "console_sessions"
    __table_args__ = (Index(None, "user_id"),)

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(SurrogateKey, ForeignKey("users.id"))
    csrf_token: Mapped[str] = mapped_column(String(64))  # sent back in every form
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)  # absolute: created + 12 h
