"""`tollgate-edge`: the installer's and the service's entry point."""

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from edge.config import ModbusDeviceConfig, load_config
from edge.errors import GatewayError
from edge.keys import load_or_create_key
from edge.logs import configure_logging
from shared.signing import public_key_pem


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    configure_logging(args.log_level)
    from edge.agent import Agent  # imports the drivers; keep `keygen` light

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await Agent(config).run(stop)

    try:
        asyncio.run(main())
    except Exception:
        # Unexpected: say what broke in the JSON log; the service manager restarts the agent.
        logging.getLogger("edge").exception("agent crashed")
        return 1
    return 0


def _keygen(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    key = load_or_create_key(config.gateway.private_key_path)
    sys.stdout.write(public_key_pem(key.public_key()))
    return 0


def _check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    points = sum(len(d.point) for d in config.device if isinstance(d, ModbusDeviceConfig))
    print(
        f"{args.config}: ok (gateway {config.gateway.id}, {len(config.device)} devices, "
        f"{points} points)"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog="tollgate-edge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": _run,
        "keygen": _keygen,
        "check-config": _check_config,
    }
    helps = {
        "run": "run the agent until SIGTERM/SIGINT",
        "keygen": "make the gateway key if missing (mode 0600) and print its public key",
        "check-config": "validate a site config",
    }
    for name, handler in handlers.items():
        sub = commands.add_parser(name, help=helps[name])
        sub.add_argument("--config", type=Path, required=True, help="site config (TOML)")
        if name == "run":
            sub.add_argument(
                "--log-level", default="info", choices=["debug", "info", "warning", "error"]
            )
        sub.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `tollgate-edge`; expected errors print one clear message and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except GatewayError as exc:
        print(f"tollgate-edge: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
