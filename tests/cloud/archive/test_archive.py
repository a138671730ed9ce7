"""`tollgate-cloud archive`: closed months move to files that verify offline, then out of the
database; a month that is not closed is refused; late events become the month's next part."""

import asyncio
import gzip
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text

from cloud.archive.files import ArchiveInvalid, file_name, verify_archive
from cloud.archive.models import ArchivedMonth
from cloud.archive.service import ArchiveRefused, archive_before
from cloud.cli import main
from cloud.db import Database
from cloud.ingest.models import StoredEvent
from cloud.ingest.partitions import partitions
from cloud.settings import Settings
from shared.events import EventKind
from tests.cloud.conftest import running_app
from tests.support.usage import GatewayFeed, usage
from tests.support.waiting import eventually

NOW = datetime(2028, 1, 10, 12, tzinfo=UTC)  # 2026 is outside the correction window


def at(text: str) -> datetime:
    """A UTC instant from `YYYY-MM-DD HH:MM`."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


def water(when: datetime, litres: str = "5") -> Any:
    """A meter reading at `when`."""
    return usage("meter-1", "water", when, kind=EventKind.MEASUREMENT, quantity=litres, unit="l")


@pytest.fixture
async def db(db_url: str, gateway_key: Any) -> AsyncIterator[Database]:
    """A migrated database of a running collector app."""
    app: FastAPI
    async with running_app(Settings(db_url=db_url), gateway_key) as app:
        database: Database = app.state.db
        yield database


@pytest.fixture
def archive_dir(tmp_path: Path) -> Path:
    """An empty directory for the archive files."""
    directory = tmp_path / "archive"
    directory.mkdir()
    return directory


def names(directory: Path) -> list[str]:
    """The names of the files in a directory, sorted."""
    return sorted(path.name for path in directory.iterdir())


async def stored(db: Database) -> list[tuple[str, int]]:
    """The stored event keys."""
    async with db.transaction() as session:
        rows = await session.execute(select(StoredEvent.gateway_id, StoredEvent.seq))
        return sorted((g, int(s)) for g, s in rows)


async def cli(*argv: str) -> int:
    """`tollgate-cloud ARGV` in a thread; its exit status."""

    def run() -> int:
        try:
            return main(list(argv))
        except SystemExit as exc:
            return int(exc.code or 0)

    return await asyncio.to_thread(run)


async def test_closed_months_move_to_verified_files_and_out_of_the_database(
    db: Database, db_url: str, archive_dir: Path, capsys: Any
) -> None:
    feed = await GatewayFeed("gw-archive").register(db)
    august = await feed.send(db, [water(at("2026-08-01 00:00")), water(at("2026-08-31 23:59"))])
    spanning = await feed.send(db, [water(at("2026-09-05 10:00")), water(at("2026-10-03 10:00"))])
    october = await feed.send(db, [water(at("2026-10-20 10:00")), water(at("2026-10-31 23:00"))])

    done = await archive_before(db, before=(2026, 10), directory=archive_dir, now=NOW)

    assert [(f.month, f.part, f.event_count, f.batch_count) for f in done] == [
        ("2026-08", 1, 2, 1),
        ("2026-09", 1, 1, 1),
    ]
    assert await stored(db) == [("gw-archive", seq) for seq in (4, 5, 6)]
    september, _ = verify_archive(archive_dir / file_name("2026-09", 1))
    assert (september.event_count, september.batch_count, september.gateway_count) == (1, 1, 1)
    _, contents = verify_archive(archive_dir / file_name("2026-09", 1))
    (batch,) = contents.batches  # the whole signed run, October's event included
    assert [e["seq"] for e in batch["events"]] == [e.seq for e in spanning]
    assert list(contents.month_events()) == [("gw-archive", spanning[0].seq)]
    if db.dialect == "postgresql":
        async with db.engine.connect() as connection:
            months = await connection.run_sync(partitions)
        assert (2026, 8) not in months and (2026, 9) not in months and (2026, 10) in months

    # October's spanning batch needs its September event: it comes from September's file
    later = await archive_before(db, before=(2026, 11), directory=archive_dir, now=NOW)
    assert [(f.month, f.event_count, f.batch_count) for f in later] == [("2026-10", 3, 2)]
    assert await stored(db) == []
    async with db.transaction() as session:
        recorded = list(await session.scalars(select(ArchivedMonth).order_by(ArchivedMonth.id)))
    assert [(r.month, r.part, r.event_count) for r in recorded] == [
        ("2026-08", 1, 2),
        ("2026-09", 1, 1),
        ("2026-10", 1, 3),
    ]
    assert [r.file_name for r in recorded] == names(archive_dir)

    # offline: no database
    capsys.readouterr()
    path = archive_dir / file_name("2026-10", 1)
    assert await cli("archive", "verify", str(path)) == 0
    assert "3 events in 2 batches" in capsys.readouterr().out

    # a late August event is stored again (its partition is created again), then part 2
    late = await feed.send(db, [water(at("2026-08-15 12:00"), "7")])
    assert await stored(db) == [("gw-archive", late[0].seq)]
    again = await archive_before(db, before=(2026, 9), directory=archive_dir, now=NOW)
    assert [(f.month, f.part, f.event_count) for f in again] == [("2026-08", 2, 1)]
    assert again[0].path.name == "events-2026-08.part2.jsonl.gz"
    assert len(august) == 2 and len(october) == 2


def rewrite(path: Path, change: Any) -> None:
    """Apply `change` to the file's decoded lines and write it back."""
    with gzip.open(path, "rb") as stream:
        lines = [orjson.loads(line) for line in stream]
    change(lines)
    with gzip.open(path, "wb") as stream:
        stream.write(b"".join(orjson.dumps(line) + b"\n" for line in lines))


