"""`tollgate-sim it100-panel`: a simulated IT-100 alarm panel on a pseudo-terminal.

    tollgate-sim it100-panel [--link ./ttyIT100] [--tick 0.5] [--faults checksum,unknown,drop]
                             [--duration SECONDS]

Point an `it100` device's `port` at the link path; the panel plays the default scenario
(arm/disarm cycles, an alarm, zone traffic, some line noise, a cable pull) in a loop. Each
fault it injects is printed on stdout as it happens, one line starting "fault: ", like the
simulators' other output; `--faults none` plays the scenario without them.
"""

import argparse
import asyncio
import contextlib
from pathlib import Path

from firmware_sims.arguments import add_duration_argument, add_tick_argument
from firmware_sims.it100_panel import ALL_FAULTS, FAULTS, It100Panel, default_scenario


def parse_faults(value: str) -> frozenset[str]:
    """`none`, or a comma list of fault kinds (checksum, unknown, drop)."""
    if value.strip() == "none":
        return frozenset()
    kinds = [kind.strip() for kind in value.split(",")]
    wrong = [kind for kind in kinds if kind not in FAULTS]
    if wrong:
        raise argparse.ArgumentTypeError(
            f"{', '.join(map(repr, wrong))}: not a fault; give none or a comma list of "
            f"{','.join(FAULTS)}"
        )
    return frozenset(kinds)


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
    parser.add_argument(
        "--faults",
        type=parse_faults,
        default=ALL_FAULTS,
        metavar="KINDS",
        help=(
            "faults the scenario injects, each printed as it happens: none, or a comma list of "
            f"{','.join(FAULTS)} (default: all three)"
        ),
    )
    add_duration_argument(parser)


async def run_it100_panel(args: argparse.Namespace) -> int:
    """Run the panel until `--duration` has passed or it is cancelled; returns the exit status."""
    panel = It100Panel(
        link_path=args.link,
        scenario=default_scenario(tick=args.tick),
        faults=args.faults,
        on_fault=lambda fault: print(fault, flush=True),
    )
    async with panel:
        faults = ",".join(kind for kind in FAULTS if kind in panel.faults) or "none"
        print(f"it100-panel on {panel.link_path} (faults: {faults})", flush=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(args.duration):
                await panel.run_forever()
    return 0
