"""`tollgate-cloud` invoice commands: invoice run | finalize | show | export, verify-invoice."""

from cloud.cli_support import Commands


def add_commands(commands: Commands) -> None:
    """Register this package's subcommands (each sets `run(args, settings)`)."""
