"""`tollgate-cloud` catalog commands: apikey, account, profile, device, bind, metric, plan."""

from cloud.cli_support import Commands


def add_commands(commands: Commands) -> None:
    """Register this package's subcommands (each sets `run(args, settings)`)."""
