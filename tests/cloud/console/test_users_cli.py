"""`tollgate-cloud user add | reset | list`, and argon2id hashes in the `users` table."""

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from cloud.cli import main
from cloud.console.models import ConsoleUser
from cloud.db import Database
from tests.test_cli_startup import HEAVY, imported_after_help


def password_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"pw-{len(text)}"
    path.write_text(text + "\nsecond line is ignored\n", encoding="utf-8")
    return path


def stored_users(db_url: str) -> list[ConsoleUser]:
    async def read() -> list[ConsoleUser]:
        async with Database(db_url) as db, db.transaction() as session:
            return list(await session.scalars(select(ConsoleUser).order_by(ConsoleUser.name)))

    return asyncio.run(read())


def test_add_list_and_reset_users(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = db_url.replace("+aiosqlite", "").replace("+asyncpg", "")
    good = password_file(tmp_path, "correct horse battery")
    assert main(["migrate", "--db", url]) == 0
    capsys.readouterr()

    added = main(
        [
            "user",
            "add",
            "--name",
            "ann",
            "--role",
            "billing",
            "--password-file",
            str(good),
            "--db",
            url,
        ]
    )
    again = main(
        [
            "user",
            "add",
            "--name",
            "ann",
            "--role",
            "viewer",
            "--password-file",
            str(good),
            "--db",
            url,
        ]
    )
    short = main(
        [
            "user",
            "add",
            "--name",
            "bob",
            "--role",
            "viewer",
            "--password-file",
            str(password_file(tmp_path, "elevenchars")),
            "--db",
            url,
        ]
    )
    errors = capsys.readouterr().err
    assert main(["user", "list", "--db", url]) == 0
    listing = capsys.readouterr().out
    before = stored_users(db_url)[0].password_hash
    reset = main(
        [
            "user",
            "reset",
            "--name",
            "ann",
            "--password-file",
            str(password_file(tmp_path, "n" * 12)),
            "--db",
            url,
        ]
    )
    missing = main(["user", "reset", "--name", "zed", "--password-file", str(good), "--db", url])

    assert (added, again, short, reset, missing) == (0, 2, 2, 0, 2)
    assert "a console user 'ann' exists" in errors
    assert "at least 12 characters" in errors
    assert listing.startswith("ann\tbilling\t") and "enabled" in listing
    [ann] = stored_users(db_url)
    assert before.startswith("$argon2id$") and ann.password_hash.startswith("$argon2id$")
    assert ann.password_hash != before and "correct horse" not in before
    assert "no console user 'zed'" in capsys.readouterr().err
    assert main(["user", "disable", "--name", "ann", "--db", url]) == 0
    assert "user ann: disabled, cannot log in; 0 session(s) ended" in capsys.readouterr().out
    assert stored_users(db_url)[0].disabled
    assert main(["user", "list", "--db", url]) == 0
    assert capsys.readouterr().out.rstrip().endswith("disabled")
    assert main(["user", "enable", "--name", "ann", "--db", url]) == 0
    assert not stored_users(db_url)[0].disabled
    assert main(["user", "disable", "--name", "zed", "--db", url]) == 2


def test_without_a_terminal_or_file_nothing_is_asked(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sqlite_url.replace("+aiosqlite", "")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["migrate", "--db", url]) == 0

    status = main(["user", "add", "--name", "ann", "--role", "admin", "--db", url])

    assert status == 2
    assert "give --password-file FILE" in capsys.readouterr().err
    assert stored_users(sqlite_url) == []


def test_on_a_terminal_the_password_is_asked_twice(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sqlite_url.replace("+aiosqlite", "")
    answers = iter(["twelve-chars-ok", "twelve-chars-no"])
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert main(["migrate", "--db", url]) == 0

    status = main(["user", "add", "--name", "ann", "--role", "admin", "--db", url])

    assert status == 2 and "the two passwords differ" in capsys.readouterr().err
    assert stored_users(sqlite_url) == []


def test_user_help_imports_nothing_heavy() -> None:
    argvs = [["user", "--help"], ["user", "add", "--help"], ["user", "reset", "--help"]]
    loaded = imported_after_help("cloud.cli", argvs)

    assert not loaded & {*HEAVY, "argon2", "jinja2"}
