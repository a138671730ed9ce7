"""What every `tollgate-cloud` command module shares: the expected-failure error and options."""

import argparse

from cloud.settings import DB_ENV

DB_HELP = f"database URL (sqlite:///PATH or postgresql://HOST/DB); default ${DB_ENV}"

Commands = argparse._SubParsersAction[
    argparse.ArgumentParser
]  # the `add_subparsers()` object commands register on


class CommandFailed(Exception):
    """An expected failure of a command: its message is all the user needs."""