async def test_a_tampered_or_truncated_file_does_not_verify(
    db: Database, archive_dir: Path, capsys: Any
) -> None:
    feed = await GatewayFeed("gw-tamper").register(db)
    await feed.send(db, [water(at("2026-07-02 10:00")), water(at("2026-07-03 10:00"))])
    (done,) = await archive_before(db, before=(2026, 8), directory=archive_dir, now=NOW)
    original = done.path.read_bytes()

    def quantity(lines: list[Any]) -> None:
        lines[2]["events"][0]["quantity"] = "500"

    def truncate(lines: list[Any]) -> None:
        del lines[-1]

    def forged_key(lines: list[Any]) -> None:
        lines[2]["public_key_pem"] = lines[1]["public_key_pem"].replace("A", "B", 1)

    def dropped_event(lines: list[Any]) -> None:
        lines[2]["events"].pop()

    expected = {
        quantity: "content hashes",
        truncate: "no end line",
        forged_key: "not one of its gateway's keys",
        dropped_event: "not the run",
    }
    for change, reason in expected.items():
        done.path.write_bytes(original)
        rewrite(done.path, change)
        with pytest.raises(ArchiveInvalid, match=reason):
            verify_archive(done.path)
        capsys.readouterr()
        assert await cli("archive", "verify", str(done.path)) == 1
        assert "✗" in capsys.readouterr().out


