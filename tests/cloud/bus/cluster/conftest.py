"""Fixtures of the cluster tests: a real three-node JetStream cluster and a private PostgreSQL.

Under CI=true a missing nats-server (or PostgreSQL binaries) is a failure; elsewhere a skip.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.support.nats_cluster import NATS_SERVER, NatsCluster, nats_server_binary
from tests.support.private_postgres import PG_BIN, PrivatePostgres, postgres_binaries


def _missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true")
    pytest.skip(f"{what} not installed")


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """Three nats-server nodes with JetStream, routed to each other, a meta leader elected."""
    if nats_server_binary() is None:
        _missing(f"nats-server ({NATS_SERVER})")
    with NatsCluster(tmp_path / "nats") as cluster:
        yield cluster


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of this test alone (free port, own directory), which it may stop."""
    if postgres_binaries() is None:
        _missing(f"PostgreSQL server binaries ({PG_BIN})")
    with PrivatePostgres() as server:
        yield server
