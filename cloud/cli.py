"""`tollgate-cloud`: migrate the database, serve the collector, manage sites and gateways.

Expected failures (bad URL, unreadable key file, duplicate gateway, missing schema) print one
line to stderr and exit with status 2; they never show a traceback.
"""

import argparse
import asyncio
import gc
import logging
import os
import re
import select
import signal
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import orjson

from cloud.archive import cli as archive_cli
from cloud.bus import cli as bus_cli
from cloud.catalog import cli as catalog_cli
from cloud.catalog import combined_cli, tax_cli
from cloud.cli_support import (
    DB_HELP,
    CommandFailed,
    check_database,
    database_failure,
    uses_database,
)
from cloud.console import cli as console_cli
from cloud.direct import cli as direct_cli
from cloud.errors import CollectorError
from cloud.fleet import cli as fleet_cli
from cloud.invoices import catalog_cli as catalog_load_cli
from cloud.invoices import cli as invoices_cli
from cloud.invoices import credit_cli, evidence_cli, share_cli
from cloud.quality import cli as quality_cli
from cloud.sessions import cli as sessions_cli
from cloud.settings import Settings
from cloud.thresholds import cli as thresholds_cli
from cloud.webhooks import cli as webhooks_cli

EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE  # what a shell reports for `yes | head`


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `tollgate-cloud`."""
    parser = argparse.ArgumentParser(prog="tollgate-cloud", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    db_help = DB_HELP

    migrate_cmd = commands.add_parser("migrate", help="create or upgrade the database schema")
    migrate_cmd.add_argument("--db", help=db_help)
    migrate_cmd.set_defaults(run=_migrate)

    serve = commands.add_parser("serve", help="run the collector HTTP API")
    serve.add_argument("--db", help=db_help)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    bus_cli.add_bus_option(serve)  # --bus: append to the ingest log, a sink stores
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
    invite = actions.add_parser(
        "invite", help="make a single-use enrollment code for a site (printed once)"
    )
    invite.add_argument("--site", required=True, dest="site_id")
    invite.add_argument("--expires", default="24h", help='lifetime, e.g. "30m", "24h", "7d"')
    invite.add_argument("--db", help=db_help)
    invite.set_defaults(run=_gateway_invite)
    revoke = actions.add_parser("revoke", help="refuse a gateway's batches from now on")
    revoke.add_argument("--id", required=True, dest="gateway_id")
    revoke.add_argument("--reason", help="why (kept with the gateway)")
    revoke.add_argument("--db", help=db_help)
    revoke.set_defaults(run=_gateway_revoke)

    site = commands.add_parser("site", help="manage sites")
    site_actions = site.add_subparsers(dest="action", required=True)
    site_add = site_actions.add_parser("add", help="create a site")
    site_add.add_argument("--id", required=True, dest="site_id")
    site_add.add_argument("--name", required=True)
    site_add.add_argument("--db", help=db_help)
    site_add.set_defaults(run=_site_add)

    sweep = commands.add_parser(
        "sweep", help="run every background job once (silence, offline gateways, webhooks, ...)"
    )
    sweep.add_argument("--only", metavar="JOB", help="run only the job of that name")
    sweep.add_argument("--db", help=db_help)
    sweep.set_defaults(run=_sweep)

    modules = (catalog_cli, sessions_cli, invoices_cli, evidence_cli, direct_cli, share_cli)
    credit_cli.add_commands(commands)  # credit-note list | show | export
    for module in modules:
        module.add_commands(commands)
    fleet_cli.add_device_commands(catalog_cli.device_commands(commands))
    catalog_load_cli.add_commands(catalog_cli.catalog_commands(commands))  # load, list
    thresholds_cli.add_commands(commands)
    combined_cli.add_commands(commands)  # combined add | list
    tax_cli.add_commands(commands)  # tax-rate add | list
    quality_cli.add_commands(commands)
    webhooks_cli.add_commands(commands)
    bus_cli.add_commands(commands)  # sink, bus status
    archive_cli.add_commands(commands)  # archive --before --to, archive verify
    console_cli.add_commands(commands)  # user add | reset | list (the console's users)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; 0 on success, 2 on an expected failure (message on stderr)."""
    args = build_parser().parse_args(argv)  # `--help` and usage errors exit here, before
    from sqlalchemy.exc import SQLAlchemyError  # the database layer is imported (issue 18)

    from cloud.wiring import connect

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.command != "migrate":  # the schema check reads the revision: no Alembic chatter
        logging.getLogger("alembic").setLevel(logging.WARNING)
    db_url = ""
    try:
        settings = Settings.load(db=args.db, bus=getattr(args, "bus", None))
        db_url = settings.db_url
        # --db or $TOLLGATE_DB, a usable file, a migrated schema (not for `bus status`)
        if uses_database(args) and not getattr(args, "no_database", False):
            check_database(settings, migrating=args.command == "migrate")
            if args.command != "migrate":
                _require_schema(settings)
        connect(settings)
        status = args.run(args, settings)  # a command may return its own exit status
        sys.stdout.flush()  # a closed pipe shows here, not as an "Exception ignored" at exit
    except (CommandFailed, CollectorError) as exc:
        print(f"tollgate-cloud: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (SQLAlchemyError, OSError) as exc:
        if isinstance(exc, BrokenPipeError) and _reader_gone():  # `... | head`: not a failure
            _quiet_stdout()
            return EXIT_BROKEN_PIPE
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"tollgate-cloud: error: {database_failure(db_url, reason)}", file=sys.stderr)
        return EXIT_USAGE
    return status if isinstance(status, int) else 0


