"""What every `tollgate-cloud` command module shares: the expected-failure error, options and
the progress bar of long commands."""

import argparse
from typing import TYPE_CHECKING, TextIO

from cloud.settings import DB_ENV

BAR_WIDTH = 30
DB_HELP = f"database URL (sqlite:///PATH or postgresql://HOST/DB); default ${DB_ENV}"


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
