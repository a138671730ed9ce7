"""Events partitioned by month on PostgreSQL: migration 0017 with data, and new months on ingest."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.db import Database
from cloud.gateways.models import Gateway
from cloud.ingest.models import ReceivedBatch, StoredEvent
from cloud.ingest.partitions import (
    ensure_month,
    hot_floor,
    month_bounds,
    partition_name,
    partitions,
)
from cloud.schema import alembic_config, migrate
from cloud.settings import Settings
from shared.events import UsageEvent
from tests.cloud.conftest import GATEWAY, counts, http_client, post, running_app
from tests.support.batches import chain_events, draft
from tests.support.waiting import eventually

MONTHS = [(2026, 8), (2026, 9), (2026, 10)]


def _alembic(connection: Connection, action: str, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    getattr(command, action)(config, revision)


async def _at(db: Database, action: str, revision: str) -> None:
    async with db.engine.begin() as connection:
        await connection.run_sync(_alembic, action, revision)


def three_months(gateway_id: str = "gw-parts") -> list[UsageEvent]:
    """A chain of 9 events, three in each month of MONTHS (one on each month's first instant)."""
    drafts = []
    for year, number in MONTHS:
        start = datetime(year, number, 1, tzinfo=UTC)
        for offset in (timedelta(0), timedelta(days=10), timedelta(days=27, hours=23)):
            item = draft(0)
            drafts.append(
                item.model_copy(update={"occurred_at": start + offset, "observed_at": start})
            )
    return chain_events(drafts, gateway_id=gateway_id)


async def _store_plainly(session: AsyncSession, events: list[UsageEvent]) -> None:
    """Events as the ORM stores them (no ingest path: the schema is an old revision)."""
    now = datetime.now(UTC)
    session.add(Gateway(id=events[0].gateway_id, public_key_pem="pem", registered_at=now))
    batch = ReceivedBatch(
        gateway_id=events[0].gateway_id,
        first_seq=events[0].seq,
        last_seq=events[-1].seq,
        prev_hash=events[0].prev_hash,
        last_hash=events[-1].hash,
        signature="sig",
        received_at=now,
        event_count=len(events),
    )
    session.add(batch)
    await session.flush()
    for event in events:
        session.add(StoredEvent(**event.model_dump(), batch_id=batch.id, received_at=now))


async def _rows(db: Database) -> list[tuple[Any, ...]]:
    async with db.transaction() as session:
        result = await session.execute(
            select(
                StoredEvent.gateway_id, StoredEvent.seq, StoredEvent.occurred_at, StoredEvent.hash
            ).order_by(StoredEvent.seq)
        )
        return [tuple(row) for row in result]


async def _scalars(db: Database, sql: str) -> list[Any]:
    async with db.engine.connect() as connection:
        return list((await connection.execute(text(sql))).scalars())


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[Database]:
    """An open, empty PostgreSQL database of this test."""
    async with Database(postgres_url) as db:
        yield db


async def test_migration_partitions_the_stored_events_and_downgrades(pg: Database) -> None:
    await _at(pg, "upgrade", "0016")
    events = three_months()
    async with pg.transaction(write=True) as session:
        await _store_plainly(session, events)
    before = await _rows(pg)
    assert len(before) == 9

    await _at(pg, "upgrade", "0017")

    assert await _rows(pg) == before
    now = datetime.now(UTC)
    names = sorted({partition_name(m) for m in [*MONTHS, (now.year, now.month)]})
    attached = await _scalars(
        pg,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'events'::regclass ORDER BY 1",
    )
    assert attached == names
    for year, number in MONTHS:  # each partition holds its month's three events
        name = partition_name((year, number))
        assert await _scalars(pg, f"SELECT count(*) FROM {name}") == [3]
        indexes = await _scalars(
            pg, f"SELECT indexdef FROM pg_indexes WHERE tablename = '{name}' ORDER BY indexname"
        )
        assert len(indexes) == 3, indexes
        assert any("(device_id, occurred_at)" in item for item in indexes)
        assert any(
            "UNIQUE" in item and "(gateway_id, seq, occurred_at)" in item for item in indexes
        )
    keys = await _scalars(
        pg,
        "SELECT conname FROM pg_constraint WHERE conrelid = 'events'::regclass ORDER BY conname",
    )
    assert keys == ["fk_events_batch_id_batches", "fk_events_gateway_id_gateways", "pk_events"]
    bounds = await _scalars(
        pg,
        "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c "
        "WHERE c.relname = 'events_2026_09'",
    )
    assert bounds == ["FOR VALUES FROM ('2026-09-01 00:00:00+00') TO ('2026-10-01 00:00:00+00')"]

    await _at(pg, "downgrade", "0016")

    assert await _rows(pg) == before
    assert await _scalars(pg, "SELECT relkind::text FROM pg_class WHERE relname = 'events'") == [
        "r"
    ]
    assert await _scalars(pg, "SELECT count(*) FROM pg_class WHERE relname LIKE 'events\\_2%'") == [
        0
    ]
    primary = await _scalars(pg, "SELECT indexdef FROM pg_indexes WHERE indexname = 'pk_events'")
    assert len(primary) == 1 and "(gateway_id, seq)" in primary[0]


async def test_a_batch_gets_the_partitions_of_its_months(
    postgres_url: str, gateway_key: Ed25519PrivateKey
) -> None:
    far = datetime(2031, 5, 17, 12, tzinfo=UTC)
    drafts = [draft(1), draft(2).model_copy(update={"occurred_at": far, "observed_at": far})]
    events = chain_events(drafts, gateway_id=GATEWAY)
    async with running_app(Settings(db_url=postgres_url), gateway_key) as app:
        db: Database = app.state.db
        async with http_client(app) as client:
            assert (await post(client, events, gateway_key)).status_code == 200
            again = chain_events(
                [draft(3).model_copy(update={"occurred_at": far, "observed_at": far})],
                gateway_id=GATEWAY,
                first_seq=3,
                prev_hash=events[-1].hash,
            )
            assert (await post(client, again, gateway_key)).status_code == 200
        assert (await counts(db))["events"] == 3
        async with db.engine.connect() as connection:
            months = await connection.run_sync(partitions)
        assert (2031, 5) in months and (2026, 11) in months
        assert await _scalars(db, "SELECT count(*) FROM events_2031_05") == [2]


async def test_two_processes_creating_one_month_create_it_once(pg: Database) -> None:
    await migrate(pg.engine)
    month = (2040, 2)
    url = pg.engine.url.render_as_string(hide_password=False)
    async with (
        Database(url) as other,
        pg.engine.connect() as first,
        other.engine.connect() as second,
    ):
        await first.begin()
        assert await first.run_sync(ensure_month, month) is True  # not committed yet

        await second.begin()
        waiting = asyncio.create_task(second.run_sync(ensure_month, month))
        await _until_a_creator_waits(pg)
        await first.commit()

        assert await waiting is False  # it looked again under the lock
        await second.commit()
    assert await _scalars(pg, f"SELECT count(*) FROM {partition_name(month)}") == [0]
    start, end = month_bounds(month)
    assert (start, end) == (datetime(2040, 2, 1, tzinfo=UTC), datetime(2040, 3, 1, tzinfo=UTC))


async def _until_a_creator_waits(db: Database) -> None:
    """Until a backend waits for an advisory lock (the second creator queued behind the first)."""

    async def waits() -> bool:
        sql = "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        return bool(await _scalars(db, sql))

    await eventually(waits, what="the second creator to wait for the lock")


def test_hot_months_end_a_day_after_the_month() -> None:
    assert hot_floor(datetime(2026, 12, 1, 12, tzinfo=UTC)) == (2026, 11)
    assert hot_floor(datetime(2026, 12, 2, 0, 0, 1, tzinfo=UTC)) == (2026, 12)
    assert hot_floor(datetime(2027, 1, 1, 23, tzinfo=UTC)) == (2026, 12)


async def test_sqlite_keeps_one_table(sqlite_url: str) -> None:
    async with Database(sqlite_url) as db:
        await migrate(db.engine)
        async with db.transaction() as session:
            assert await session.scalar(select(func.count()).select_from(StoredEvent)) == 0
        assert await _scalars(
            db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'events%'"
        ) == ["events"]
