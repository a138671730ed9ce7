"""The Alembic migrations build exactly the models' schema, on SQLite and PostgreSQL."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import StatementError

from cloud.db import Database
from cloud.gateways.models import Gateway
from cloud.ingest.models import ReceivedBatch, StoredEvent
from cloud.schema import (
    alembic_config,
    current_revision,
    head_revision,
    include_name,
    migrate,
    target_metadata,
)

TABLES = {"gateways", "batches", "events", "incidents"}


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    """An open, not yet migrated database."""
    async with Database(db_url) as db:
        yield db


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"include_name": include_name})
    return list(compare_metadata(context, target_metadata()))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _downgrade_to_base(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, "base")


async def test_migrate_creates_the_tables_the_models_describe(database: Database) -> None:
    assert await current_revision(database.engine) is None

    await migrate(database.engine)

    async with database.engine.connect() as connection:
        assert await connection.run_sync(_tables) >= TABLES | {"alembic_version"}
        assert await connection.run_sync(_diff) == []
    assert await current_revision(database.engine) == head_revision()


async def test_migrate_is_idempotent_and_downgrade_reverts(database: Database) -> None:
    await migrate(database.engine)
    await migrate(database.engine)

    async with database.engine.begin() as connection:
        await connection.run_sync(_downgrade_to_base)
    async with database.engine.connect() as connection:
        assert not (await connection.run_sync(_tables)) & TABLES

    await migrate(database.engine)
    assert await current_revision(database.engine) == head_revision()


async def test_times_come_back_utc_aware_and_naive_times_are_refused(database: Database) -> None:
    await migrate(database.engine)
    tokyo = datetime(2026, 11, 1, 17, 30, 0, 123456, tzinfo=timezone(timedelta(hours=9)))
    async with database.transaction(write=True) as session:
        session.add(Gateway(id="gw-tz", public_key_pem="pem", registered_at=tokyo))

    async with database.transaction() as session:
        stored = await session.scalar(select(Gateway.registered_at))
        later = await session.scalar(
            select(Gateway.id).where(Gateway.registered_at > datetime(2026, 11, 1, 8, tzinfo=UTC))
        )
    assert stored == tokyo and stored.tzinfo is UTC
    assert later == "gw-tz"

    with pytest.raises(StatementError, match="naive datetime"):
        async with database.transaction(write=True) as session:
            session.add(
                Gateway(id="gw-naive", public_key_pem="pem", registered_at=datetime(2026, 11, 1))
            )


async def test_float_quantity_never_reaches_the_database(database: Database) -> None:
    await migrate(database.engine)
    now = datetime.now(UTC)
    async with database.transaction(write=True) as session:
        session.add(Gateway(id="gw-q", public_key_pem="pem", registered_at=now))
        await session.flush()
        batch = ReceivedBatch(
            gateway_id="gw-q",
            first_seq=1,
            last_seq=1,
            prev_hash="0" * 64,
            last_hash="1" * 64,
            signature="sig",
            received_at=now,
            event_count=1,
        )
        session.add(batch)
    event = {
        "gateway_id": "gw-q",
        "seq": 1,
        "device_id": "d",
        "name": "pour",
        "kind": "activity",
        "occurred_at": now,
        "observed_at": now,
        "clock": "synced",
        "attrs": {},
        "prev_hash": "0" * 64,
        "hash": "1" * 64,
        "batch_id": batch.id,
        "received_at": now,
    }

    with pytest.raises(StatementError, match="must be a Decimal"):
        async with database.transaction(write=True) as session:
            session.add(StoredEvent(**event, quantity=1.5))
    async with database.transaction(write=True) as session:
        session.add(StoredEvent(**event, quantity=Decimal("1.50")))
    async with database.transaction() as session:
        assert await session.scalar(select(StoredEvent.quantity)) == Decimal("1.5")


def test_alembic_runs_on_its_own_engine_from_the_packaged_scripts(db_url: str) -> None:
    plain = db_url.replace("+aiosqlite", "").replace("+asyncpg", "")

    command.upgrade(alembic_config(plain), "head")

    async def revision() -> str | None:
        async with Database(db_url) as db:
            return await current_revision(db.engine)

    assert asyncio.run(revision()) == head_revision()
