"""`tollgate-cloud quality list | show | ack | resolve` against a real database (SQLite and
PostgreSQL): JSON out, and one line on stderr with exit 2 for every expected failure."""

import asyncio

import orjson
import pytest

from cloud.cli import main
from cloud.db import Database
from cloud.incidents.models import IncidentKind
from cloud.incidents.sink import record_incident


@pytest.fixture
def url(db_url: str) -> str:
    """A migrated database with two incidents (ids 1: clock_skew of lock-1, 2: seq_gap)."""
    plain = db_url.replace("+aiosqlite", "").replace("+asyncpg", "")
    assert main(["migrate", "--db", plain]) == 0
    asyncio.run(_seed(db_url))
    return plain


async def _seed(db_url: str) -> None:
    async with Database(db_url) as db:
        for kind, device in ((IncidentKind.CLOCK_SKEW, "lock-1"), (IncidentKind.SEQ_GAP, None)):
            await db.run_write(
                lambda s, kind=kind, device=device: record_incident(
                    s, kind=kind, gateway_id="gw-a", device_id=device, detail=f"{kind} seen"
                )
            )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, object, str]:
    """Exit status, the parsed stdout (None if empty) and stderr of one command."""
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, orjson.loads(captured.out) if captured.out.strip() else None, captured.err


def test_list_show_ack_resolve(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    status, listed, _ = run(capsys, "quality", "list", "--db", url)
    assert status == 0 and isinstance(listed, dict)
    assert [item["kind"] for item in listed["incidents"]] == ["seq_gap", "clock_skew"]

    status, filtered, _ = run(capsys, "quality", "list", "--device", "lock-1", "--db", url)
    assert status == 0 and isinstance(filtered, dict)
    assert [item["id"] for item in filtered["incidents"]] == [1]

    status, acked, _ = run(
        capsys, "quality", "ack", "1", "--note", "looking", "--by", "ana", "--db", url
    )
    assert status == 0 and isinstance(acked, dict)
    assert (acked["state"], acked["acknowledged_by"], acked["acknowledged_note"]) == (
        "acknowledged",
        "ana",
        "looking",
    )
    status, resolved, _ = run(capsys, "quality", "resolve", "1", "--db", url)
    assert status == 0 and isinstance(resolved, dict) and resolved["state"] == "resolved"

    status, shown, _ = run(capsys, "quality", "show", "1", "--db", url)
    assert status == 0 and shown == resolved
    status, still_open, _ = run(capsys, "quality", "list", "--state", "open", "--db", url)
    assert status == 0 and isinstance(still_open, dict)
    assert [item["id"] for item in still_open["incidents"]] == [2]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("resolve", "99"), "no incident 99"),
        (("show", "x1"), "is not a positive whole number"),
        (("ack", "1", "--note", ""), "--note must be 1..1000 characters"),
        (("list", "--limit", "0"), "--limit must be 1..1000"),
        (("list", "--since", "2026-11-01"), "needs an offset"),
        (("list", "--kind", "a\x00b"), "may not contain U+0000"),
    ],
)
def test_expected_failures_are_one_line_and_exit_2(
    url: str, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    capsys.readouterr()
    status, out, err = run(capsys, "quality", *argv, "--db", url)

    assert (status, out) == (2, None)
    assert err.startswith("tollgate-cloud: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_an_illegal_step_is_exit_2_and_changes_nothing(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "quality", "resolve", "2", "--db", url)[0] == 0
    _, before, _ = run(capsys, "quality", "show", "2", "--db", url)

    status, out, err = run(capsys, "quality", "ack", "2", "--db", url)

    assert (status, out) == (2, None) and "incident 2 is resolved: it cannot be acknowledged" in err
    assert run(capsys, "quality", "show", "2", "--db", url)[1] == before
