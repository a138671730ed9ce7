"""The private PostgreSQL fixture stops and starts without touching the machine's shared server
(the cluster fixture's kill -9 and restart are proven by test_cluster_ingest's leader test)."""

import asyncio
import contextlib

import asyncpg
import pytest

from tests.support.private_postgres import PrivatePostgres
from tests.support.waiting import eventually


async def test_the_private_postgres_stops_and_starts_with_its_data(
    private_postgres: PrivatePostgres, postgres_admin_dsn: str
) -> None:
    connection = await asyncpg.connect(private_postgres.dsn)
    await connection.execute("CREATE TABLE kept (n int)")
    await connection.execute("INSERT INTO kept VALUES (1), (2)")
    await connection.close()

    await asyncio.to_thread(private_postgres.stop)
    with pytest.raises(OSError):
        await asyncpg.connect(private_postgres.dsn, timeout=3)
    shared = await asyncpg.connect(postgres_admin_dsn, timeout=3)  # the machine's stays up
    await shared.close()

    await asyncio.to_thread(private_postgres.start)

    async def back() -> bool:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            again = await asyncpg.connect(private_postgres.dsn, timeout=3)
            try:
                return await again.fetchval("SELECT sum(n) FROM kept") == 3
            finally:
                await again.close()
        return False

    await eventually(back, what="the private PostgreSQL back with its rows")