async def test_a_month_that_is_not_closed_is_refused_and_nothing_moves(
    db: Database, db_url: str, archive_dir: Path, capsys: Any
) -> None:
    feed = await GatewayFeed("gw-open").register(db)
    await feed.send(db, [water(at("2026-10-10 10:00")), water(at("2026-11-30 23:00"))])

    with pytest.raises(ArchiveRefused, match=r"2026-10 is not closed: invoice runs may still"):
        await archive_before(
            db, before=(2026, 12), directory=archive_dir, now=at("2026-12-01 12:00")
        )
    with pytest.raises(ArchiveRefused, match=r"2026-11 .* can be archived from 2028-01 on"):
        await archive_before(
            db, before=(2026, 12), directory=archive_dir, now=at("2027-12-01 12:00")
        )
    assert len(await stored(db)) == 2 and names(archive_dir) == []  # not even October

    # the real clock: a month of this year is never closed
    now = datetime.now(UTC)
    await feed.send(db, [water(now)])
    following = (now.replace(day=1) + timedelta(days=32)).strftime("%Y-%m")
    capsys.readouterr()
    status = await cli("archive", "--before", following, "--to", str(archive_dir), "--db", db_url)
    error = capsys.readouterr().err
    assert status == 2 and "is not closed" in error and "nothing was archived" in error
    assert len(await stored(db)) == 3 and names(archive_dir) == []
    assert (
        await cli("archive", "--before", "2026-13", "--to", str(archive_dir), "--db", db_url) == 2
    )
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(ArchivedMonth)) == 0


async def test_kill_9_during_archive_loses_nothing(
    postgres_url: str, gateway_key: Any, archive_dir: Path
) -> None:
    """The archive process is killed after its file is written and verified, while it waits to
    lock `events` for the drop (a reader holds it): every event is still stored, nothing is
    recorded, and a run again archives the month."""
    async with running_app(Settings(db_url=postgres_url), gateway_key) as app:
        db: Database = app.state.db
        feed = await GatewayFeed("gw-kill").register(db)
        await feed.send(db, [water(at("2024-06-03 10:00")), water(at("2024-06-04 10:00"))])
        before = await stored(db)
        command = [sys.executable, "-m", "cloud.cli", "archive", "--before", "2024-07"]
        command += ["--to", str(archive_dir), "--db", postgres_url]
        async with db.engine.connect() as reader:
            await reader.execute(select(func.count()).select_from(StoredEvent))  # holds a lock
            process = await asyncio.create_subprocess_exec(*command)
            try:
                await eventually(
                    lambda: _waits_for_events_lock(db), what="the archive to wait for its lock"
                )
                assert names(archive_dir) == [file_name("2024-06", 1)]  # written, verified
                process.kill()  # SIGKILL
            finally:
                await process.wait()
            await reader.rollback()
        assert process.returncode == -signal.SIGKILL
        assert await stored(db) == before
        async with db.transaction() as session:
            assert await session.scalar(select(func.count()).select_from(ArchivedMonth)) == 0

        (done,) = await archive_before(db, before=(2024, 7), directory=archive_dir)
        assert (done.month, done.part, done.event_count) == ("2024-06", 1, 2)
        assert await stored(db) == [] and names(archive_dir) == [file_name("2024-06", 1)]


async def _waits_for_events_lock(db: Database) -> bool:
    async with db.engine.connect() as connection:
        waiting = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND mode = 'AccessExclusiveLock' "
                "AND relation = 'events'::regclass"
            )
        )
    return bool(waiting)


async def test_a_late_event_while_archiving_keeps_the_month(
    db: Database, archive_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event of the month stored after the file was collected refuses the drop: the file
    does not hold it, so nothing of the month is removed or recorded."""
    feed = await GatewayFeed("gw-late").register(db)
    await feed.send(db, [water(at("2026-05-03 10:00"))])
    loop = asyncio.get_running_loop()

    def verify_then_a_late_event(path: Path) -> Any:
        verified = verify_archive(path)
        late = feed.send(db, [water(at("2026-05-20 10:00"))])
        asyncio.run_coroutine_threadsafe(late, loop).result()
        return verified

    monkeypatch.setattr("cloud.archive.service.verify_archive", verify_then_a_late_event)
    with pytest.raises(ArchiveRefused, match="2 events are stored now, the file holds 1"):
        await archive_before(db, before=(2026, 6), directory=archive_dir, now=NOW)
    assert len(await stored(db)) == 2
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(ArchivedMonth)) == 0
