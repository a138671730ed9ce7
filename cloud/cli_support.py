"""What every `tollgate-cloud` command module shares: the expected-failure error and options."""

import argparse
from typing import TYPE_CHECKING

from cloud.settings import DB_ENV

DB_HELP = f"database URL (sqlite:///PATH or postgresql://HOST/DB); default ${DB_ENV}"


if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]
else:  # not subscriptable at run time
    Commands = argparse._SubParsersAction
"""The `add_subparsers()` object that command modules register their commands on."""


class CommandFailed(Exception):
    """An expected failure of a command: its message is all the user needs."""
