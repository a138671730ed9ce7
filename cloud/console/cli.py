"""`tollgate-cloud user add | reset | disable | enable | list`: the console's users.

A password comes from `--password-file` (its first line) or, on a terminal, is asked twice; it
has 12 to 256 characters. `reset` and `disable` also end the user's console sessions; a disabled
user cannot log in until `enable`. The heavy imports
(SQLAlchemy, argon2) happen inside the handlers (ARCHITECTURE.md, "The CLIs stay quick to start").
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

from cloud.auth.roles import Role
from cloud.cli_support import DB_HELP, CommandFailed, Commands
from cloud.settings import Settings

T = TypeVar("T")
MIN_PASSWORD = 12  # cloud.console.models.MIN_PASSWORD, which imports SQLAlchemy
CONSOLE_ROLES = [role.value for role in Role]


def add_commands(commands: Commands) -> None:
    """Register `user ...` (each sets `run(args, settings)`)."""
    user = commands.add_parser("user", help="the billing console's users (name, role, password)")
    actions = user.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="create a console user with a role and a password")
    add.add_argument("--name", required=True, help="the login name")
    add.add_argument("--role", required=True, choices=CONSOLE_ROLES, help="what the user may do")
    add.set_defaults(run=_add)
    reset = actions.add_parser("reset", help="set a new password and end the user's sessions")
    reset.add_argument("--name", required=True, help="the login name")
    reset.set_defaults(run=_reset)
    disable = actions.add_parser("disable", help="refuse the user's logins; end their sessions")
    disable.add_argument("--name", required=True, help="the login name")
    disable.set_defaults(run=_disable)
    enable = actions.add_parser("enable", help="let a disabled user log in again")
    enable.add_argument("--name", required=True, help="the login name")
    enable.set_defaults(run=_enable)
    listing = actions.add_parser("list", help="every console user, with role and state")
    listing.set_defaults(run=_list)
    for action in (add, reset):
        action.add_argument(
            "--password-file",
            type=Path,
            help=f"read the password from this file's first line (else asked twice on a "
            f"terminal); at least {MIN_PASSWORD} characters",
        )
    for action in (add, reset, disable, enable, listing):
        action.add_argument("--db", help=DB_HELP)


def read_password(path: Path | None) -> str:
    """The first line of `path`, else asked twice on a terminal; CommandFailed otherwise."""
    from cloud.console.users import check_password_rule

    if path is not None:
        try:
            password = path.read_text(encoding="utf-8").split("\n", 1)[0].removesuffix("\r")
        except OSError as exc:
            raise CommandFailed(f"--password-file {path}: {exc.strerror}") from exc
        except UnicodeDecodeError:
            raise CommandFailed(f"--password-file {path}: not UTF-8 text") from None
    elif sys.stdin.isatty():
        password = getpass.getpass("console password: ")
        if getpass.getpass("again: ") != password:
            raise CommandFailed("the two passwords differ; nothing was changed")
    else:
        raise CommandFailed("give --password-file FILE, or run on a terminal to be asked")
    try:
        return check_password_rule(password)
    except ValueError as exc:
        raise CommandFailed(f"{exc}; nothing was changed") from None


def _in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from cloud.db import Database

    async def run() -> T:
        async with Database(settings.db_url) as db, db.transaction(write=True) as session:
            return await work(session)

    return asyncio.run(run())


def _add(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.console.users import add_user, check_name

    try:
        check_name(args.name)
    except ValueError as exc:
        raise CommandFailed(str(exc)) from None
    password = read_password(args.password_file)
    made = _in_transaction(
        settings,
        lambda session: add_user(
            session=session, name=args.name, role=args.role, password=password
        ),
    )
    print(f"user {made.name} ({made.role}) added: log in at /console/login")


def _reset(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.console.users import reset_password

    password = read_password(args.password_file)
    ended = _in_transaction(
        settings,
        lambda session: reset_password(session=session, name=args.name, password=password),
    )
    print(f"user {args.name}: new password set; {ended} session(s) ended")


def _disable(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.console.users import set_disabled

    ended = _in_transaction(
        settings, lambda session: set_disabled(session=session, name=args.name, disabled=True)
    )
    print(f"user {args.name}: disabled, cannot log in; {ended} session(s) ended")


def _enable(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.console.users import set_disabled

    _in_transaction(
        settings, lambda session: set_disabled(session=session, name=args.name, disabled=False)
    )
    print(f"user {args.name}: enabled, may log in again")


def _list(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.console.users import list_users

    rows = _in_transaction(settings, lambda session: list_users(session=session))
    if not rows:
        print("no console users: add one with `tollgate-cloud user add`")
    for row in rows:
        state = "disabled" if row.disabled else "enabled"
        print(f"{row.name}\t{row.role}\t{row.created_at.isoformat()}\t{state}")
