"""`tollgate-cloud catalog list KIND [--json]` and `catalog load FILE [--dry-run]`.

Above the catalog because loading follows the correction rules and re-drafts what it changes
(`cloud.invoices.corrections`), and listing shows direct sources and gateways too. Each listing
prints the same objects as the API's GET route of that kind, as a table or as its JSON answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from pydantic import BaseModel
    from sqlalchemy.ext.asyncio import AsyncSession

    from cloud.catalog.loader import LoadReport
    from cloud.invoices.corrections import Redrafted

from cloud.cli_support import DB_HELP, CommandFailed, Commands
from cloud.invoices.cli import table
from cloud.settings import Settings

PAGE = 1000
Reader: TypeAlias = "Callable[[AsyncSession], Awaitable[list[dict[str, Any]]]]"


def add_commands(catalog: Commands) -> None:
    """Register `load` and `list` in the `catalog` group."""
    load = catalog.add_parser(
        "load",
        help="apply a TOML catalog file: creates and updates, all or nothing",
        description="Apply a TOML catalog file (every section and field: docs/catalog.md): "
        "objects missing "
        "are created, differing ones updated under the correction rules, and the drafts it "
        "affects re-drafted. --dry-run prints what would change and writes nothing.",
    )
    load.add_argument("file", type=Path, help="TOML file (format: docs/catalog.md)")
    load.add_argument(
        "--dry-run",
        action="store_true",
        help="print each object's action (changed fields old -> new) and the drafts' totals "
        "old -> new; write nothing",
    )
    load.add_argument("--db", help=DB_HELP)
    load.set_defaults(run=_load)
    listing = catalog.add_parser(
        "list", help="list catalog objects of one kind", description="List catalog objects."
    )
    listing.add_argument("kind", choices=sorted(KINDS), help="what to list")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.add_argument("--db", help=DB_HELP)
    listing.set_defaults(run=_list)


# --- load ----------------------------------------------------------------------------------------


def _load(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.catalog.loader import parse_catalog
    from cloud.db import Database
    from cloud.invoices.corrections import load_catalog_file

    catalog = parse_catalog(_read_text(args.file))

    async def run() -> tuple[LoadReport, list[Redrafted]]:
        async with Database(settings.db_url) as db:
            return await load_catalog_file(
                db=db,
                catalog=catalog,
                now=datetime.now(UTC),
                grace=settings.invoice_grace,
                seller=settings.seller,
                dry_run=args.dry_run,
            )

    report, redrafted = asyncio.run(run())
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.dry_run:
        print("dry run: nothing was written")
        print(report.plan() or "the file declares nothing")
    else:
        print(report.summary() or "the file declares nothing")
    print(_drafts_text(redrafted, dry_run=args.dry_run))


def _drafts_text(redrafted: Sequence[Redrafted], *, dry_run: bool) -> str:
    verb = "would change" if dry_run else "re-drafted"
    if not redrafted:
        return "drafts: none affected"
    lines = [f"drafts {verb}:"]
    for item in redrafted:
        new = item.new_total if item.new_total is not None else f"({item.outcome})"
        lines.append(f"  {item.account_id} {item.period}: {item.old_total or '-'} -> {new}")
    return "\n".join(lines)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise CommandFailed(f"cannot read catalog file {path}: {reason}") from exc


# --- list ----------------------------------------------------------------------------------------


def _list(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.db import Database

    reader, columns = KINDS[args.kind]

    async def run() -> list[dict[str, Any]]:
        async with Database(settings.db_url) as db, db.transaction() as session:
            return await reader(session)

    rows = asyncio.run(run())
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(table(columns, [[_cell(row.get(name)) for name in columns] for row in rows]))


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def _dump(items: Sequence[BaseModel]) -> list[dict[str, Any]]:
    return [item.model_dump(mode="json") for item in items]


async def _every_page(
    fetch: Callable[..., Awaitable[Sequence[Any]]], out: type[BaseModel], session: AsyncSession
) -> list[dict[str, Any]]:
    """Every row of a keyset-paged listing (`fetch(session=, limit=, after=)`), as `out`."""
    found: list[BaseModel] = []
    after: Any = None
    while page := await fetch(session=session, limit=PAGE, after=after):
        found.extend(out.model_validate(row) for row in page)
        after = page[-1].id
    return _dump(found)


async def _accounts(session: AsyncSession) -> list[dict[str, Any]]:
    from cloud.catalog import accounts
    from cloud.catalog.schemas import AccountOut

    return await _every_page(accounts.list_accounts, AccountOut, session)


async def _sites(session: AsyncSession) -> list[dict[str, Any]]:
    from cloud.catalog.listings import list_sites
    from cloud.catalog.schemas import SiteOut

    return await _every_page(list_sites, SiteOut, session)


async def _devices(session: AsyncSession) -> list[dict[str, Any]]:
    from cloud.catalog import devices
    from cloud.catalog.schemas import DeviceOut

    return await _every_page(devices.list_devices, DeviceOut, session)


async def _bindings(session: AsyncSession) -> list[dict[str, Any]]:
    from cloud.catalog.listings import list_bindings
    from cloud.catalog.schemas import BindingOut

    return await _every_page(list_bindings, BindingOut, session)


async def _profiles(session: AsyncSession) -> list[dict[str, Any]]:
    from cloud.catalog import devices
    from cloud.catalog.schemas import ProfileOut

    return _dump(
        [ProfileOut.model_validate(row) for row in await devices.list_profiles(session=session)]
    )


async def _metrics(session: AsyncSession) -> list[dict[str, Any]]:
    from cloud.catalog import metrics
    from cloud.catalog.schemas import MetricOut

    return _dump(
        [MetricOut.model_validate(row) for row in await metrics.list_metrics(session=session)]
    )


async def _plans(session: AsyncSession) -> list[dict[str, Any]]:
    from cloud.catalog import plans

    found = []
    for row in await plans.list_plans(session=session):
        count = len(await plans.version_rows(session=session, plan_id=row.id))
        found.append({"id": row.id, "name": row.name, "currency": row.currency, "versions": count})
    return found


async def _versions(session: AsyncSession) -> list[dict[str, Any]]:
    from cloud.catalog import plans

    found = []
    for plan in await plans.list_plans(session=session):
        for row in await plans.version_rows(session=session, plan_id=plan.id):
            terms = plans.version_terms(row)
            found.append(
                {
                    "plan_id": plan.id,
                    "version": row.version,
                    "effective_from": row.effective_from.isoformat(),
                    "base_fee": str(terms.base_fee),
                    "charges": [charge.metric for charge in terms.charges],
                    "terms": terms.model_dump(mode="json"),
                }
            )
    return found


async def _sources(session: AsyncSession) -> list[dict[str, Any]]:
    from cloud.direct.service import describe_source, list_sources

    views = [
        await describe_source(session=session, source_id=source_id)
        for source_id in await list_sources(session=session)
    ]
    return _dump(views)


async def _gateways(session: AsyncSession) -> list[dict[str, Any]]:
    from cloud.fleet.gateway_reads import list_gateway_twins

    found: list[BaseModel] = []
    after: str | None = None
    while page := await list_gateway_twins(session=session, status=None, limit=PAGE, after=after):
        found.extend(page)
        after = page[-1].gateway_id
    return _dump(found)


KINDS: dict[str, tuple[Reader, tuple[str, ...]]] = {
    "accounts": (_accounts, ("id", "name", "kind", "currency", "time_zone", "plan_id")),
    "sites": (_sites, ("id", "name", "created_at")),
    "profiles": (_profiles, ("id", "name", "start_on", "end_on", "timeout_seconds")),
    "devices": (_devices, ("id", "name", "profile_id", "site_id")),
    "metrics": (
        _metrics,
        ("id", "name", "source", "aggregation", "field", "profiles", "names", "unit"),
    ),
    "plans": (_plans, ("id", "name", "currency", "versions")),
    "versions": (_versions, ("plan_id", "version", "effective_from", "base_fee", "charges")),
    "bindings": (_bindings, ("id", "device_id", "account_id", "valid_from", "valid_to")),
    "sources": (_sources, ("id", "gateway_id", "events_stored", "last_seq")),
    "gateways": (_gateways, ("gateway_id", "status", "last_report_at")),
}
