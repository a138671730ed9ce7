"""`tollgate-cloud threshold add | list | remove` and `sweep --only thresholds` on both backends;
expected failures are one line on stderr and exit 2."""

import asyncio
import json
from datetime import UTC, datetime

import pytest

from cloud.cli import main
from cloud.db import Database
from cloud.schema import migrate
from cloud.webhooks.types import EventType
from tests.cloud.invoices.test_runs import Billing, reading
from tests.cloud.thresholds.conftest import payloads, subscribe


async def _seed(url: str) -> None:
    """home-1 on plan home, a meter with 12 kWh now (this month: `sweep` runs at the real
    now), an endpoint for thresholds."""
    async with Database(url) as db:
        await migrate(db.engine)
        billing = await Billing(db).setup()
        await billing.account("home-1")
        await billing.device("meter-1", "meter", "home-1")
        await billing.send(reading("meter-1", datetime.now(UTC), "12"))
        await subscribe(db, EventType.USAGE_THRESHOLD_REACHED)


async def _messages(url: str) -> list[str]:
    async with Database(url) as db:
        return [m["metric_id"] for m in await payloads(db, EventType.USAGE_THRESHOLD_REACHED)]


def test_add_list_sweep_and_remove(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(_seed(db_url))
    db = ["--db", db_url]

    assert (
        main(["threshold", "add", "--account", "home-1", "--metric", "kwh", "--units", "10", *db])
        == 0
    )
    assert "threshold 1: home-1 kwh units >= 10" in capsys.readouterr().out
    assert main(["threshold", "add", "--account", "home-1", "--amount", "500", *db]) == 0
    assert "threshold 2: home-1 all usage amount >= 500" in capsys.readouterr().out

    # this month: 12 kWh reach 10 units; 2.20 EUR is far from 500
    assert main(["sweep", "--only", "thresholds", *db]) == 0
    assert "thresholds: 1 accounts, 2 thresholds pending, 1 fired" in capsys.readouterr().out
    assert asyncio.run(_messages(db_url)) == ["kwh"]

    assert main(["threshold", "list", "--account", "home-1", *db]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == [
        "id",
        "metric",
        "measure",
        "value",
        "enabled",
        "last",
        "fired",
        "observed",
    ]
    assert table[2].split()[:5] == ["1", "kwh", "units", "10", "yes"]
    assert table[2].split()[-1] == "12"
    assert table[3].split() == ["2", "(all", "usage)", "amount", "500", "yes"]
    assert main(["threshold", "list", "--account", "home-1", "--json", *db]) == 0
    assert [t["id"] for t in json.loads(capsys.readouterr().out)] == [1, 2]

    assert main(["threshold", "remove", "1", *db]) == 0
    assert "threshold 1 removed" in capsys.readouterr().out
    assert main(["threshold", "list", "--account", "home-1", "--json", *db]) == 0
    assert [t["id"] for t in json.loads(capsys.readouterr().out)] == [2]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "--account", "home-1", "--metric", "kwh", "--units", "ten"], "not a decimal"),
        (["add", "--account", "home-1", "--metric", "kwh", "--units", "-1"], "positive"),
        (["add", "--account", "home-1", "--metric", "kwh", "--units", "1e40"], "digits"),
        (["add", "--account", "home-1", "--units", "3"], "needs a metric"),
        (["add", "--account", "home-1", "--metric", "water", "--units", "3"], "'water'"),
        (["add", "--account", "nobody", "--amount", "3"], "no account 'nobody'"),
        (["list", "--account", "nobody"], "no account 'nobody'"),
        (["remove", "7"], "no threshold 7"),
        (["remove", str(2**64)], "no such threshold"),
    ],
)
def test_refusals_are_one_line_and_exit_2(
    db_url: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    asyncio.run(_seed(db_url))

    assert main(["threshold", *argv, "--db", db_url]) == 2

    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert main(["threshold", "list", "--account", "home-1", "--json", "--db", db_url]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_disable_and_enable(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(_seed(db_url))
    db = ["--db", db_url]
    assert main(["threshold", "add", "--account", "home-1", "--amount", "1", *db]) == 0
    capsys.readouterr()

    assert main(["threshold", "disable", "1", *db]) == 0
    assert capsys.readouterr().out.strip() == "threshold 1 disabled"
    assert main(["sweep", "--only", "thresholds", *db]) == 0
    assert "0 thresholds pending" in capsys.readouterr().out
    assert asyncio.run(_messages(db_url)) == []  # paused: not checked
    assert main(["threshold", "enable", "1", *db]) == 0
    assert capsys.readouterr().out.strip() == "threshold 1 enabled"
    assert main(["sweep", "--only", "thresholds", *db]) == 0
    assert asyncio.run(_messages(db_url)) == [None]  # all usage: 2.20 EUR reach 1

    assert main(["threshold", "enable", "77", *db]) == 2
    assert "no threshold 77" in capsys.readouterr().err
