"""`tollgate-cloud`: migrate the database, serve the collector, register gateways.

Expected failures (bad URL, unreadable key file, duplicate gateway, missing schema) print one
line to stderr and exit with status 2; they never show a traceback.
"""

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson
import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from cloud.app import create_app
from cloud.db import Database
from cloud.errors import CollectorError
from cloud.gateways.service import describe_gateway, register_gateway
from cloud.schema import current_revision, head_revision, migrate
from cloud.settings import DB_ENV, Settings

EXIT_USAGE = 2


class CommandFailed(Exception):
    """An expected failure of a command: its message is all the user needs."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `tollgate-cloud`."""
    parser = argparse.ArgumentParser(prog="tollgate-cloud", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    db_help = f"database URL (sqlite:///PATH or postgresql://HOST/DB); default ${DB_ENV}"

    migrate_cmd = commands.add_parser("migrate", help="create or upgrade the database schema")
    migrate_cmd.add_argument("--db", help=db_help)
    migrate_cmd.set_defaults(run=_migrate)

    serve = commands.add_parser("serve", help="run the collector HTTP API")
    serve.add_argument("--db", help=db_help)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(run=_serve)

    gateway = commands.add_parser("gateway", help="register and inspect gateways")
    actions = gateway.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="register a gateway with its Ed25519 public key")
    add.add_argument("--id", required=True, dest="gateway_id")
    add.add_argument("--public-key", required=True, type=Path, help="PEM file")
    add.add_argument("--db", help=db_help)
    add.set_defaults(run=_gateway_add)
    show = actions.add_parser("show", help="print a gateway's chain status as JSON")
    show.add_argument("--id", required=True, dest="gateway_id")
    show.add_argument("--db", help=db_help)
    show.set_defaults(run=_gateway_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; 0 on success, 2 on an expected failure (message on stderr)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = Settings.load(db=args.db)
        args.run(args, settings)
    except (CommandFailed, CollectorError) as exc:
        print(f"tollgate-cloud: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (SQLAlchemyError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"tollgate-cloud: error: database unavailable: {reason}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> None:
    async def run() -> str | None:
        async with Database(settings.db_url) as db:
            await migrate(db.engine)
            return await current_revision(db.engine)

    print(f"database at revision {asyncio.run(run())}")


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    _require_schema(settings)
    app = create_app(settings)
    # Everything loaded so far lives as long as the process: keep it out of the cyclic GC's
    # scans. A batch allocates ~10^4 objects, and full collections over the ~10^5 objects of the
    # imported libraries cost about 15% of ingest CPU (bench/collector_ingest.py).
    gc.freeze()
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


def _require_schema(settings: Settings) -> None:
    async def revision() -> str | None:
        async with Database(settings.db_url) as db:
            return await current_revision(db.engine)

    found, wanted = asyncio.run(revision()), head_revision()
    if found != wanted:
        state = "has no collector schema" if found is None else f"is at revision {found}"
        raise CommandFailed(
            f"the database {state}, this collector needs revision {wanted}: "
            f"run `tollgate-cloud migrate --db URL` first"
        )


def _gateway_add(args: argparse.Namespace, settings: Settings) -> None:
    try:
        pem = args.public_key.read_bytes()
    except OSError as exc:
        raise CommandFailed(
            f"cannot read public key file {args.public_key}: {exc.strerror or exc}"
        ) from exc

    async def run() -> None:
        async with Database(settings.db_url) as db, db.transaction(write=True) as session:
            await register_gateway(session=session, gateway_id=args.gateway_id, public_key=pem)

    asyncio.run(run())
    print(f"gateway {args.gateway_id} registered")


def _gateway_show(args: argparse.Namespace, settings: Settings) -> None:
    async def run() -> bytes:
        async with Database(settings.db_url) as db, db.transaction() as session:
            status = await describe_gateway(session=session, gateway_id=args.gateway_id)
        return orjson.dumps(status.model_dump(mode="json"), option=orjson.OPT_INDENT_2)

    print(asyncio.run(run()).decode("utf-8"))


if __name__ == "__main__":
    sys.exit(main())
