"""The bulk insert of a batch's new events: COPY on PostgreSQL, one executemany elsewhere.

On PostgreSQL (asyncpg) the rows go to the database with `COPY events (...) FROM STDIN` in the
binary format (asyncpg's `copy_records_to_table`), on the write transaction's own connection, in
the same transaction: about half the database time of the executemany below (bench/
collector_ingest.py prints both against the raw COPY ceiling). COPY has no `ON CONFLICT`, and
needs none: `store_batch` inserts only the seqs it found unstored while holding the gateway's row
lock (`cloud.ingest.store`), which is also what keeps `(gateway_id, seq)` unique in the table
partitioned by month. A COPY into the partitioned parent routes each row to its month's
partition (created first by `insert_new`). The values are those the ORM would bind: the same
Decimal, the same UTC datetimes, the attrs as the engine's own JSON text.

Elsewhere (SQLite):

SQLAlchemy's generic executemany path builds and processes one parameter dictionary per row, about
20 µs per event, which made it the largest cost of ingest at 1000-event batches. Here the dialect's
own `INSERT ... ON CONFLICT (gateway_id, seq) DO NOTHING` is compiled by SQLAlchemy, the column
types' own bind processors (`UtcDateTime`, `DecimalText`, JSON) are applied column by column, and
the rows go to the driver's executemany as tuples. Values stored are exactly what the ORM stores.
"""

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple, cast

import orjson
from sqlalchemy import Connection, Insert, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.util import await_only

from cloud.db import to_utc
from cloud.ingest.models import StoredEvent
from shared.events import UsageEvent

Processor = Callable[[Any], Any]

EVENTS = cast(Table, StoredEvent.__table__)


class EventInsert(NamedTuple):
    """The compiled statement, its positional column order and each column's bind processor."""

    sql: str
    columns: tuple[str, ...]
    processors: dict[str, Processor]


def insert_new_events(dialect_name: str) -> Insert:
    """`INSERT INTO events ... ON CONFLICT (primary key) DO NOTHING` for this dialect.

    PostgreSQL's partitioned `events` has the key (gateway_id, seq, occurred_at) (migration 0017).
    """
    if dialect_name == "postgresql":
        keys = ["gateway_id", "seq", "occurred_at"]
        return postgresql.insert(EVENTS).on_conflict_do_nothing(index_elements=keys)
    return sqlite.insert(EVENTS).on_conflict_do_nothing(index_elements=["gateway_id", "seq"])


@functools.lru_cache(maxsize=8)
def compile_event_insert(dialect: Dialect) -> EventInsert:
    """Compile the insert for a dialect (once per engine) and look up its bind processors."""
    compiled = insert_new_events(dialect.name).compile(dialect=dialect)
    columns = tuple(compiled.positiontup or ())
    processors: dict[str, Processor] = {}
    for name in columns:
        process = EVENTS.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors[name] = process
    return EventInsert(compiled.string, columns, processors)


def event_rows(
    insert: EventInsert, events: Sequence[UsageEvent], *, batch_id: int, received_at: datetime
) -> list[tuple[Any, ...]]:
    """The positional parameter rows for `events`, built column by column.

    `batch_id` and `received_at` are the same for every row (processed once); every other column
    is the `UsageEvent` attribute of the same name.
    """
    per_batch: dict[str, Any] = {"batch_id": batch_id, "received_at": received_at}
    columns: list[list[Any]] = []
    for name in insert.columns:
        process = insert.processors.get(name)
        if name in per_batch:
            value = per_batch[name] if process is None else process(per_batch[name])
            columns.append([value] * len(events))
            continue
        values = [getattr(event, name) for event in events]
        columns.append(values if process is None else [process(value) for value in values])
    return list(zip(*columns, strict=True))


def insert_events(
    *, session: Session, events: Sequence[UsageEvent], batch_id: int, received_at: datetime
) -> None:
    """Insert `events`, whose seqs the caller found unstored under the gateway's lock.

    COPY on PostgreSQL through asyncpg; elsewhere one executemany that also skips any
    `(gateway_id, seq)` already stored.
    """
    connection = session.connection()
    if uses_copy(connection.dialect):
        copy_events(connection, events, batch_id=batch_id, received_at=received_at)
    else:
        executemany_events(connection, events, batch_id=batch_id, received_at=received_at)


def executemany_events(
    connection: Connection, events: Sequence[UsageEvent], *, batch_id: int, received_at: datetime
) -> None:
    """Insert `events` with one executemany, skipping any `(gateway_id, seq)` already stored."""
    insert = compile_event_insert(connection.dialect)
    rows = event_rows(insert, events, batch_id=batch_id, received_at=received_at)
    connection.exec_driver_sql(insert.sql, rows)


# The columns COPY writes, in the table's order (the ORM model's; 0017's partitioned table too).
COPY_COLUMNS: tuple[str, ...] = tuple(column.name for column in EVENTS.columns)


def uses_copy(dialect: Dialect) -> bool:
    """Whether `insert_events` COPYs on this dialect (PostgreSQL through asyncpg)."""
    return dialect.name == "postgresql" and dialect.driver == "asyncpg"


def copy_records(
    events: Sequence[UsageEvent], *, batch_id: int, received_at: datetime
) -> list[tuple[Any, ...]]:
    """The COPY records of `events`, in `COPY_COLUMNS` order, as asyncpg's codecs take them."""
    received = to_utc(received_at)
    dumps = orjson.dumps
    return [
        (
            event.gateway_id,
            event.seq,
            event.device_id,
            event.channel,
            event.name,
            event.kind.value,
            event.quantity,
            event.unit,
            to_utc(event.occurred_at),
            to_utc(event.observed_at),
            event.clock.value,
            dumps(event.attrs).decode(),  # what the engine's json_serializer writes
            event.prev_hash,
            event.hash,
            batch_id,
            received,
        )
        for event in events
    ]


def copy_events(
    connection: Connection, events: Sequence[UsageEvent], *, batch_id: int, received_at: datetime
) -> None:
    """COPY `events` into `events` on `connection`'s asyncpg connection, in its transaction.

    Called from a blocking `Session` under `run_sync`, so the driver's coroutine is awaited
    through SQLAlchemy's greenlet bridge. A driver error is translated as SQLAlchemy translates
    its own statements' (a lost connection is invalidated and answers 503, as for any write).
    """
    fairy = connection.connection
    driver = fairy.driver_connection
    assert driver is not None
    if not driver.is_in_transaction():
        # The batch row was inserted in this transaction first; a COPY outside it would commit
        # on its own.
        raise RuntimeError("COPY of events outside the write transaction")
    records = copy_records(events, batch_id=batch_id, received_at=received_at)
    try:
        await_only(
            driver.copy_records_to_table(
                EVENTS.name, records=records, columns=COPY_COLUMNS, timeout=None
            )
        )
    except Exception as error:  # the driver's error, translated by the dialect's adapter
        adapted = fairy.dbapi_connection
        try:
            adapted._handle_exception(error)  # type: ignore[union-attr]
        except Exception as translated:
            statement = f"COPY {EVENTS.name} ({', '.join(COPY_COLUMNS)}) FROM STDIN BINARY"
            connection._handle_dbapi_exception(translated, statement, None, None, None)
        raise  # pragma: no cover - _handle_exception always raises
