"""`tollgate-cloud` writing into a pipe whose reader is gone (`... | head -1`): a real process and
a real pipe, no message and the shell's code for SIGPIPE instead of a database error."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cloud.cli import EXIT_BROKEN_PIPE, main

BIN = Path(sys.executable).parent


def test_a_reader_gone_is_no_database_failure(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = sqlite_url.replace("+aiosqlite", "")
    assert main(["migrate", "--db", db]) == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read what the command prints
    try:
        result = subprocess.run(
            [BIN / "tollgate-cloud", "site", "add", "--id", "s-1", "--name", "S", "--db", db],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)

    err = result.stderr.decode()
    assert "Traceback" not in err and "Broken pipe" not in err and "error:" not in err, err
    assert result.returncode == EXIT_BROKEN_PIPE == 141
    capsys.readouterr()
    assert main(["site", "add", "--id", "s-1", "--name", "S", "--db", db]) == 2  # it was added
    assert "already exists" in capsys.readouterr().err


def test_a_broken_pipe_that_is_not_stdouts_is_still_a_database_failure(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database connection that breaks mid-write is staged by raising the error from
    `connect` (a server cannot be made to drop one socket at that point here)."""
    db = sqlite_url.replace("+aiosqlite", "")
    assert main(["migrate", "--db", db]) == 0

    def broken(_settings: object) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("cloud.wiring.connect", broken)  # imported by main
    capsys.readouterr()

    assert main(["site", "add", "--id", "s-1", "--name", "S", "--db", db]) == 2
    assert "tollgate-cloud: error: cannot use database file" in capsys.readouterr().err
