"""`tollgate-cloud sessions refresh | list` on both backends; bad input exits 2."""

import asyncio

import orjson
import pytest

from cloud.cli import main
from cloud.db import Database
from tests.cloud.sessions.support import CAMERA, add_device, add_profile, at
from tests.support.usage import GatewayFeed, usage


async def seed(db_url: str) -> None:
    """A camera with one finished and one open session (after a refresh)."""
    async with Database(db_url) as db:
        await add_profile(db, "camera", CAMERA)
        await add_device(db, "cam-1", "camera")
        feed = await GatewayFeed("gw-c1").register(db)
        await feed.send(
            db,
            [
                usage("cam-1", "stream_start", at(0)),
                usage("cam-1", "stream_stop", at(30)),
                usage("cam-1", "stream_start", at(40)),
            ],
        )


def test_refresh_and_list(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = db_url.replace("+aiosqlite", "").replace("+asyncpg", "")
    assert main(["migrate", "--db", url]) == 0
    asyncio.run(seed(db_url))
    capsys.readouterr()
    assert main(["sessions", "refresh", "--db", url]) == 0
    out = capsys.readouterr().out
    assert "1 pairs, 3 events, 2 written, 0 retired" in out

    assert main(["sessions", "list", "--device", "cam-1", "--db", url]) == 0
    listed = orjson.loads(capsys.readouterr().out)
    assert [(s["close_reason"], s["events"]) for s in listed] == [
        ("deactivated", [["gw-c1", 1], ["gw-c1", 2]]),
        ("still_open", [["gw-c1", 3]]),
    ]
    window = ["--from", at(35).isoformat(), "--to", at(50).isoformat()]
    assert main(["sessions", "list", "--device", "cam-1", *window, "--db", url]) == 0
    assert [s["events"][0][1] for s in orjson.loads(capsys.readouterr().out)] == [3]


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (["--from", "yesterday"], "not an ISO 8601 time"),
        (["--from", "2026-11-02T08:00:00"], "needs an offset"),
        (["--from", "2026-11-03T00:00:00+00:00", "--to", "2026-11-02T00:00:00+00:00"], "before"),
    ],
)
def test_list_refuses_bad_times(
    sqlite_url: str, window: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = sqlite_url.replace("+aiosqlite", "")
    assert main(["migrate", "--db", url]) == 0
    assert main(["sessions", "list", "--device", "cam-1", *window, "--db", url]) == 2
    assert message in capsys.readouterr().err
