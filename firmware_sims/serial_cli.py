"""`tollgate-sim it100-panel`: a simulated IT-100 alarm panel on a pseudo-terminal.

    tollgate-sim it100-panel [--link ./ttyIT100] [--tick 0.5] [--duration SECONDS]

Point an `it100` device's `port` at the link path; the panel plays the default scenario
(arm/disarm cycles, an alarm, zone traffic, some line noise) in a loop.
"""

import argparse
import asyncio
import contextlib
from pathlib import Path

from firmware_sims.arguments import add_duration_argument, add_tick_argument
from firmware_sims.it100_panel import It100Panel, default_scenario


def add_it100_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `it100-panel`."""
    parser.add_argument(
        "--link",
        type=Path,
        default=Path("ttyIT100"),
        metavar="PATH",
        help="symlink to the pty's serial port, what the driver opens (default ./ttyIT100)",
    )
    add_tick_argument(parser)
    add_duration_argument(parser)


async def run_it100_panel(args: argparse.Namespace) -> int:
    """Run the panel until `--duration` has passed or it is cancelled; returns the exit status."""
    async with It100Panel(link_path=args.link, scenario=default_scenario(tick=args.tick)) as panel:
        print(f"it100-panel on {panel.link_path}", flush=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(args.duration):
                await panel.run_forever()
    return 0
