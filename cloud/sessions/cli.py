"""`tollgate-cloud` commands of this package: sessions refresh | list."""

from cloud.cli_support import Commands


def add_commands(commands: Commands) -> None:
    """Register this package's subcommands (each sets `run(args, settings)`)."""
