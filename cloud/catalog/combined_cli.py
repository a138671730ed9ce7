"""`tollgate-cloud combined add | list`: combined session rules (billable sessions across devices).

    tollgate-cloud combined add site-armed --name "Site armed" --scope site --combine union \
        --member panel --db URL
    tollgate-cloud combined add cam-armed --name "Camera while armed" --scope account \
        --combine intersection --member camera --member panel:1,2 --db URL
    tollgate-cloud combined list --db URL

A member is a profile id, optionally `:channel,channel` to take only those channels' sessions.
"""

import argparse
import asyncio

import orjson

from cloud.cli_support import DB_HELP, Commands
from cloud.settings import Settings


def add_commands(commands: Commands) -> None:
    """Register `combined add` and `combined list` (each sets `run(args, settings)`)."""
    combined = commands.add_parser("combined", help="combined session rules across devices")
    actions = combined.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="create a combined session rule (a profile id)")
    add.add_argument("rule_id", metavar="ID")
    add.add_argument("--name", required=True)
    add.add_argument("--scope", required=True, choices=["site", "account"])
    add.add_argument("--combine", required=True, choices=["union", "intersection"])
    add.add_argument(
        "--member", action="append", default=[], metavar="PROFILE[:CH,CH]", help="repeatable"
    )
    add.add_argument("--db", help=DB_HELP)
    add.set_defaults(run=_add)
    listing = actions.add_parser("list", help="print every combined rule as JSON lines")
    listing.add_argument("--db", help=DB_HELP)
    listing.set_defaults(run=_list)


def parse_member(text: str) -> tuple[str, list[str]]:
    """`panel` -> ("panel", []); `panel:1,2` -> ("panel", ["1", "2"])."""
    profile, _, channels = text.partition(":")
    return profile, [c for c in channels.split(",") if c]


def _add(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.catalog.combined_rules import create_combined_rule
    from cloud.db import Database

    async def run() -> None:
        async with Database(settings.db_url) as db, db.transaction(write=True) as session:
            await create_combined_rule(
                session=session,
                rule_id=args.rule_id,
                name=args.name,
                scope=args.scope,
                combine=args.combine,
                members=[parse_member(m) for m in args.member],
            )

    asyncio.run(run())
    print(f"combined rule {args.rule_id} created")


def _list(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.catalog.combined_rules import list_combined_rules, rule_document
    from cloud.db import Database

    async def run() -> list[dict[str, object]]:
        async with Database(settings.db_url) as db, db.transaction() as session:
            rows = await list_combined_rules(session=session)
            return [{"id": row.id, **rule_document(row)} for row in rows]

    for rule in asyncio.run(run()):
        print(orjson.dumps(rule).decode())
