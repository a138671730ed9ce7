"""Command-line argument types shared by the `tollgate-sim` subcommands."""

import argparse


def positive_seconds(value: str) -> float:
    """A number of seconds greater than zero."""
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be more than 0 seconds")
    return seconds


def add_tick_argument(parser: argparse.ArgumentParser) -> None:
    """`--tick SECONDS` between scenario steps."""
    parser.add_argument(
        "--tick",
        type=positive_seconds,
        default=0.5,
        help="seconds between scenario steps (default 0.5)",
    )


def add_duration_argument(parser: argparse.ArgumentParser) -> None:
    """`--duration SECONDS`, or run until Ctrl-C."""
    parser.add_argument(
        "--duration",
        type=positive_seconds,
        default=None,
        metavar="SECONDS",
        help="stop after this long (default: run until Ctrl-C)",
    )
