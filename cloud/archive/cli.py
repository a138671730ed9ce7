"""`tollgate-cloud archive --before YYYY-MM --to DIR [--db URL]` and `archive verify FILE`.

    tollgate-cloud archive --before 2025-01 --to /srv/tollgate/archive
    tollgate-cloud archive verify /srv/tollgate/archive/events-2024-12.jsonl.gz

The first moves every closed month strictly before `--before` into one verified file per month
and out of the database (cloud/archive/service.py); a month that is not closed refuses the run
and nothing is archived (exit 2). `verify` needs no database: it recomputes every batch's chain
and signature in the file and its counts, and exits 0 when it verifies, 1 when it does not.
"""

import argparse
import asyncio
from pathlib import Path

from cloud.cli_support import DB_HELP, CommandFailed, Commands
from cloud.settings import Settings

EXIT_INVALID = 1


def add_commands(commands: Commands) -> None:
    """Register `archive` (with `--before --to`) and `archive verify FILE`."""
    archive = commands.add_parser(
        "archive", help="move closed months of events to files that verify offline"
    )
    archive.add_argument("--before", metavar="YYYY-MM", help="archive every month before this")
    archive.add_argument("--to", type=Path, metavar="DIR", help="directory of the archive files")
    archive.add_argument("--db", help=DB_HELP)
    archive.set_defaults(run=_archive)
    actions = archive.add_subparsers(dest="archive_action", required=False)
    check = actions.add_parser("verify", help="verify an archive file offline (no database)")
    check.add_argument("file", type=Path)
    check.set_defaults(run=_verify, db=None, no_database=True)


def _archive(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.archive.service import ArchiveRefused, archive_before
    from cloud.db import Database
    from cloud.ingest.partitions import parse_month

    if args.before is None or args.to is None:
        raise CommandFailed("archive needs --before YYYY-MM and --to DIR (or: archive verify FILE)")
    try:
        before = parse_month(args.before)
    except ValueError as exc:
        raise CommandFailed(f"--before: {exc}") from exc
    if not args.to.is_dir():
        raise CommandFailed(f"--to {args.to}: not a directory")

    async def run() -> None:
        async with Database(settings.db_url) as db:
            done = await archive_before(db, before=before, directory=args.to)
        if not done:
            print(f"no events before {args.before}: nothing to archive")
        for item in done:
            print(
                f"{item.month}: {item.event_count} events, {item.batch_count} batches -> "
                f"{item.path} (sha256 {item.sha256}), removed from the database"
            )

    try:
        asyncio.run(run())
    except ArchiveRefused as exc:
        raise CommandFailed(str(exc)) from exc


def _verify(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.archive.files import ArchiveInvalid, verify_archive

    try:
        summary, _ = verify_archive(args.file)
    except ArchiveInvalid as exc:
        print(f"✗ {exc}")
        raise SystemExit(EXIT_INVALID) from exc
    print(
        f"✓ {args.file}: {summary.month} part {summary.part}, {summary.event_count} events in "
        f"{summary.batch_count} batches of {summary.gateway_count} gateways verify "
        f"(chains, signatures, counts); sha256 {summary.sha256}"
    )
