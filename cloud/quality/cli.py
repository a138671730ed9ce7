"""`tollgate-cloud quality list | show ID | ack ID | resolve ID`: incidents from the shell.

Output is JSON (one page of a list, or one incident). A step the incident's state does not
allow, an unknown id or a bad option is one line on stderr and exit 2 (cloud.cli).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from cloud.choices import MAX_NOTE, IncidentState
from cloud.cli_support import DB_HELP, CommandFailed, Commands

if TYPE_CHECKING:
    from cloud.db import Database
from cloud.settings import Settings

MAX_ID = 2**63 - 1


def add_commands(commands: Commands) -> None:
    """Register `quality` and its actions (each sets `run(args, settings)`)."""
    quality = commands.add_parser(
        "quality", help="data-quality incidents: list, show, ack, resolve"
    )
    actions = quality.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="incidents as JSON, newest first")
    listing.add_argument("--kind")
    listing.add_argument("--device")
    listing.add_argument("--gateway")
    listing.add_argument("--state", choices=[state.value for state in IncidentState])
    listing.add_argument("--since", help="last seen at or after (ISO time with offset)")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (1..1000)")
    listing.add_argument("--db", help=DB_HELP)
    listing.set_defaults(run=_list)
    for name, run, what in (
        ("show", _show, "one incident with its evidence"),
        ("ack", _ack, "acknowledge an open incident"),
        ("resolve", _resolve, "resolve an open or acknowledged incident"),
    ):
        action = actions.add_parser(name, help=what)
        action.add_argument("incident_id", metavar="ID")
        if name != "show":
            action.add_argument("--note", help=f"why (at most {MAX_NOTE} characters)")
            action.add_argument("--by", default="cli", help="who (default: cli)")
        action.add_argument("--db", help=DB_HELP)
        action.set_defaults(run=run)


def _list(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.quality.incidents import list_incidents
    from cloud.quality.schemas import IncidentQuery

    if not 1 <= args.limit <= 1000:
        raise CommandFailed("--limit must be 1..1000")
    query = IncidentQuery(
        kind=_text(args.kind, "--kind", 32),
        device_id=_text(args.device, "--device", 128),
        gateway_id=_text(args.gateway, "--gateway", 128),
        state=None if args.state is None else IncidentState(args.state),
        since=None if args.since is None else _time(args.since, "--since"),
        limit=args.limit,
    )

    async def run(db: Database) -> Any:
        async with db.transaction() as session:
            return await list_incidents(session=session, query=query)

    _print(_with_db(settings, run).model_dump(mode="json"))


def _show(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.quality.incidents import get_incident

    incident_id = _id(args.incident_id)

    async def run(db: Database) -> Any:
        async with db.transaction() as session:
            return await get_incident(session=session, incident_id=incident_id)

    _print(_with_db(settings, run).model_dump(mode="json"))


def _ack(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.quality.incidents import acknowledge

    incident_id, note = _id(args.incident_id), _note(args.note)
    done = _with_db(
        settings, lambda db: acknowledge(db=db, incident_id=incident_id, by=args.by, note=note)
    )
    _print(done.model_dump(mode="json"))


def _resolve(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.quality.incidents import resolve

    incident_id, note = _id(args.incident_id), _note(args.note)
    done = _with_db(
        settings, lambda db: resolve(db=db, incident_id=incident_id, by=args.by, note=note)
    )
    _print(done.model_dump(mode="json"))


def _with_db(settings: Settings, work: Callable[[Database], Awaitable[Any]]) -> Any:
    from cloud.db import Database

    async def run() -> Any:
        async with Database(settings.db_url) as db:
            return await work(db)

    return asyncio.run(run())


def _id(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_ID:
        raise CommandFailed(f"incident id {text!r} is not a positive whole number")
    return int(text)


def _note(text: str | None) -> str | None:
    return _text(text, "--note", MAX_NOTE)


def _text(text: str | None, option: str, longest: int) -> str | None:
    """An option's text within its bound and storable; `CommandFailed` otherwise."""
    if text is None:
        return None
    if not 1 <= len(text) <= longest:
        raise CommandFailed(f"{option} must be 1..{longest} characters")
    if "\x00" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise CommandFailed(f"{option} may not contain U+0000 or a lone surrogate")
    return text


def _time(text: str, option: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise CommandFailed(f"{option} {text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise CommandFailed(f"{option} {text!r} needs an offset, e.g. 2026-11-01T00:00:00+00:00")
    return value.astimezone(UTC)


def _print(document: Any) -> None:
    print(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
