"""The collector's database layer: engine, declarative base, column types and transactions.

SQLite is the embedded default and PostgreSQL the production store; both must behave the same:

- times are UTC-aware on the way out on both backends (SQLite stores them naive, in UTC);
- quantities are `Decimal`: NUMERIC on PostgreSQL, TEXT on SQLite (never a float);
- a *write* transaction takes the write lock up front: `BEGIN IMMEDIATE` on SQLite, so that a
  read-then-write transaction never fails on a stale snapshot; on PostgreSQL the ingest service
  locks the gateway row (`SELECT ... FOR UPDATE`), which serializes one gateway's batches across
  every collector process sharing the database;
- `Database.run_write` runs a whole write transaction with a blocking `Session`: through the async
  engine on PostgreSQL, on the event loop's thread on SQLite (see `Database` for why).
"""

import asyncio
import enum
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, nullcontext
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Self, TypeVar

import orjson
from sqlalchemy import (
    BigInteger,
    DateTime,
    Dialect,
    Integer,
    MetaData,
    Numeric,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator, TypeEngine

from shared.canonical import format_decimal

_WRITE_OPTION = "tollgate_write"
T = TypeVar("T")

# Deterministic constraint names, so the hand-written migration and the models agree.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# A 64-bit surrogate key; SQLite only autoincrements an INTEGER PRIMARY KEY (its rowid).
SurrogateKey = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base of every collector table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on both backends; naive datetimes are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC; SQLite gets it naive (its DATETIME has no zone)."""
        if value is None:
            return None
        value = to_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, write the DATETIME text SQLAlchemy would, without its slow generic path."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            # "YYYY-MM-DD HH:MM:SS.ffffff": SQLAlchemy's SQLite storage format (isoformat always
            # writes a 4-digit year), a third of the cost per value; ingest binds 2000 per batch.
            return None if value is None else to_utc(value).isoformat(" ", "microseconds")[:26]

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Give the time back as UTC-aware, whatever the backend returned."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def to_utc(value: datetime) -> datetime:
    """The same instant in UTC; naive datetimes are refused."""
    if value.tzinfo is UTC:  # validated events already carry UTC: skip the conversion
        return value
    if value.tzinfo is None:
        raise ValueError("naive datetime: the collector stores UTC-aware times only")
    return value.astimezone(UTC)


class DecimalText(TypeDecorator[Decimal]):
    """An exact decimal: NUMERIC on PostgreSQL, canonical text on SQLite (never a float)."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """NUMERIC where the backend has an exact decimal type, TEXT elsewhere."""
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        """Refuse floats; write text in the canonical notation on SQLite."""
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"quantity must be a Decimal, got {type(value).__name__}")
        return value if dialect.name == "postgresql" else format_decimal(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        """Read back a Decimal from NUMERIC or text."""
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(value)


def _dump_json(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


_ENGINE_OPTIONS: dict[str, Any] = {"json_serializer": _dump_json, "json_deserializer": orjson.loads}


def _configure_sqlite(engine: Engine) -> None:
    """WAL, foreign keys, and BEGIN emitted by us (IMMEDIATE for write transactions)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from sqlite3's legacy transaction control: we emit it in `_on_begin`.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def make_engine(url: str) -> AsyncEngine:
    """An async engine for a normalized URL (`sqlite+aiosqlite` or `postgresql+asyncpg`)."""
    engine = create_async_engine(url, **_ENGINE_OPTIONS)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine.sync_engine)
    return engine


def make_sqlite_writer(url: str) -> Engine:
    """A blocking engine on the same SQLite file (pysqlite), for `Database.run_write`."""
    engine = create_engine(make_url(url).set(drivername="sqlite+pysqlite"), **_ENGINE_OPTIONS)
    _configure_sqlite(engine)
    return engine.execution_options(**{_WRITE_OPTION: True})


class _State(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


class Database:
    """The collector's connection pools as an async context manager (enter once, then closed).

    Reads and most writes go through the async engine. `run_write` runs a whole write transaction
    as one blocking function. On PostgreSQL that is `AsyncSession.run_sync` on the async engine.
    On SQLite it runs right on the event loop's thread, on a blocking pysqlite engine: SQLite is a
    library in this process, its 1000-row insert costs CPU like validating a batch does, and under
    the GIL another thread buys no parallelism. Through aiosqlite every statement was a round trip
    through an event loop busy verifying other batches, and in a worker thread every row's
    `sqlite3_step` handed the GIL back and forth; both held the write lock several times longer
    (bench/collector_ingest.py on SQLite: 18.8k and 20.9k events/s against 23.7k inline).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._state = _State.NEW
        self._engine: AsyncEngine | None = None
        self._readers: async_sessionmaker[AsyncSession] | None = None
        self._writers: async_sessionmaker[AsyncSession] | None = None
        self._sqlite_engine: Engine | None = None
        self._sqlite_writer: sessionmaker[Session] | None = None
        self._sqlite_write_turn: asyncio.Lock | None = None

    async def __aenter__(self) -> Self:
        if self._state is not _State.NEW:
            raise RuntimeError(f"Database is {self._state.value}: it can be entered only once")
        self._engine = make_engine(self.url)
        writer = self._engine.execution_options(**{_WRITE_OPTION: True})
        self._readers = async_sessionmaker(self._engine, expire_on_commit=False)
        self._writers = async_sessionmaker(writer, expire_on_commit=False)
        if self._engine.dialect.name == "sqlite":
            self._sqlite_engine = make_sqlite_writer(self.url)
            self._sqlite_writer = sessionmaker(self._sqlite_engine, expire_on_commit=False)
            # One write transaction at a time in this process, queued on the event loop rather
            # than in SQLite's busy handler (which polls with sleeps, and would block the loop in
            # `run_write`); BEGIN IMMEDIATE still orders writers of other processes.
            self._sqlite_write_turn = asyncio.Lock()
        self._state = _State.OPEN
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._state = _State.CLOSED
        if self._sqlite_engine is not None:
            self._sqlite_engine.dispose()
        if self._engine is not None:
            await self._engine.dispose()

    @property
    def engine(self) -> AsyncEngine:
        """The open engine (for migrations and health checks)."""
        self._require_open()
        assert self._engine is not None
        return self._engine

    def _require_open(self) -> None:
        if self._state is not _State.OPEN:
            raise RuntimeError(f"Database is {self._state.value}, not open")

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self, *, write: bool = False) -> AsyncIterator[AsyncSession]:
        """A session in one transaction, committed on success and rolled back on error.

        `write=True` for a transaction that writes: on SQLite it waits for its turn and takes the
        database write lock before its first statement.
        """
        self._require_open()
        makers = self._writers if write else self._readers
        assert makers is not None
        turn = self._sqlite_write_turn if write and self._sqlite_write_turn else nullcontext()
        async with turn, makers.begin() as session:
            yield session

    async def run_write(self, work: Callable[[Session], T]) -> T:
        """`work(session)` in one write transaction, with a blocking `Session`; its result."""
        self._require_open()
        if self._sqlite_writer is None:
            async with self.transaction(write=True) as session:
                return await session.run_sync(work)
        assert self._sqlite_write_turn is not None
        # The turn first: an aiosqlite write transaction of this process must not be holding the
        # SQLite lock while this blocks the loop it needs to finish.
        async with self._sqlite_write_turn:
            with self._sqlite_writer.begin() as session:
                return work(session)
