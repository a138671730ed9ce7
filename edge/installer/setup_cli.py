"""The installer's subcommands of `tollgate-edge`: init, check, support-bundle.

Kept apart from `edge.cli` so the service commands stay small; `add_installer_commands` hangs
them on the same parser. Errors follow the CLI's rule: `GatewayError` -> one line, exit 2.
"""

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import TypeAlias

from edge.errors import ConfigError
from edge.installer.init_config import DEFAULT_CLOUD_URL, DEFAULT_DATA_DIR, DRIVER_ORDER
from edge.installer.technician_cli import (
    SET_PASSWORD,
    password_is_set,
    read_password,
    say_if_no_password,
    store_technician_password,
)

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _init(args: argparse.Namespace) -> int:
    from edge.installer.init_config import parse_drivers, render_starter, write_starter

    text = render_starter(
        parse_drivers(args.drivers),
        gateway_id=args.gateway_id,
        cloud_url=args.cloud,
        data_dir=args.data_dir,
        out=args.out,
    )
    password = technician_password(args, args.data_dir)  # before writing: a typo leaves no file
    write_starter(args.out, text, force=args.force)
    print(f"{args.out}: starter config written; edit it, then `tollgate-edge check`")
    if password is not None:
        print(f"technician password stored in {store_technician_password(args.data_dir, password)}")
    say_if_no_password(args.data_dir)
    return 0


def technician_password(args: argparse.Namespace, data_dir: Path) -> str | None:
    """From --technician-password-file, else asked twice on a terminal, else not set. Not asked
    when `data_dir` already holds one (a second `init`, or `enroll` after `init` set it): a
    pasted block of commands goes on, and `technician set-password` replaces it."""
    if args.technician_password_file is None and password_is_set(data_dir):
        print(f"technician password already set in {data_dir}; `{SET_PASSWORD}` replaces it")
        return None
    return read_password(args.technician_password_file, option="--technician-password-file")


def _check(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.config_types import parse_duration
    from edge.installer.check import check_site, format_results

    config = load_config(args.config, require_id=False)  # devices can be checked before enrolling
    try:
        timeout = parse_duration(args.timeout)
    except ValueError as exc:
        raise ConfigError(f"--timeout: {exc}") from None
    pymodbus_log = logging.getLogger("pymodbus")
    level = pymodbus_log.level
    pymodbus_log.setLevel(logging.CRITICAL)  # the table says what failed, once
    try:
        results = asyncio.run(check_site(config, within=timeout))
    finally:
        pymodbus_log.setLevel(level)
    sys.stdout.write(format_results(results))
    return 0 if all(row.ok for row in results) else 1


def _support_bundle(args: argparse.Namespace) -> int:
    from edge.installer.support_bundle import build_support_bundle

    out = build_support_bundle(args.config, args.out)
    print(f"{out}: support bundle written (no keys, passwords or tokens)")
    return 0


def add_installer_commands(commands: Commands) -> None:
    """Add init, check and support-bundle to the `tollgate-edge` parser."""
    init = commands.add_parser("init", help="write a commented starter config for some drivers")
    init.add_argument("--drivers", required=True, help=f"comma-separated: {','.join(DRIVER_ORDER)}")
    init.add_argument("--out", type=Path, required=True, help="where to write it, e.g. site.toml")
    init.add_argument(
        "--gateway-id",
        default=None,
        help="this gateway's id (default: none; `tollgate-edge enroll` gets it from the cloud)",
    )
    init.add_argument("--cloud", default=DEFAULT_CLOUD_URL, help="the collector's URL")
    init.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="state directory")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.add_argument(
        "--technician-password-file",
        type=Path,
        help="read the diagnostics page password from this file (else asked on a terminal)",
    )
    init.set_defaults(handler=_init)
    check = commands.add_parser("check", help="validate the config and try every device once")
    check.add_argument("--config", type=Path, required=True, help="site config (TOML)")
    check.add_argument("--timeout", default="2s", help='per device, e.g. "2s"')
    check.set_defaults(handler=_check)
    bundle = commands.add_parser(
        "support-bundle", help="a tar.gz of config (redacted), status, outbox stats and logs"
    )
    bundle.add_argument("--config", type=Path, required=True, help="site config (TOML)")
    bundle.add_argument("--out", type=Path, default=Path("tollgate-support.tar.gz"))
    bundle.set_defaults(handler=_support_bundle)
