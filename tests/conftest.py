"""Suite-wide fixtures: real databases (SQLite and PostgreSQL) and a leak check."""

import asyncio
import os
import threading
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

POSTGRES_ADMIN_DSN = os.environ.get(
    "TOLLGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() == "true"


def _postgres_available() -> bool:
    import asyncpg

    async def probe() -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=3)
        await connection.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True


# Files that take minutes (real processes, clusters, fresh venvs): collected first, so that with
# `pytest -n 2 --dist loadfile` they start at once instead of leaving one worker busy at the end.
LONG_FILES = (
    "tests/install/",
    "tests/deploy/test_image_install.py",
    "tests/e2e/",
    "tests/cloud/bus/cluster/",
    "tests/firmware_sims/test_demo.py",
    "tests/cloud/invoices/test_run_workers.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long files first, longest first (LONG_FILES' order, then any file with a slow test); a
    stable sort: each file's tests stay together and in their order."""
    root = config.rootpath
    rank: dict[object, int] = {}
    for item in items:
        path = item.path.relative_to(root).as_posix()
        listed = [i for i, prefix in enumerate(LONG_FILES) if path.startswith(prefix)]
        slow = item.get_closest_marker("slow") is not None
        here = listed[0] if listed else len(LONG_FILES) if slow else len(LONG_FILES) + 1
        rank[item.path] = min(rank.get(item.path, here), here)
    items.sort(key=lambda item: rank[item.path])


@pytest.fixture(scope="session", autouse=True)
def change_feed() -> None:
    """The collector's change-feed consumers, as every real process subscribes them at start
    (create_app and the CLI call `connect`); tests that store batches without an app need them."""
    from cloud.wiring import connect

    connect()


@pytest.fixture(scope="session")
def postgres_admin_dsn() -> str:
    """The PostgreSQL server of this machine; a failure under CI=true, a skip elsewhere."""
    if not _postgres_available():
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI=true but {POSTGRES_ADMIN_DSN} is down")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_DSN}")
    return POSTGRES_ADMIN_DSN


MQTT_URL = os.environ.get("TOLLGATE_TEST_MQTT", "mqtt://127.0.0.1:1883")


def _mqtt_available() -> bool:
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(MQTT_URL)
    try:
        socket.create_connection((parts.hostname, parts.port or 1883), timeout=3).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def mqtt_broker() -> str:
    """The MQTT broker (Mosquitto) of this machine; a failure under CI=true, a skip elsewhere."""
    if not _mqtt_available():
        if IN_CI:
            pytest.fail(f"Mosquitto is required under CI=true but {MQTT_URL} is down")
        pytest.skip(f"MQTT broker not reachable at {MQTT_URL}")
    return MQTT_URL


async def _create_database(admin_dsn: str, name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def _drop_database(admin_dsn: str, name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture
def postgres_url(postgres_admin_dsn: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"tollgate_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_create_database(postgres_admin_dsn, name))
    base = postgres_admin_dsn.rsplit("/", 1)[0]
    yield f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
    asyncio.run(_drop_database(postgres_admin_dsn, name))


@pytest.fixture
def sqlite_url(tmp_path: "os.PathLike[str]") -> str:
    """A fresh SQLite database file for one test."""
    return f"sqlite+aiosqlite:///{tmp_path}/cloud.sqlite"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Every cloud test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves non-daemon threads running (like pymodbus' system health check)."""
    before = set(threading.enumerate())
    yield
    leaked = [
        t
        for t in threading.enumerate()
        if t not in before
        and t.is_alive()
        and not t.daemon
        and not t.name.startswith(("asyncio_", "ThreadPoolExecutor"))
    ]
    for thread in leaked:
        thread.join(timeout=5)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"test leaked threads: {still}"


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """Fail an async test that leaves tasks running on its loop."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    leaked = [
        t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()
    ]
    for task in leaked:
        task.cancel()
    assert not leaked, f"test leaked tasks: {[t.get_coro() for t in leaked]}"
