"""What every `tollgate-cloud` command module shares: the expected-failure error, options, the
progress bar of long commands, and how a command finds its database.

The database is named one way: `--db URL`, else `$TOLLGATE_DB`; with neither a command that
needs one fails (exit 2) instead of opening a default file in the working directory. A SQLite
file must exist (only `migrate` creates it) and be a database; `main` then checks its schema.
"""

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from cloud.settings import DB_ENV, Settings

BAR_WIDTH = 30
DB_EXAMPLE = "sqlite:////var/lib/tollgate/cloud.sqlite"
DB_HELP = (
    f"database URL, e.g. {DB_EXAMPLE} (an absolute path: four slashes) or "
    f"postgresql://USER@HOST/DB; default ${DB_ENV}, one of the two is required"
)
NO_DATABASE = f"no database: pass --db URL or set {DB_ENV}, e.g. --db {DB_EXAMPLE}"


if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]
else:  # not subscriptable at run time
    Commands = argparse._SubParsersAction
"""The `add_subparsers()` object that command modules register their commands on."""


class CommandFailed(Exception):
    """An expected failure of a command: its message is all the user needs."""


class ProgressBar:
    """A progress bar on a stream: redrawn in place on a terminal, a line per 10% otherwise."""

    def __init__(self, stream: TextIO, *, label: str) -> None:
        self.stream = stream
        self.label = label
        self.tty = stream.isatty()
        self._last_tenth = -1

    def __call__(self, done: int, total: int) -> None:
        """Show `done` of `total`."""
        fraction = 1.0 if total == 0 else done / total
        if self.tty:
            filled = int(fraction * BAR_WIDTH)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            end = "\n" if done >= total else ""
            text = f"\r{self.label} [{bar}] {fraction:4.0%} {done}/{total}"
            print(text, end=end, file=self.stream, flush=True)
            return
        tenth = int(fraction * 10)
        if tenth > self._last_tenth:
            self._last_tenth = tenth
            print(f"{self.label}: {fraction:.0%} ({done}/{total})", file=self.stream, flush=True)


def uses_database(args: argparse.Namespace) -> bool:
    """Whether the command reads its database: not when it reads saved files (`--from-dir`)
    or a collector over HTTP (`--url`), as `verify-invoice` and `invoice evidence` can."""
    return not (getattr(args, "from_dir", None) or getattr(args, "url", None))


def check_database(settings: Settings, *, migrating: bool) -> None:
    """`CommandFailed` unless the settings name a database a command can open.

    A SQLite file that does not exist is created by `migrate` (its directory must exist) and
    refused by every other command, which would otherwise create an empty file and fail on it.
    """
    if not settings.db_url:
        raise CommandFailed(NO_DATABASE)
    path = sqlite_path(settings.db_url)
    if path is None:
        return
    if path.is_dir():
        raise CommandFailed(f"database file {path} is a directory")
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            raise CommandFailed(f"cannot read and write database file {path}: permission denied")
    elif migrating:
        if not path.parent.is_dir():
            raise CommandFailed(
                f"cannot create database file {path}: directory {path.parent} does not exist"
            )
    else:
        raise CommandFailed(
            f"no database file {path}: run `tollgate-cloud migrate --db sqlite:///{path}` first"
        )


def sqlite_path(db_url: str) -> Path | None:
    """The absolute file of a SQLite URL; None for PostgreSQL and in-memory SQLite."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(db_url)
    except ArgumentError:
        return None
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).absolute()


def database_failure(db_url: str, reason: str) -> str:
    """What to print when the database cannot be used: a SQLite file names its path."""
    path = sqlite_path(db_url)
    if path is not None:
        return f"cannot use database file {path}: {reason}"
    return f"database unavailable: {reason}"
