"""`tollgate-cloud tax-rate add | list`: a country's VAT rates per tax category, by date."""

from __future__ import annotations

import argparse
import asyncio
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cloud.catalog.tax_rates import TaxRate
from cloud.cli_support import DB_HELP, CommandFailed, Commands
from cloud.settings import Settings


def add_commands(commands: Commands) -> None:
    """Register `tax-rate add | list` (each sets `run(args, settings)`)."""
    tax = commands.add_parser("tax-rate", help="VAT rates per country and tax category")
    actions = tax.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add a rate in force from a date on")
    add.add_argument("--country", required=True, help="ISO 3166 alpha-2, e.g. DE")
    add.add_argument(
        "--category", required=True, choices=["standard", "reduced", "zero"], help="tax category"
    )
    add.add_argument("--rate", required=True, help='percent, e.g. "19" or "7.7" (0 for zero)')
    add.add_argument("--from", dest="valid_from", required=True, help="first day, YYYY-MM-DD")
    add.add_argument("--db", help=DB_HELP)
    add.set_defaults(run=_add)
    listing = actions.add_parser("list", help="list the rates")
    listing.add_argument("--country", help="only this country")
    listing.add_argument("--db", help=DB_HELP)
    listing.set_defaults(run=_list)


def _add(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.catalog.tax_rates import add_tax_rate
    from cloud.db import Database

    rate = _rate(args.rate)
    valid_from = _day(args.valid_from)

    async def run() -> TaxRate:
        async with Database(settings.db_url) as db, db.transaction(write=True) as session:
            return await add_tax_rate(
                session=session,
                country=args.country,
                category=args.category,
                valid_from=valid_from,
                rate=rate,
            )

    print(f"added {_described(asyncio.run(run()))}")


def _list(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.catalog.tax_rates import list_tax_rates
    from cloud.db import Database

    async def run() -> list[TaxRate]:
        async with Database(settings.db_url) as db, db.transaction() as session:
            return await list_tax_rates(session=session, country=args.country)

    for row in asyncio.run(run()):
        print(_described(row))


def _described(row: TaxRate) -> str:
    rate = format(row.rate.normalize(), "f")
    return f"{row.country} {row.category} {rate}% from {row.valid_from.isoformat()}"


def _rate(text: str) -> Decimal:
    try:
        return Decimal(text.strip().rstrip("%"))
    except InvalidOperation:
        raise CommandFailed(f"--rate {text!r}: a percent such as 19 or 7.7") from None


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandFailed(f"--from {text!r}: a date YYYY-MM-DD") from None
