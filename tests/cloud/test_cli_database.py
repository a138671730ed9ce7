"""The CLI finds its database one way: `--db` or `$TOLLGATE_DB`, never a default file.

Every case runs the real `tollgate-cloud` (`main(argv)`, one case as a subprocess) and checks
the message, the exit status 2 and that no file was created where none should be.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cloud.cli import main
from tests.cloud.test_cli import plain_url

EXAMPLE = "sqlite:////var/lib/tollgate/cloud.sqlite"


@pytest.fixture(autouse=True)
def _no_database_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither $TOLLGATE_DB nor a stray default file in the working directory."""
    monkeypatch.delenv("TOLLGATE_DB", raising=False)
    monkeypatch.chdir(tmp_path)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit status and stderr of one command."""
    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [["invoice", "list"], ["migrate"], ["serve", "--port", "1"], ["catalog", "load", "x.toml"]],
)
def test_no_database_is_a_clear_error(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(argv, capsys)
    assert code == 2
    assert f"no database: pass --db URL or set TOLLGATE_DB, e.g. --db {EXAMPLE}" in err
    assert list(tmp_path.iterdir()) == []  # no ./tollgate-cloud.sqlite


def test_no_database_through_the_installed_command(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TOLLGATE_DB"}
    done = subprocess.run(
        [sys.executable, "-m", "cloud.cli", "account", "list"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "no database: pass --db URL or set TOLLGATE_DB" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [["migrate", "--help"], ["invoice", "list", "--help"]])
def test_help_shows_an_absolute_sqlite_url(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    assert EXAMPLE in " ".join(capsys.readouterr().out.split())  # argparse wraps the help


def test_a_missing_sqlite_file_is_named_and_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "absent.sqlite"
    code, err = run(["invoice", "list", "--db", f"sqlite:///{path}"], capsys)
    assert code == 2
    assert (
        f"no database file {path}: run `tollgate-cloud migrate --db sqlite:///{path}` first" in err
    )
    assert not path.exists()


def test_migrate_creates_the_file_but_not_its_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nested = tmp_path / "no-such-dir" / "cloud.sqlite"
    code, err = run(["migrate", "--db", f"sqlite:///{nested}"], capsys)
    assert code == 2
    assert f"cannot create database file {nested}: directory {nested.parent} does not exist" in err
    assert not nested.parent.exists()

    path = tmp_path / "cloud.sqlite"
    assert run(["migrate", "--db", f"sqlite:///{path}"], capsys)[0] == 0
    assert path.is_file()
    assert run(["account", "list", "--db", f"sqlite:///{path}"], capsys) == (0, "")


def test_an_unreadable_file_names_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "notes.sqlite"
    garbage.write_text("not a database\n")
    code, err = run(["account", "list", "--db", f"sqlite:///{garbage}"], capsys)
    assert (code, "Traceback" in err) == (2, False)
    assert f"cannot use database file {garbage}: " in err and "not a database" in err
    assert garbage.read_text() == "not a database\n"

    code, err = run(["account", "list", "--db", f"sqlite:///{tmp_path}"], capsys)
    assert code == 2
    assert f"database file {tmp_path} is a directory" in err


@pytest.mark.parametrize("argv", [["account", "list"], ["invoice", "run", "--period", "2026-11"]])
def test_an_unmigrated_database_says_to_migrate(
    db_url: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = plain_url(db_url)
    if url.startswith("sqlite"):  # an existing, empty SQLite file: a database with no schema
        Path(url.removeprefix("sqlite:///")).touch()
    code, err = run([*argv, "--db", url], capsys)
    assert code == 2
    assert "has no collector schema" in err
    assert "run `tollgate-cloud migrate --db URL` first" in err


def test_commands_reading_saved_files_need_no_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(["verify-invoice", "7", "--from-dir", str(tmp_path / "saved")], capsys)
    assert code == 2
    assert "cannot read saved evidence" in err and "no database" not in err


def test_only_migrate_prints_alembics_progress(tmp_path: Path) -> None:
    """Every command checks the schema's revision through Alembic; only `migrate` says what
    Alembic did (README's walkthrough showed nine INFO lines under each command before)."""
    url = f"sqlite:///{tmp_path / 'cloud.sqlite'}"

    def stderr_of(*argv: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "cloud.cli", *argv, "--db", url],
            cwd=tmp_path, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return done.stderr

    assert "INFO alembic.runtime.migration Running upgrade" in stderr_of("migrate")
    assert "alembic" not in stderr_of("account", "list")
