"""`tollgate-cloud` commands of this package: sessions refresh | list."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import orjson

from cloud.cli_support import DB_HELP, CommandFailed, Commands

if TYPE_CHECKING:
    from cloud.sessions.service import RefreshReport, StoredSession
from cloud.settings import Settings

FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


def add_commands(commands: Commands) -> None:
    """Register this package's subcommands (each sets `run(args, settings)`)."""
    sessions = commands.add_parser("sessions", help="compute and inspect device sessions")
    actions = sessions.add_subparsers(dest="action", required=True)
    refresh = actions.add_parser("refresh", help="recompute sessions of devices with new events")
    refresh.add_argument("--db", help=DB_HELP)
    refresh.set_defaults(run=_refresh)
    listing = actions.add_parser("list", help="print a device's current sessions as JSON")
    listing.add_argument("--device", required=True, dest="device_id")
    listing.add_argument("--from", dest="start", help="ISO time with offset (default: all)")
    listing.add_argument("--to", dest="end", help="ISO time with offset (default: all)")
    listing.add_argument("--db", help=DB_HELP)
    listing.set_defaults(run=_list)


def _refresh(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.db import Database
    from cloud.sessions.service import refresh_sessions

    async def run() -> RefreshReport:
        async with Database(settings.db_url) as db:
            return await refresh_sessions(db=db, as_of=datetime.now(UTC), progress=_print_progress)

    report = asyncio.run(run())
    print(report)


def _print_progress(done: int, total: int) -> None:
    if sys.stderr.isatty():
        print(f"\r{done}/{total} pairs", end="" if done < total else "\n", file=sys.stderr)


def _list(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.db import Database
    from cloud.session_work import EPOCH
    from cloud.sessions.service import sessions_overlapping

    start = parse_time(args.start, "--from") if args.start else EPOCH
    end = parse_time(args.end, "--to") if args.end else FAR_FUTURE
    if start >= end:
        raise CommandFailed("--from must be before --to")

    async def run() -> list[StoredSession]:
        async with Database(settings.db_url) as db, db.transaction() as session:
            return await sessions_overlapping(
                session=session, start=start, end=end, device_ids=[args.device_id]
            )

    sessions = asyncio.run(run())
    print(orjson.dumps([_json(s) for s in sessions], option=orjson.OPT_INDENT_2).decode())


def parse_time(text: str, option: str) -> datetime:
    """An aware ISO 8601 time from the command line; `CommandFailed` otherwise."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise CommandFailed(f"{option} {text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise CommandFailed(f"{option} {text!r} needs an offset, e.g. 2026-11-01T00:00:00+00:00")
    return value.astimezone(UTC)


def _json(stored: StoredSession) -> dict[str, object]:
    return {
        "id": stored.id,
        "device_id": stored.device_id,
        "channel": stored.channel,
        "name": stored.name,
        "started_at": stored.started_at.isoformat(),
        "ended_at": None if stored.ended_at is None else stored.ended_at.isoformat(),
        "last_activity_at": stored.last_activity_at.isoformat(),
        "close_reason": stored.close_reason.value,
        "events": [[gateway_id, seq] for gateway_id, seq in stored.events],
    }
