"""`tollgate-edge technician set-password`, and the password steps `init` and `enroll` share.

The diagnostics page reads `data_dir/technician.password` on every request
(`Diagnostics._password_hash`), so a password set or replaced here counts for a running agent at
its next request, without a restart; sessions opened with the old password end then too.
Errors follow the CLI's rule: `GatewayError` -> one line, exit 2.
"""

import argparse
import getpass
import sys
from pathlib import Path
from typing import TypeAlias

from edge.diagnostics.password import (
    PASSWORD_FILE,
    check_password_rule,
    load_password_hash,
    store_password,
)
from edge.errors import ConfigError, GatewayError

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

SET_PASSWORD = "tollgate-edge technician set-password"
NO_PASSWORD_NOTICE = (
    "no technician password is set: the diagnostics page stays locked (503) until "
    f"`{SET_PASSWORD}` sets one"
)


def read_password(path: Path | None, *, option: str) -> str | None:
    """The first line of `path`, else asked twice on a terminal, else None; checked by the rule."""
    if path is not None:
        password = _first_line(path, option=option)
    elif sys.stdin.isatty():
        password = getpass.getpass("technician password (for the diagnostics page): ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("the two technician passwords differ; nothing was written")
    else:
        return None
    try:
        check_password_rule(password)
    except ValueError as exc:
        raise ConfigError(f"{exc}; nothing was written") from None
    return password


def _first_line(path: Path, *, option: str) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{option} {path}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{option} {path}: not UTF-8 text") from None
    return text.split("\n", 1)[0].removesuffix("\r")


def store_technician_password(data_dir: Path, password: str) -> Path:
    """`store_password`, its OSError said as one line with what to do about it."""
    try:
        return store_password(data_dir, password)
    except OSError as exc:
        raise GatewayError(
            f"cannot store the technician password in {data_dir}: {exc.strerror} "
            f"(run `{SET_PASSWORD}` as a user who can write there)"
        ) from exc


def password_is_set(data_dir: Path) -> bool:
    """Whether `data_dir` holds a technician password (False when it cannot be read: then the
    caller asks, and storing says what is wrong)."""
    try:
        return load_password_hash(data_dir) is not None
    except OSError:
        return False


def say_if_no_password(data_dir: Path) -> None:
    """Print one line when `data_dir` holds no technician password (the page then stays 503)."""
    try:
        stored = load_password_hash(data_dir)
    except OSError as exc:  # another user's data_dir: say what is known, do not guess
        print(f"cannot read {data_dir / PASSWORD_FILE} ({exc.strerror}); if {NO_PASSWORD_NOTICE}")
        return
    if stored is None:
        print(NO_PASSWORD_NOTICE)


def _set_password(args: argparse.Namespace) -> int:
    from edge.config import load_config

    data_dir = (
        load_config(args.config, require_id=False).gateway.data_dir
        if args.config is not None
        else args.data_dir
    )
    password = read_password(args.file, option="--file")
    if password is None:
        raise ConfigError(
            "not on a terminal, so the password cannot be asked: give it with --file F "
            "(its first line); nothing was written"
        )
    try:
        replacing = load_password_hash(data_dir) is not None
    except OSError as exc:
        raise GatewayError(
            f"cannot read {data_dir / PASSWORD_FILE}: {exc.strerror} (run this as a user who can "
            "write there); nothing was written"
        ) from exc
    path = store_technician_password(data_dir, password)
    if replacing:
        print(
            f"technician password replaced in {path}; a running agent refuses the old one from "
            "its next request and logs out the sessions opened with it (no restart needed)"
        )
    else:
        print(f"technician password set in {path}; a running agent uses it at once")
    return 0


def _list_actions(technician: argparse.ArgumentParser) -> int:
    """`tollgate-edge technician` alone: what it can do."""
    technician.print_help()
    return 0


def add_technician_commands(commands: Commands) -> None:
    """Add `technician set-password` to the `tollgate-edge` parser."""
    technician = commands.add_parser(
        "technician", help="the technician password of the diagnostics page"
    )
    actions = technician.add_subparsers(dest="action", metavar="{set-password}")
    technician.set_defaults(handler=lambda _args: _list_actions(technician))
    set_password = actions.add_parser(
        "set-password", help="set or replace the technician password (hashed, mode 0600)"
    )
    where = set_password.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, help="site config (TOML): its data_dir")
    where.add_argument("--data-dir", type=Path, help="the gateway's data_dir (before a config)")
    set_password.add_argument(
        "--file",
        type=Path,
        help="read the password from this file's first line (default: asked twice on a terminal)",
    )
    set_password.set_defaults(handler=_set_password)
