"""Alembic environment: runs migrations on the collector's async engine via `run_sync`.

`cloud.schema.migrate` hands over an open connection in `config.attributes["connection"]`; when
Alembic is driven directly (`alembic -x ...` with this folder as script_location) this file builds
its own async engine from `sqlalchemy.url`.
"""

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from cloud.schema import include_name, target_metadata
from cloud.settings import normalize_db_url

config = context.config


def run_migrations_offline() -> None:
    """Emit the SQL for the migrations without a database connection."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata(),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_on(connection: Connection) -> None:
    """Run the migrations on one open (sync-facade) connection."""
    context.configure(
        connection=connection, target_metadata=target_metadata(), include_name=include_name
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_with_own_engine() -> None:
    """Build an async engine from `sqlalchemy.url` and migrate through it."""
    url = normalize_db_url(config.get_main_option("sqlalchemy.url") or "")
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run_on)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    """Migrate through the caller's connection if it gave one, else through our own engine."""
    connection = config.attributes.get("connection")
    if connection is None:
        asyncio.run(run_with_own_engine())
    else:
        run_on(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
