"""`tollgate-cloud invoice credit ID [--line N ...] --reason TEXT` and
`tollgate-cloud credit-note list | show | export`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cloud.choices import MAX_REASON, NoteFormat
from cloud.cli_support import DB_HELP, CommandFailed, Commands

if TYPE_CHECKING:
    from cloud.invoices.credit_notes import IssuedNote, NotePage
from cloud.settings import Settings


def add_invoice_action(actions: Any) -> None:
    """Register `invoice credit` under the `invoice` command's actions."""
    credit = actions.add_parser(
        "credit",
        help="credit a finalized invoice wholly or by line: a credit note, numbered at once",
    )
    credit.add_argument("invoice_id", type=int, metavar="ID", help="the finalized invoice")
    credit.add_argument(
        "--line",
        type=int,
        action="append",
        dest="lines",
        metavar="N",
        help="credit line N (whole); repeat for more lines; none: the whole invoice",
    )
    credit.add_argument(
        "--reason", required=True, help=f"why (shown on the credit note, {MAX_REASON} chars max)"
    )
    credit.add_argument("--db", help=DB_HELP)
    credit.set_defaults(run=_credit)


def add_commands(commands: Commands) -> None:
    """Register `credit-note list | show | export`."""
    note = commands.add_parser("credit-note", help="list, show and export credit notes")
    actions = note.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="credit notes, newest first")
    listing.add_argument("--account", dest="account_id")
    listing.add_argument("--invoice", type=int, dest="invoice_id")
    listing.add_argument("--limit", type=int, default=100, help="page size (1 to 1000)")
    listing.add_argument("--cursor", help="the previous page's next cursor")
    listing.add_argument("--db", help=DB_HELP)
    listing.set_defaults(run=_list)
    show = actions.add_parser("show", help="print a credit note and its lines")
    show.add_argument("credit_note_id", type=int, metavar="ID")
    show.add_argument("--db", help=DB_HELP)
    show.set_defaults(run=_show)
    export = actions.add_parser(
        "export", help="write a credit note as JSON, HTML, PDF, Factur-X or CII XML"
    )
    export.add_argument("credit_note_id", type=int, metavar="ID")
    export.add_argument(
        "--format",
        default="json",
        help=f"one of {', '.join(NoteFormat)} (facturx: PDF/A-3 with the EN 16931 XML, type 381)",
    )
    export.add_argument(
        "--output", "--out", dest="out", help="file to write (default: standard output)"
    )
    export.add_argument("--db", help=DB_HELP)
    export.set_defaults(run=_export)


def _credit(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.db import Database
    from cloud.invoices.credit_notes import issue_credit_note

    async def run() -> IssuedNote:
        async with Database(settings.db_url) as db:
            return await issue_credit_note(
                db=db,
                invoice_id=args.invoice_id,
                lines=args.lines,
                reason=args.reason,
                now=datetime.now(UTC),
            )

    print(describe(asyncio.run(run())))


def describe(issued: IssuedNote) -> str:
    """Several lines: the note's number, what it credits, its lines and totals."""
    from cloud.rating.money import round_money

    note = issued.note
    currency = note.currency
    what = (
        "whole invoice"
        if note.whole
        else "lines " + ", ".join(str(line.invoice_line) for line in issued.lines)
    )
    text = [
        f"credit note {note.id} {issued.printed_number}: invoice {note.invoice_id} "
        f"({issued.invoice_number}), {what}; reason: {note.reason}"
    ]
    text.extend(
        f"  {line.n}. credits line {line.invoice_line}: {line.description}: "
        f"{round_money(line.amount, currency)} {currency} (VAT {line.tax_category} "
        f"{line.tax_rate}%)"
        for line in issued.lines
    )
    text.append(
        f"  net {round_money(note.net, currency)}, tax {round_money(note.tax, currency)}, "
        f"gross {round_money(note.gross, currency)} {currency}"
    )
    return "\n".join(text)


def _list(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.db import Database
    from cloud.invoices.credit_notes import list_credit_notes
    from cloud.rating.money import round_money

    async def run() -> NotePage:
        async with Database(settings.db_url) as db, db.transaction() as session:
            return await list_credit_notes(
                session=session,
                account_id=args.account_id,
                invoice_id=args.invoice_id,
                limit=args.limit,
                cursor=args.cursor,
            )

    page = asyncio.run(run())
    for issued in page.notes:
        note = issued.note
        print(
            f"{note.id}  {issued.printed_number}  {note.account_id}  invoice "
            f"{issued.invoice_number}  {round_money(note.gross, note.currency)} {note.currency}"
        )
    print(f"{len(page.notes)} credit note(s)")
    if page.next_cursor is not None:
        print(f"more: --cursor {page.next_cursor}")


def _show(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.db import Database
    from cloud.invoices.credit_notes import get_credit_note

    async def run() -> IssuedNote:
        async with Database(settings.db_url) as db, db.transaction() as session:
            return await get_credit_note(session=session, credit_note_id=args.credit_note_id)

    print(describe(asyncio.run(run())))


def _export(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.db import Database
    from cloud.invoices.credit_note_document import check_note_format, export_credit_note
    from cloud.invoices.html import PageLinks

    check_note_format(args.format)  # before opening the database
    links = PageLinks(base=settings.public_url, standalone=True)  # a file: no dead links

    async def run() -> bytes:
        async with Database(settings.db_url) as db, db.transaction() as session:
            body, _ = await export_credit_note(
                session=session,
                credit_note_id=args.credit_note_id,
                export_format=args.format,
                links=links,
            )
            return body

    body = asyncio.run(run())
    if args.out is None:
        sys.stdout.buffer.write(body)
        return
    try:
        with open(args.out, "wb") as out:
            out.write(body)
    except OSError as exc:
        raise CommandFailed(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    print(f"wrote {args.out}")
