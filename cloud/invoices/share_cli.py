"""`tollgate-cloud share create | revoke`: links that open one invoice for a customer.

In invoices (it looks the invoice up); the tokens themselves are `cloud.auth.share_links`.
"""

import argparse
import asyncio
from datetime import timedelta

from cloud.cli_support import DB_HELP, CommandFailed, Commands
from cloud.errors import InvalidSettings
from cloud.settings import PUBLIC_URL_ENV, Settings, parse_duration


def add_commands(commands: Commands) -> None:
    """Register `share create | revoke` (each sets `run(args, settings)`)."""
    share = commands.add_parser("share", help="share one invoice with a customer (signed link)")
    actions = share.add_subparsers(dest="action", required=True)
    create = actions.add_parser(
        "create", help="print a link that opens the invoice's page and evidence, and nothing else"
    )
    create.add_argument("--invoice", type=int, required=True, help="the invoice id")
    create.add_argument("--expires", default="14d", help="lifetime, at most 90d (default 14d)")
    create.add_argument("--db", help=DB_HELP)
    create.set_defaults(run=_create)
    revoke = actions.add_parser("revoke", help="revoke every live link of an invoice")
    revoke.add_argument("--invoice", type=int, required=True, help="the invoice id")
    revoke.add_argument("--db", help=DB_HELP)
    revoke.set_defaults(run=_revoke)


def _create(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.auth.share_links import create_share_link
    from cloud.db import Database
    from cloud.invoices.service import get_invoice

    lifetime = _lifetime(args.expires)

    async def run() -> tuple[str, str]:
        async with Database(settings.db_url) as db, db.transaction(write=True) as session:
            await get_invoice(session=session, invoice_id=args.invoice)
            link = await create_share_link(
                session=session, invoice_id=args.invoice, created_by="cli", lifetime=lifetime
            )
            return link.path, link.expires_at.isoformat(timespec="seconds")

    path, expires = asyncio.run(run())
    base = settings.public_url or f"(${PUBLIC_URL_ENV} is not set: prefix the collector's URL)"
    print(f"{settings.public_url}{path}" if settings.public_url else path)
    if not settings.public_url:
        print(base)
    print(f"expires {expires}; shown only now (only its hash is stored)")


def _revoke(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.auth.share_links import revoke_share_links
    from cloud.db import Database
    from cloud.invoices.service import get_invoice

    async def run() -> int:
        async with Database(settings.db_url) as db, db.transaction(write=True) as session:
            await get_invoice(session=session, invoice_id=args.invoice)
            return await revoke_share_links(session=session, invoice_id=args.invoice)

    print(f"revoked {asyncio.run(run())} share link(s) of invoice {args.invoice}")


def _lifetime(text: str) -> timedelta:
    from cloud.auth.share_links import DEFAULT_LIFETIME

    try:
        lifetime = parse_duration(text, what="--expires")
    except InvalidSettings as exc:
        raise CommandFailed(str(exc)) from exc
    if lifetime <= timedelta(0):
        raise CommandFailed(f"--expires must be longer than 0 s (default {DEFAULT_LIFETIME.days}d)")
    return lifetime
