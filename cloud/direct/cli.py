"""`tollgate-cloud` direct-ingestion commands: `source add|list|show|key` and `import FILE`.

`import` exits 0 when every row was stored or already known, 1 when some rows were rejected (the
report names each: row, field, reason), and 2 when the file cannot be imported at all.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from cloud.direct.schemas import ImportReport, SourceCreate

from cloud.choices import FileFormat
from cloud.cli_support import DB_HELP, CommandFailed, Commands, ProgressBar
from cloud.errors import error_locations
from cloud.settings import Settings

EXIT_REJECTED_ROWS = 1
MAX_PRINTED_ERRORS = 50


def add_commands(commands: Commands) -> None:
    """Register `source` and `import`."""
    source = commands.add_parser("source", help="manage direct sources (CloudEvents, files)")
    actions = source.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="create a source from a mapping file (TOML)")
    add.add_argument("source_id", metavar="ID")
    add.add_argument("--mapping", required=True, type=Path, help="TOML mapping file")
    add.set_defaults(run=_add)
    listing = actions.add_parser("list", help="list source ids")
    listing.set_defaults(run=_list)
    show = actions.add_parser("show", help="print a source and its data quality as JSON")
    show.add_argument("source_id", metavar="ID")
    show.set_defaults(run=_show)
    key = actions.add_parser("key", help="make an ingest key for a source; printed once")
    key.add_argument("source_id", metavar="ID")
    key.add_argument("--name", required=True, help="who or what uses the key")
    key.set_defaults(run=_key)
    for parser in (add, listing, show, key):
        parser.add_argument("--db", help=DB_HELP)

    imports = commands.add_parser(
        "import", help="import a CSV or JSON Lines file of a source's events"
    )
    imports.add_argument("file", type=Path, metavar="FILE")
    imports.add_argument("--source", required=True, dest="source_id")
    imports.add_argument("--format", choices=[f.value for f in FileFormat], dest="file_format")
    imports.add_argument("--dry-run", action="store_true", help="report, store nothing")
    imports.add_argument("--json", action="store_true", help="print the whole report as JSON")
    imports.add_argument("--db", help=DB_HELP)
    imports.set_defaults(run=_import)


def read_mapping(source_id: str, path: Path) -> SourceCreate:
    """A source spec from a TOML mapping file; `CommandFailed` naming what is wrong."""
    from pydantic import ValidationError

    from cloud.direct.schemas import SourceCreate

    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CommandFailed(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CommandFailed(f"{path} is not valid TOML: {exc}") from exc
    try:
        return SourceCreate.model_validate({"id": source_id, "mapping": document})
    except ValidationError as exc:
        first = error_locations(exc.errors(include_url=False))[0]
        where = ".".join(str(part) for part in first["loc"])
        reason = first["msg"].removeprefix("Value error, ")
        raise CommandFailed(f"{path}: {where}: {reason}") from exc


def _add(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.db import Database
    from cloud.direct.service import add_source

    spec = read_mapping(args.source_id, args.mapping)

    async def run() -> str:
        async with Database(settings.db_url) as db, db.transaction(write=True) as session:
            return (await add_source(session=session, spec=spec)).gateway_id

    gateway_id = asyncio.run(run())
    print(f"source {spec.id} created; its events are chained as gateway {gateway_id}")


def _list(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.db import Database
    from cloud.direct.service import list_sources

    async def run() -> list[str]:
        async with Database(settings.db_url) as db, db.transaction() as session:
            return await list_sources(session=session)

    for source_id in asyncio.run(run()):
        print(source_id)


def _show(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.db import Database
    from cloud.direct.service import describe_source

    async def run() -> bytes:
        async with Database(settings.db_url) as db, db.transaction() as session:
            view = await describe_source(session=session, source_id=args.source_id)
        return orjson.dumps(view.model_dump(mode="json"), option=orjson.OPT_INDENT_2)

    print(asyncio.run(run()).decode("utf-8"))


def _key(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.db import Database
    from cloud.direct.service import create_ingest_key

    async def run() -> tuple[str, str]:
        async with Database(settings.db_url) as db, db.transaction(write=True) as session:
            issued = await create_ingest_key(
                session=session, source_id=args.source_id, name=args.name
            )
        return issued.secret, issued.prefix

    secret, prefix = asyncio.run(run())
    print(secret)
    print(
        f"ingest key {prefix}… for source {args.source_id}: it is shown only now",
        file=sys.stderr,
    )


def _import(args: argparse.Namespace, settings: Settings) -> int:
    from cloud.db import Database
    from cloud.direct.files import guess_format
    from cloud.direct.service import import_file

    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise CommandFailed(f"cannot read {args.file}: {exc.strerror or exc}") from exc
    file_format = FileFormat(args.file_format) if args.file_format else guess_format(args.file.name)
    # Everything loaded so far lives as long as the command: keep it out of the cyclic GC's full
    # scans, which otherwise cost about a quarter of an import's CPU (bench/direct_ingest.py).
    gc.freeze()

    async def run() -> ImportReport:
        async with Database(settings.db_url) as db:
            return await import_file(
                db=db,
                source_id=args.source_id,
                data=data,
                filename=args.file.name,
                file_format=file_format,
                dry_run=args.dry_run,
                progress=ProgressBar(sys.stderr, label="rows"),
            )

    report = asyncio.run(run())
    if args.json:
        print(orjson.dumps(report.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode())
    else:
        print_report(report)
    return EXIT_REJECTED_ROWS if report.rejected else 0


def print_report(report: ImportReport) -> None:
    """The report for a person: totals, then each rejected row."""
    verb = "would store" if report.dry_run else "stored"
    print(
        f"{report.filename}: {report.rows} rows, {verb} {report.stored}, "
        f"{report.duplicates} already stored, {report.rejected} rejected"
        + (" (dry run: nothing was stored)" if report.dry_run else "")
    )
    for error in report.errors[:MAX_PRINTED_ERRORS]:
        print(f"  row {error.position}: {error.field}: {error.reason}")
    if report.rejected > MAX_PRINTED_ERRORS:
        print(f"  ... {report.rejected - MAX_PRINTED_ERRORS} more (use --json for all)")
