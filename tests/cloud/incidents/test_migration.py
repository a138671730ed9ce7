"""Migration 0010 on a database with incidents filed before it (SQLite and PostgreSQL): they
become resolved at creation, counted once, and the downgrade gives the old table back."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection

from cloud.db import Database
from cloud.schema import alembic_config

CREATED = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    """An open database migrated to 0009, with one incident filed the old way."""
    async with Database(db_url) as db:
        async with db.engine.begin() as connection:
            await connection.run_sync(_to, "0009")
            await connection.execute(
                text(
                    "INSERT INTO incidents (gateway_id, kind, detail, first_seq, last_seq, "
                    "created_at) VALUES ('gw-old', 'chain_broken', 'refused', 5, 9, :at)"
                ),
                {
                    "at": CREATED.replace(tzinfo=None)
                    if db.engine.dialect.name == "sqlite"
                    else CREATED
                },
            )
        yield db


def _to(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _down(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def test_old_incidents_become_resolved_at_creation(database: Database) -> None:
    async with database.engine.begin() as connection:
        await connection.run_sync(_to, "0010")
        row = (
            await connection.execute(
                text(
                    "SELECT state, count, first_seq, last_seq, resolved_by, resolved_reason, "
                    "device_id, evidence, first_seen = last_seen, first_seen = resolved_at "
                    "FROM incidents"
                )
            )
        ).one()

    assert tuple(row) == (
        "resolved",
        1,
        5,
        9,
        "migration 0010",
        "filed before incidents had a lifecycle",
        None,
        None,
        True,
        True,
    )


async def test_downgrade_gives_the_old_table_back(database: Database) -> None:
    async with database.engine.begin() as connection:
        await connection.run_sync(_to, "0010")
        await connection.run_sync(_down, "0009")
        row = (
            await connection.execute(text("SELECT gateway_id, kind, created_at FROM incidents"))
        ).one()

    assert row[:2] == ("gw-old", "chain_broken") and row[2] is not None
