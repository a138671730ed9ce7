"""`tollgate-cloud threshold add | list | remove`: the API's threshold routes without HTTP.

Each command runs one transaction through `cloud.thresholds.service` (the same checks as the API);
a bad number, an unknown account or a metric the plan does not charge is one line on stderr and
exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from cloud.thresholds.schemas import ThresholdOut

from cloud.cli_support import DB_HELP, CommandFailed, Commands
from cloud.invoices.cli import table
from cloud.settings import Settings

T = TypeVar("T")


def add_commands(commands: Commands) -> None:
    """Register `threshold add | list | enable | disable | remove` (each sets `run(args,
    settings)`)."""
    threshold = commands.add_parser(
        "threshold", help="usage thresholds: usage.threshold_reached once per billing period"
    )
    actions = threshold.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add a threshold in units of a metric or in an amount")
    add.add_argument("--account", required=True, dest="account_id")
    add.add_argument("--metric", dest="metric_id", help="a metric the account's plan charges")
    value = add.add_mutually_exclusive_group(required=True)
    value.add_argument("--units", help="units of --metric so far this period, e.g. 100")
    value.add_argument("--amount", help="amount so far (of --metric, or of all usage), e.g. 25")
    add.add_argument("--db", help=DB_HELP)
    add.set_defaults(run=_add)
    listing = actions.add_parser("list", help="an account's thresholds and when they last fired")
    listing.add_argument("--account", required=True, dest="account_id")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.add_argument("--db", help=DB_HELP)
    listing.set_defaults(run=_list)
    for action, help_text in (
        ("disable", "pause a threshold: not checked, never fires until enabled"),
        ("enable", "resume a paused threshold"),
    ):
        toggle = actions.add_parser(action, help=help_text)
        toggle.add_argument("threshold_id", type=int, metavar="ID")
        toggle.add_argument("--db", help=DB_HELP)
        toggle.set_defaults(run=_toggle, enabled=action == "enable")
    remove = actions.add_parser("remove", help="remove a threshold and its firings")
    remove.add_argument("threshold_id", type=int, metavar="ID")
    remove.add_argument("--db", help=DB_HELP)
    remove.set_defaults(run=_remove)


def _in_transaction(
    settings: Settings, work: Callable[[AsyncSession], Awaitable[T]], *, write: bool
) -> T:
    from cloud.db import Database

    async def run() -> T:
        async with Database(settings.db_url) as db, db.transaction(write=write) as session:
            return await work(session)

    return asyncio.run(run())


def parse_value(text: str, option: str) -> Decimal:
    """The decimal written after `option`; `CommandFailed` if it is not a number."""
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        raise CommandFailed(
            f"{option} {text!r} is not a decimal number (e.g. 100 or 25.50)"
        ) from None


def _add(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.thresholds.models import Measure
    from cloud.thresholds.schemas import ThresholdOut
    from cloud.thresholds.service import create_threshold

    measure = Measure.UNITS if args.units is not None else Measure.AMOUNT
    option = "--units" if measure == Measure.UNITS else "--amount"
    value = parse_value(args.units if measure == Measure.UNITS else args.amount, option)

    async def work(session: AsyncSession) -> ThresholdOut:
        row = await create_threshold(
            session=session,
            account_id=args.account_id,
            metric_id=args.metric_id,
            measure=measure,
            value=value,
            now=datetime.now(UTC),
        )
        return ThresholdOut.of(row)

    made = _in_transaction(settings, work, write=True)
    what = made.metric_id or "all usage"
    print(f"threshold {made.id}: {made.account_id} {what} {made.measure} >= {made.value}")


def _list(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.thresholds.schemas import ThresholdOut
    from cloud.thresholds.service import list_thresholds

    async def work(session: AsyncSession) -> list[ThresholdOut]:
        rows = await list_thresholds(session=session, account_id=args.account_id)
        return [ThresholdOut.of(row, last) for row, last in rows]

    found = _in_transaction(settings, work, write=False)
    if args.json:
        print(json.dumps([item.model_dump(mode="json") for item in found], indent=2))
        return
    rows = [
        [
            str(item.id),
            item.metric_id or "(all usage)",
            item.measure.value,
            str(item.value),
            "yes" if item.enabled else "no",
            "" if item.last_fired is None else item.last_fired.period,
            "" if item.last_fired is None else str(item.last_fired.observed),
        ]
        for item in found
    ]
    print(table(["id", "metric", "measure", "value", "enabled", "last fired", "observed"], rows))


def _toggle(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.api import MAX_ROW_ID
    from cloud.thresholds.schemas import ThresholdOut
    from cloud.thresholds.service import set_threshold_enabled

    if not 1 <= args.threshold_id <= MAX_ROW_ID:
        raise CommandFailed(f"threshold id {args.threshold_id}: no such threshold")

    async def work(session: AsyncSession) -> ThresholdOut:
        row = await set_threshold_enabled(
            session=session, threshold_id=args.threshold_id, enabled=args.enabled
        )
        return ThresholdOut.of(row)

    done = _in_transaction(settings, work, write=True)
    print(f"threshold {done.id} {'enabled' if done.enabled else 'disabled'}")


def _remove(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.api import MAX_ROW_ID
    from cloud.thresholds.service import delete_threshold

    if not 1 <= args.threshold_id <= MAX_ROW_ID:
        raise CommandFailed(f"threshold id {args.threshold_id}: no such threshold")

    async def work(session: AsyncSession) -> None:
        await delete_threshold(session=session, threshold_id=args.threshold_id)

    _in_transaction(settings, work, write=True)
    print(f"threshold {args.threshold_id} removed")