def _reader_gone() -> bool:
    """True when stdout is a pipe nobody reads any more (`invoice list | head` after its lines):
    then a BrokenPipeError is the reader's choice, not a failure (and no database's, which the
    OSError handler would say). Linux poll() flags such a pipe's write end with POLLERR."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
    except (OSError, ValueError):  # no descriptor (a captured stdout): not a pipe
        return False
    return any(events & select.POLLERR for _fd, events in poller.poll(0))


def _quiet_stdout() -> None:
    """Point stdout at devnull so that the flush at exit cannot raise again, as the Python docs
    advise for a broken pipe (https://docs.python.org/3/library/signal.html#note-on-sigpipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _migrate(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.db import Database
    from cloud.schema import current_revision, migrate

    async def run() -> str | None:
        async with Database(settings.db_url) as db:
            await migrate(db.engine)
            return await current_revision(db.engine)

    print(f"database at revision {asyncio.run(run())}")


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    from cloud.app import create_app

    _require_schema(settings)
    app = create_app(settings)
    # Everything loaded so far lives as long as the process: keep it out of the cyclic GC's
    # scans. A batch allocates ~10^4 objects, and full collections over the ~10^5 objects of the
    # imported libraries cost about 15% of ingest CPU (bench/collector_ingest.py).
    gc.freeze()
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


def _sweep(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.db import Database
    from cloud.scheduler import run_once
    from cloud.wiring import jobs

    selected = [job for job in jobs(settings) if args.only in (None, job.name)]
    if args.only is not None and not selected:
        names = ", ".join(job.name for job in jobs(settings)) or "none"
        raise CommandFailed(f"no background job {args.only!r} (jobs: {names})")
    _require_schema(settings)

    async def run() -> dict[str, object]:
        async with Database(settings.db_url) as db:
            return await run_once(db, selected)

    for name, report in asyncio.run(run()).items():
        print(f"{name}: {'failed (see the log)' if report is None else report}")


def _require_schema(settings: Settings) -> None:
    from cloud.db import Database
    from cloud.schema import current_revision, head_revision

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
    from cloud.db import Database
    from cloud.gateways.service import register_gateway

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
    from cloud.db import Database
    from cloud.fleet.gateway_reads import describe_gateway

    async def run() -> bytes:
        async with Database(settings.db_url) as db, db.transaction() as session:
            status = await describe_gateway(session=session, gateway_id=args.gateway_id)
        return orjson.dumps(status.model_dump(mode="json"), option=orjson.OPT_INDENT_2)

    print(asyncio.run(run()).decode("utf-8"))


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_lifetime(text: str) -> timedelta:
    """`30m`, `24h`, `7d` as a timedelta; `CommandFailed` otherwise."""
    match = re.fullmatch(r"(\d+)\s*([smhd])", text.strip())
    if match is None or int(match[1]) == 0:
        raise CommandFailed(f"--expires {text!r}: use a positive number and s, m, h or d (24h)")
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


def _gateway_invite(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.db import Database
    from cloud.gateways.enrollment import create_invite

    lifetime = parse_lifetime(args.expires)

    async def run() -> tuple[str, str]:
        async with Database(settings.db_url) as db, db.transaction(write=True) as session:
            code, expires_at = await create_invite(
                session=session, site_id=args.site_id, lifetime=lifetime
            )
        return code, expires_at.isoformat(timespec="seconds")

    code, expires = asyncio.run(run())
    print(code)
    print(
        f"single-use enrollment code for site {args.site_id}, valid until {expires}; "
        "it is shown only now",
        file=sys.stderr,
    )


def _gateway_revoke(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.db import Database
    from cloud.gateways.enrollment import revoke_gateway

    async def run() -> None:
        async with Database(settings.db_url) as db, db.transaction(write=True) as session:
            await revoke_gateway(session=session, gateway_id=args.gateway_id, reason=args.reason)

    asyncio.run(run())
    print(f"gateway {args.gateway_id} revoked")


def _site_add(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.db import Database
    from cloud.gateways.enrollment import add_site

    async def run() -> None:
        async with Database(settings.db_url) as db, db.transaction(write=True) as session:
            await add_site(session=session, site_id=args.site_id, name=args.name)

    asyncio.run(run())
    print(f"site {args.site_id} added")


if __name__ == "__main__":
    sys.exit(main())
