"""`tollgate-cloud invoice` commands: run | work | finalize | list | show."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from cloud.choices import CHUNK_ACCOUNTS
from cloud.cli_support import DB_HELP, CommandFailed, Commands, ProgressBar

if TYPE_CHECKING:
    from cloud.invoices.models import Invoice, InvoiceLine
    from cloud.invoices.run_queue import WorkerReport
    from cloud.invoices.service import RunReport
from cloud.errors import InvalidSettings
from cloud.invoices import credit_cli
from cloud.settings import Settings, parse_duration

NOW_HELP = (
    "ISO time with offset to act as of, e.g. 2026-12-06T00:00:00+00:00 (default: the real now); "
    "a test and backfill tool: a past --now finalizes and rates as if it were then"
)


def add_commands(commands: Commands) -> None:
    """Register `invoice run | finalize | list | show` (each sets `run(args, settings)`)."""
    invoice = commands.add_parser("invoice", help="run, finalize and inspect invoices")
    actions = invoice.add_subparsers(dest="action", required=True)
    run = actions.add_parser("run", help="draft (or re-draft) a billing period's invoices")
    run.add_argument("--period", required=True, help="billing month, e.g. 2026-11")
    run.add_argument("--account", dest="account_id", help="only this account")
    run.add_argument("--now", help=NOW_HELP)
    run.add_argument("--grace", help='grace period, e.g. "5d", "36h" (default: settings)')
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes that rate the chunks of accounts (default 1: in this process); "
        "N > 1 starts `invoice work --run ID` N times, with the same result",
    )
    run.add_argument("--chunk", type=int, default=CHUNK_ACCOUNTS, help=argparse.SUPPRESS)
    run.add_argument("--lease", default=None, help=argparse.SUPPRESS)
    run.add_argument("--db", help=DB_HELP)
    run.set_defaults(run=_run)
    work = actions.add_parser(
        "work", help="rate the chunks of a run started by `invoice run --workers N` (a worker)"
    )
    work.add_argument("--run", type=int, required=True, dest="run_id", help="the run's id")
    work.add_argument(
        "--lease",
        default=None,
        help="how long a claimed chunk stays a dead worker's before another takes it over, e.g. "
        '"5m" (default 5m)',
    )
    work.add_argument("--db", help=DB_HELP)
    work.set_defaults(run=_work)
    finalize = actions.add_parser("finalize", help="finalize one draft, or every draft due")
    which = finalize.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", type=int, dest="invoice_id", help="finalize this draft now")
    which.add_argument("--due", action="store_true", help="finalize drafts past their grace")
    finalize.add_argument(
        "--force",
        action="store_true",
        help="with --id: finalize even during the grace period (it gets its number now; usage "
        "arriving later is billed as adjustment lines on the next invoice)",
    )
    finalize.add_argument("--now", help=NOW_HELP)
    finalize.add_argument("--db", help=DB_HELP)
    finalize.set_defaults(run=_finalize)
    listing = actions.add_parser("list", help="list invoices")
    listing.add_argument("--account", dest="account_id")
    listing.add_argument("--period")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.add_argument("--db", help=DB_HELP)
    listing.set_defaults(run=_list)
    show = actions.add_parser("show", help="print an invoice and its lines")
    show.add_argument("invoice_id", type=int, metavar="ID")
    show.add_argument("--db", help=DB_HELP)
    show.set_defaults(run=_show)
    discard = actions.add_parser("discard", help="delete a draft with its lines and evidence")
    discard.add_argument("invoice_id", type=int, metavar="ID")
    discard.add_argument("--db", help=DB_HELP)
    discard.set_defaults(run=_discard)
    credit_cli.add_invoice_action(actions)  # invoice credit ID [--line N ...] --reason TEXT


EXIT_ACCOUNTS_FAILED = 1  # the run finished; some accounts could not be rated (listed)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from cloud.db import Database
    from cloud.invoices.run_queue import run_with_workers
    from cloud.invoices.service import run_invoices

    now = _parse_now(args.now)
    grace = settings.invoice_grace if args.grace is None else _parse_grace(args.grace)
    if args.workers < 1 or args.chunk < 1:
        raise CommandFailed("--workers and --chunk must be at least 1")
    lease = _parse_lease(args.lease)

    async def run() -> RunReport:
        async with Database(settings.db_url) as db:
            if args.workers > 1:
                return await run_with_workers(
                    db=db,
                    period=args.period,
                    now=now,
                    grace=grace,
                    workers=args.workers,
                    account_id=args.account_id,
                    progress=ProgressBar(sys.stderr, label="accounts"),
                    seller=settings.seller,
                    chunk_accounts=args.chunk,
                    lease=lease,
                )
            return await run_invoices(
                db=db,
                period=args.period,
                now=now,
                grace=grace,
                account_id=args.account_id,
                progress=ProgressBar(sys.stderr, label="accounts"),
                seller=settings.seller,
            )

    report = asyncio.run(run())
    rows = [
        [
            r.account_id,
            r.outcome,
            _text(r.invoice_id),
            _text(r.total),
            str(r.lines),
            str(r.adjustments),
            r.error_code or "",
        ]
        for r in report.accounts
    ]
    print(table(["account", "outcome", "invoice", "total", "lines", "adjustments", "error"], rows))
    for failure in report.failures:
        print(f"failed: {failure.account_id}: {failure.error_code}: {failure.error}")
    for account_id, quality in report.quality.items():
        print(f"data quality: {account_id}: {quality.summary}")
    print(report)
    return EXIT_ACCOUNTS_FAILED if report.failures else 0


def _work(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.db import Database
    from cloud.invoices.run_queue import work_run

    lease = _parse_lease(args.lease)

    async def run() -> WorkerReport:
        async with Database(settings.db_url) as db:
            return await work_run(db=db, run_id=args.run_id, seller=settings.seller, lease=lease)

    done = asyncio.run(run())
    print(
        f"invoice run {args.run_id}: {done.chunks} chunk(s) rated ({done.accounts} accounts), "
        f"{done.failed} failed"
    )


def _parse_lease(text: str | None) -> timedelta:
    from cloud.invoices.run_queue import DEFAULT_LEASE

    if text is None:
        return DEFAULT_LEASE
    try:
        lease = parse_duration(text, what="--lease")
    except InvalidSettings as exc:
        raise CommandFailed(str(exc)) from None
    if lease <= timedelta(0):
        raise CommandFailed("--lease must be positive")
    return lease


def _finalize(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.db import Database
    from cloud.invoices.finalization import finalize_due, finalize_invoice
    from cloud.invoices.models import Invoice

    now = _parse_now(args.now)

    async def run() -> list[str]:
        async with Database(settings.db_url) as db:
            if args.due:
                ids = await finalize_due(db=db, now=now, seller=settings.seller)
                async with db.transaction() as session:
                    return [_described(await session.get_one(Invoice, i)) for i in ids]
            invoice = await finalize_invoice(
                db=db, invoice_id=args.invoice_id, now=now, force=args.force, seller=settings.seller
            )
            return [_described(invoice)]

    finalized = asyncio.run(run())
    for line in finalized:
        print(line)
    print(f"{len(finalized)} invoice(s) finalized")


def _described(invoice: Invoice) -> str:
    from cloud.invoices.finalization import invoice_number

    number = invoice_number(invoice.series, invoice.number)
    return f"invoice {invoice.id} ({invoice.account_id} {invoice.period}) finalized as {number}"


def _list(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.db import Database
    from cloud.invoices.finalization import invoice_number
    from cloud.invoices.service import list_invoices
    from cloud.rating.money import round_money

    async def run() -> list[Invoice]:
        async with Database(settings.db_url) as db, db.transaction() as session:
            return await list_invoices(
                session=session, account_id=args.account_id, period=args.period
            )

    invoices = asyncio.run(run())
    if args.json:
        print(json.dumps([_listed(invoice) for invoice in invoices], indent=2))
        return
    rows = [
        [
            str(i.id),
            i.account_id,
            i.period,
            i.status,
            invoice_number(i.series, i.number) or "",
            f"{round_money(i.total, i.currency)} {i.currency}",
        ]
        for i in invoices
    ]
    print(table(["id", "account", "period", "status", "number", "total"], rows))


def _listed(invoice: Invoice) -> dict[str, object]:
    from cloud.invoices.finalization import invoice_number
    from cloud.rating.money import round_money

    return {
        "id": invoice.id,
        "account_id": invoice.account_id,
        "period": invoice.period,
        "status": invoice.status,
        "number": invoice_number(invoice.series, invoice.number),
        "total": str(round_money(invoice.total, invoice.currency)),
        "currency": invoice.currency,
    }


def _discard(args: argparse.Namespace, settings: Settings) -> None:
    """Delete a draft (a finalized invoice is refused: credit it instead); the next run of its
    period drafts it again if the account is still billable."""
    from cloud.db import Database
    from cloud.invoices.finalization import discard_invoice

    async def run() -> None:
        async with Database(settings.db_url) as db:
            await discard_invoice(db=db, invoice_id=args.invoice_id)

    asyncio.run(run())
    print(f"draft {args.invoice_id} discarded")


def _show(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.db import Database
    from cloud.invoices.credit_notes import credited_by
    from cloud.invoices.finalization import invoice_number
    from cloud.invoices.service import get_invoice
    from cloud.rating.money import round_money

    async def run() -> tuple[Invoice, list[InvoiceLine], list[str]]:
        async with Database(settings.db_url) as db, db.transaction() as session:
            invoice, lines = await get_invoice(session=session, invoice_id=args.invoice_id)
            return invoice, lines, await credited_by(session=session, invoice_id=invoice.id)

    invoice, lines, credited = asyncio.run(run())
    number = invoice_number(invoice.series, invoice.number) or "(draft, no number yet)"
    print(f"invoice {invoice.id} {number}: account {invoice.account_id}, period {invoice.period}")
    print(
        f"status {invoice.status}, computed {invoice.computed_at.isoformat()}, "
        f"grace until {invoice.grace_until.isoformat()}"
    )
    rows = [
        [
            str(line.n),
            line.kind,
            line.description,
            _text(line.quantity),
            str(round_money(line.amount, invoice.currency)),
        ]
        for line in lines
    ]
    total = round_money(invoice.total, invoice.currency)
    rows.append(["", "", "total", "", f"{total} {invoice.currency}"])
    print(table(["n", "kind", "description", "quantity", "amount"], rows))
    if credited:
        print(f"credited: {', '.join(credited)}")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table with columns padded to their widest cell."""
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]
    lines = [headers, ["-" * width for width in widths], *rows]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _parse_now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise CommandFailed(f"--now {text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise CommandFailed(f"--now {text!r} needs an offset, e.g. 2026-12-02T00:00:00+00:00")
    return value.astimezone(UTC)


def _parse_grace(text: str) -> timedelta:
    try:
        return parse_duration(text, what="--grace")
    except InvalidSettings as exc:
        raise CommandFailed(str(exc)) from None
