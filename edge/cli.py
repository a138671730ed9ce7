"""`tollgate-edge`: the service's commands (run, keygen, check-config, status) and the entry point;
the installer's and technician's commands come from `edge.installer`."""

import argparse
import asyncio
import logging
import os
import select
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from edge.errors import ConfigError, GatewayError
from edge.installer.enrollment_cli import add_enrollment_commands
from edge.installer.scan_cli import add_scan_commands
from edge.installer.setup_cli import add_installer_commands
from edge.installer.technician_cli import add_technician_commands


def _run(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.logs import LOG_DIR, configure_logging

    config = load_config(args.config)
    configure_logging(args.log_level, log_dir=config.gateway.data_dir / LOG_DIR)
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
    from edge.config import load_config
    from edge.keys import load_or_create_key
    from shared.signing import public_key_pem

    config = load_config(args.config, require_id=False)
    key = load_or_create_key(config.gateway.private_key_path)
    sys.stdout.write(public_key_pem(key.public_key()))
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from edge.config import ModbusDeviceConfig, load_config

    config = load_config(args.config, require_id=False)  # valid before enrollment too
    points = sum(len(d.point) for d in config.device if isinstance(d, ModbusDeviceConfig))
    try:
        gateway = f"gateway {config.gateway.id}"
    except ConfigError:
        gateway = "not enrolled yet"
    print(f"{args.config}: ok ({gateway}, {len(config.device)} devices, {points} points)")
    return 0


def _status(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.status import STATUS_FILE, format_status, read_status

    config = load_config(args.config)
    document = read_status(config.gateway.data_dir / STATUS_FILE)
    print(
        orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()
        if args.json
        else format_status(document)
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
        "status": _status,
    }
    helps = {
        "run": "run the agent until SIGTERM/SIGINT",
        "keygen": "make the gateway key if missing (mode 0600) and print its public key",
        "check-config": "validate a site config",
        "status": "the running agent's outbox, cloud link and device health",
    }
    for name, handler in handlers.items():
        sub = commands.add_parser(name, help=helps[name])
        sub.add_argument("--config", type=Path, required=True, help="site config (TOML)")
        if name == "status":
            sub.add_argument("--json", action="store_true", help="the raw status document")
        if name == "run":
            sub.add_argument(
                "--log-level", default="info", choices=["debug", "info", "warning", "error"]
            )
        sub.set_defaults(handler=handler)
    add_scan_commands(commands)
    add_enrollment_commands(commands)
    add_installer_commands(commands)
    add_technician_commands(commands)
    return parser


EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
"""What a shell reports for a writer whose reader went away (`yes | head`): not 1, which here
means a check failed or a scan found nothing."""


def _reader_gone() -> bool:
    """True when stdout is a pipe nobody reads any more (`status | head` after its line): then a
    BrokenPipeError is the reader's choice, not a failure. Linux poll() flags such a pipe's
    write end with POLLERR."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
    except (OSError, ValueError):  # no descriptor (a captured stdout): not a pipe
        return False
    return any(events & select.POLLERR for _fd, events in poller.poll(0))


def _quiet_stdout() -> None:
    """Point stdout at devnull so that the flush at exit cannot raise again, as the Python docs
    advise for a broken pipe (https://docs.python.org/3/library/signal.html#note-on-sigpipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `tollgate-edge`; expected errors print one clear message and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        code = int(args.handler(args))
        sys.stdout.flush()  # a closed pipe shows here, not as an "Exception ignored" at exit
    except GatewayError as exc:
        print(f"tollgate-edge: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        if not _reader_gone():
            raise  # a socket's, say: unexpected, so not hidden
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    return code


if __name__ == "__main__":
    sys.exit(main())
