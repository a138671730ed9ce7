"""Background jobs: each runs, reports, survives its own failures, and stops with the app."""

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI

from cloud import app as app_module
from cloud.cli import main
from cloud.db import Database
from cloud.errors import InvalidSettings
from cloud.scheduler import Job, run_once, running_jobs
from cloud.settings import Settings


async def test_run_once_reports_every_job_and_survives_a_failure(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[datetime] = []

    async def broken(_db: Database, _now: datetime) -> object:
        raise ValueError("broken on purpose")

    async def counting(_db: Database, now: datetime) -> object:
        seen.append(now)
        return "1 thing done"

    at = datetime(2026, 12, 4, 12, tzinfo=UTC)
    jobs = [Job("broken", timedelta(seconds=1), broken), Job("counting", timedelta(1), counting)]
    with caplog.at_level(logging.ERROR, logger="cloud.scheduler"):
        reports = await run_once(db, jobs, at)
    assert reports == {"broken": None, "counting": "1 thing done"}
    assert seen == [at]
    assert "background job broken failed" in caplog.text
    assert "broken on purpose" in caplog.text  # the traceback is logged


async def test_running_jobs_repeat_until_the_block_ends(db: Database) -> None:
    runs = 0
    twice = asyncio.Event()

    async def job(_db: Database, _now: datetime) -> object:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("a failure does not end the job")
        if runs >= 3:
            twice.set()
        return runs

    async with running_jobs(db, [Job("tick", timedelta(milliseconds=1), job)]):
        await asyncio.wait_for(twice.wait(), timeout=30)
    stopped_at = runs
    await asyncio.sleep(0.05)
    assert runs == stopped_at  # cancelled with the block


async def test_the_app_runs_its_jobs_only_when_asked(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = asyncio.Event()

    async def job(_db: Database, _now: datetime) -> object:
        started.set()
        return "ran"

    monkeypatch.setattr(app_module, "jobs", lambda _s: [Job("probe", timedelta(1), job)])
    quiet: FastAPI = app_module.create_app(Settings(db_url=db_url))
    async with quiet.router.lifespan_context(quiet):
        await asyncio.sleep(0)
    assert not started.is_set()  # Settings() runs no background job

    busy = app_module.create_app(Settings(db_url=db_url, background_jobs=True))
    async with busy.router.lifespan_context(busy):
        await asyncio.wait_for(started.wait(), timeout=30)


def test_background_jobs_are_on_in_serve_unless_switched_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TOLLGATE_BACKGROUND_JOBS", raising=False)
    assert Settings.load().background_jobs is True
    monkeypatch.setenv("TOLLGATE_BACKGROUND_JOBS", "off")
    assert Settings.load().background_jobs is False
    monkeypatch.setenv("TOLLGATE_BACKGROUND_JOBS", "sometimes")
    with pytest.raises(InvalidSettings, match="use on or off"):
        Settings.load()
    monkeypatch.delenv("TOLLGATE_BACKGROUND_JOBS")
    monkeypatch.setenv("TOLLGATE_SWEEP_INTERVAL", "0s")
    with pytest.raises(InvalidSettings, match="positive"):
        Settings.load()


def test_sweep_names_the_jobs_when_asked_for_an_unknown_one(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/sweep.sqlite"
    assert main(["migrate", "--db", url]) == 0
    assert main(["sweep", "--only", "no-such-job", "--db", url]) == 2
    assert "no background job 'no-such-job'" in capsys.readouterr().err
    assert main(["sweep", "--db", url]) == 0
