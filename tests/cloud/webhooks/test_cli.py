"""`tollgate-cloud webhook ...` and the `webhooks` sweep job, through `main` on both backends;
expected failures exit 2 with one line on stderr."""

import asyncio

import pytest

from cloud.cli import main
from cloud.db import Database
from cloud.webhooks.outbox import emit

DEAD_URL = "http://127.0.0.1:9/hooks"  # the discard port: nothing listens, connections refused


@pytest.fixture
def url(db_url: str) -> str:
    """A migrated database, its URL as a user types it."""
    plain = db_url.replace("+aiosqlite", "").replace("+asyncpg", "")
    assert main(["migrate", "--db", plain]) == 0
    return plain


def _emit(db_url: str) -> str | None:
    async def run() -> str | None:
        async with Database(db_url) as db:
            return await db.run_write(lambda s: emit(s, "gateway.offline", {"gateway_id": "g"}))

    return asyncio.run(run())


def test_add_list_sweep_deliveries_disable_enable(
    url: str, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["webhook", "add", DEAD_URL, "--events", "gateway.offline,gateway.online",
                 "--db", url]) == 0  # fmt: skip
    added = capsys.readouterr().out
    assert "endpoint 1:" in added and "secret whsec_" in added
    assert main(["webhook", "list", "--db", url]) == 0
    listed = capsys.readouterr().out
    assert DEAD_URL in listed and "enabled" in listed and "whsec_" not in listed

    message = _emit(db_url)
    assert main(["sweep", "--only", "webhooks", "--db", url]) == 0
    assert "webhooks: 1 sent: 0 delivered, 1 to retry" in capsys.readouterr().out
    assert main(["webhook", "deliveries", "--state", "pending", "--db", url]) == 0
    log = capsys.readouterr().out
    assert f"{message}\tgateway.offline" in log and "ConnectError" in log

    assert main(["webhook", "disable", "1", "--db", url]) == 0
    assert main(["webhook", "list", "--db", url]) == 0
    assert "DISABLED (disabled from the CLI)" in capsys.readouterr().out
    assert main(["webhook", "enable", "1", "--db", url]) == 0
    assert "enabled" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["add", DEAD_URL, "--events", "incident.exploded"], "unknown event type"),
        (["add", DEAD_URL, "--events", ","], "at least one"),
        (["add", "ftp://example.com/", "--events", "gateway.online"], "http:// or https://"),
        (["disable", "42"], "no webhook endpoint 42"),
        (["enable", "42"], "no webhook endpoint 42"),
        (["replay", "42"], "no webhook delivery 42"),
        (["deliveries", "--limit", "0"], "--limit must be 1..1000"),
    ],
)
def test_expected_failures_exit_2_with_one_line(
    url: str, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    assert main(["webhook", *args, "--db", url]) == 2

    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and "Traceback" not in err
