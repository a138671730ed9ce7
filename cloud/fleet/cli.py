"""`tollgate-cloud device show ID`: a device's twin as JSON (the catalog owns the `device` group;
cloud/cli.py hands it here, so the catalog does not import the fleet above it)."""

import argparse
import asyncio
from datetime import UTC, datetime

import orjson

from cloud.cli_support import DB_HELP, Commands
from cloud.settings import Settings


def add_device_commands(device: Commands) -> None:
    """Add `show` to the `device` group."""
    show = device.add_parser(
        "show",
        help="print a device's twin (last seen, states, values, health, incidents) as JSON",
        description="print a device's twin as JSON",
    )
    show.add_argument("device_id", metavar="ID")
    show.add_argument("--db", help=DB_HELP)
    show.set_defaults(run=_device_show)


def _device_show(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.db import Database
    from cloud.fleet.reads import device_twin

    async def run() -> bytes:
        async with Database(settings.db_url) as db, db.transaction() as session:
            twin = await device_twin(
                session=session,
                device_id=args.device_id,
                now=datetime.now(UTC),
                low_battery=settings.low_battery,
            )
        return orjson.dumps(twin.model_dump(mode="json"), option=orjson.OPT_INDENT_2)

    print(asyncio.run(run()).decode("utf-8"))
