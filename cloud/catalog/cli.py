"""`tollgate-cloud` catalog commands: apikey, account, profile, device, bind, metric, plan,
unbilled and the `catalog` group (its `load` and `list` come from `cloud.invoices.catalog_cli`).

Each command runs one transaction through the catalog services (the same checks as the API);
expected failures raise `CommandFailed` or a `CollectorError`: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tomllib
import weakref
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from cloud.auth.models import ApiKey
    from cloud.catalog.plan_terms import PlanTerms

from cloud.auth.roles import Role
from cloud.choices import BILLING_FIELDS, DEFAULT_SERIES, AccountKind
from cloud.cli_support import DB_HELP, CommandFailed, Commands
from cloud.domain import Aggregation, DurationUnit, MetricField, MetricSource
from cloud.errors import InvalidSettings, error_locations
from cloud.settings import Settings, parse_duration

T = TypeVar("T")
Run = Callable[[argparse.Namespace, Settings], None]


def add_commands(commands: Commands) -> None:
    """Register this package's subcommands (each sets `run(args, settings)`)."""
    _add_apikey(commands)
    _add_account(commands)
    _add_profile(commands)
    _add_device(commands)
    _add_bind(commands)
    _add_metric(commands)
    _add_plan(commands)
    _add_unbilled(commands)
    _add_catalog(commands)


def _command(group: Commands, name: str, help_text: str, run: Run) -> argparse.ArgumentParser:
    parser = group.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--db", help=DB_HELP)
    parser.set_defaults(run=run)
    return parser


def _group(commands: Commands, name: str, help_text: str) -> Commands:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    return parser.add_subparsers(dest="action", required=True)


def _in_transaction(
    settings: Settings, work: Callable[[AsyncSession], Awaitable[T]], *, write: bool = True
) -> T:
    """`work(session)` in one transaction on the settings' database; its result."""
    from cloud.db import Database

    async def run() -> T:
        async with Database(settings.db_url) as db, db.transaction(write=write) as session:
            return await work(session)

    return asyncio.run(run())


# -- API keys -------------------------------------------------------------------------------------


def _add_apikey(commands: Commands) -> None:
    group = _group(commands, "apikey", "manage API keys (roles, expiry; stored hashed)")
    create = _command(group, "create", "make a key; printed once on stdout", _apikey_create)
    create.add_argument("--name", required=True, help="who or what uses it")
    create.add_argument(
        "--role",
        default=Role.ADMIN.value,
        help="admin (default), billing (catalog, runs, finalize, reads), viewer (reads only)",
    )
    create.add_argument("--expires", help="lifetime, e.g. 90d or 12h (default: no expiry)")
    _command(group, "list", "list keys (prefix, name, role, dates)", _apikey_list)
    revoke = _command(group, "revoke", "revoke the live key(s) with this prefix", _apikey_revoke)
    revoke.add_argument("--prefix", required=True, help="as shown by `apikey list`")


def _apikey_create(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.auth.roles import Role
    from cloud.auth.service import create_api_key

    name = args.name.strip()
    if not 0 < len(name) <= 200:
        raise CommandFailed("--name must be 1 to 200 characters")
    if args.role not in set(Role):
        raise CommandFailed(
            f"--role {args.role!r}: one of admin, billing, viewer "
            "(ingest keys: `tollgate-cloud source key SOURCE`)"
        )
    expires_at = None
    if args.expires:
        try:
            lifetime = parse_duration(args.expires, what="--expires")
        except InvalidSettings as exc:
            raise CommandFailed(str(exc)) from exc
        if lifetime <= timedelta(0):
            raise CommandFailed("--expires must be longer than 0 s")
        expires_at = datetime.now(UTC) + lifetime
    issued = _in_transaction(
        settings,
        lambda s: create_api_key(session=s, name=name, scope=args.role, expires_at=expires_at),
    )
    print(issued.secret)
    until = f", expires {_when(expires_at)}" if expires_at else ""
    print(
        f"API key {issued.prefix}… ({issued.name}, role {issued.scope}{until}): it is shown "
        "only now, store it safely",
        file=sys.stderr,
    )


def _apikey_list(args: argparse.Namespace, settings: Settings) -> None:
    from sqlalchemy import select

    from cloud.auth.models import ApiKey

    async def work(session: AsyncSession) -> list[ApiKey]:
        return list(await session.scalars(select(ApiKey).order_by(ApiKey.id)))

    rows = _in_transaction(settings, work, write=False)
    _print_table(
        ("prefix", "name", "role", "created", "expires", "revoked"),
        [
            (
                row.prefix,
                row.name,
                row.scope,
                _when(row.created_at),
                _when(row.expires_at),
                _when(row.revoked_at),
            )
            for row in rows
        ],
    )


def _apikey_revoke(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.auth.service import revoke_api_key

    prefix = args.prefix
    count = _in_transaction(settings, lambda s: revoke_api_key(session=s, prefix=prefix))
    if count == 0:
        raise CommandFailed(f"no live API key with prefix {prefix!r}")
    print(f"revoked {count} API key(s) with prefix {prefix}")


# -- accounts -------------------------------------------------------------------------------------


def _add_account(commands: Commands) -> None:
    group = _group(commands, "account", "manage billing accounts")
    add = _command(group, "add", "create an account", _account_add)
    add.add_argument("--id", required=True, dest="account_id")
    add.add_argument("--name", required=True)
    add.add_argument("--kind", required=True, choices=[kind.value for kind in AccountKind])
    add.add_argument("--currency", required=True, help="ISO 4217, e.g. EUR")
    add.add_argument("--time-zone", required=True, help="IANA name, e.g. Europe/Berlin")
    add.add_argument("--plan", help="a plan in the account's currency")
    add.add_argument("--series", default=DEFAULT_SERIES, help="invoice number series")
    _billing_arguments(add)
    update = _command(
        group, "update", "rename an account, change its plan or its billing fields", _account_update
    )
    update.add_argument("--id", required=True, dest="account_id")
    update.add_argument("--name")
    update.add_argument("--plan", help='plan id, or "none" for no plan')
    _billing_arguments(update)
    update.add_argument(
        "--clear",
        action="append",
        default=[],
        choices=BILLING_FIELDS,
        help="clear this billing field (repeatable)",
    )
    set_plan = _command(group, "set-plan", "put an account on a plan", _account_set_plan)
    set_plan.add_argument("--id", required=True, dest="account_id")
    set_plan.add_argument("--plan", required=True, help='plan id, or "none" for no plan')
    _command(group, "list", "list accounts", _account_list)


def _account_add(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.catalog import accounts

    billing = _billing_fields(args)

    async def work(session: AsyncSession) -> None:
        await accounts.create_account(
            session=session,
            account_id=args.account_id,
            name=args.name,
            kind=args.kind,
            currency=args.currency,
            time_zone=args.time_zone,
            plan_id=args.plan,
            invoice_series=args.series,
        )
        if billing:  # the same transaction: a bad field creates no account
            await accounts.set_billing(session=session, account_id=args.account_id, fields=billing)

    _in_transaction(settings, work)
    print(f"account {args.account_id} added")


def _account_update(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.catalog import accounts

    billing = _billing_fields(args) | dict.fromkeys(args.clear)
    both = sorted(set(_billing_fields(args)) & set(args.clear))
    if both:
        raise CommandFailed(f"both set and cleared: {', '.join(both)}")
    if args.name is None and args.plan is None and not billing:
        raise CommandFailed("nothing to update: pass --name, --plan or a billing option")

    async def work(session: AsyncSession) -> None:
        await accounts.get_account(session=session, account_id=args.account_id)
        if args.name is not None:
            await accounts.rename_account(
                session=session, account_id=args.account_id, name=args.name
            )
        if args.plan is not None:
            plan_id = None if args.plan == "none" else args.plan
            await accounts.set_account_plan(
                session=session, account_id=args.account_id, plan_id=plan_id
            )
        if billing:
            await accounts.set_billing(session=session, account_id=args.account_id, fields=billing)

    _in_transaction(settings, work)
    print(f"account {args.account_id} updated")


def _billing_arguments(parser: argparse.ArgumentParser) -> None:
    """The buyer's fields on the account's invoices (as the API's account fields)."""
    billing = parser.add_argument_group("billing (the buyer on its invoices)")
    billing.add_argument("--billing-name", help="name on invoices (default: --name)")
    billing.add_argument(
        "--street",
        action="append",
        help="address line, repeatable (1 to 4); with --postcode, --city and --address-country",
    )
    billing.add_argument("--postcode")
    billing.add_argument("--city")
    billing.add_argument("--address-country", help="ISO 3166 alpha-2, e.g. DE")
    billing.add_argument("--country", help="tax country, ISO 3166 alpha-2 (none: no VAT)")
    billing.add_argument("--vat-id", help="VAT id with its country prefix, e.g. DE136695976")
    billing.add_argument("--customer-number")
    billing.add_argument("--payment-terms-days", type=int, help="days to the due date (0-365)")
    billing.add_argument("--locale", help="Babel locale of its documents, e.g. de_DE")


_ADDRESS_OPTIONS = {
    "street": "--street",
    "postcode": "--postcode",
    "city": "--city",
    "address_country": "--address-country",
}


def _billing_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The billing fields the options set, checked by the API's own model (`AccountBilling`)."""
    from pydantic import ValidationError

    from cloud.catalog import accounts
    from cloud.catalog.schemas import AccountBilling

    fields = {
        name: getattr(args, name)
        for name in accounts.BILLING_FIELDS
        if name != "address" and getattr(args, name) is not None
    }
    given = [name for name in _ADDRESS_OPTIONS if getattr(args, name) is not None]
    if given:
        missing = [option for name, option in _ADDRESS_OPTIONS.items() if name not in given]
        if missing:
            raise CommandFailed(f"an address needs {', '.join(missing)} too")
        fields["address"] = {
            "lines": args.street,
            "postcode": args.postcode,
            "city": args.city,
            "country": args.address_country,
        }
    try:
        return AccountBilling.model_validate(fields).billing_fields()
    except ValidationError as exc:
        first = error_locations(exc.errors())[0]
        raise CommandFailed(f"{_billing_option(first['loc'])}: {first['msg']}") from exc


def _billing_option(loc: Sequence[Any]) -> str:
    """The option a billing field's error location came from: ("address", "lines", 0) ->
    --street, ("vat_id",) -> --vat-id."""
    if len(loc) > 1 and loc[0] == "address":
        part = {"lines": "street", "country": "address_country"}.get(str(loc[1]), str(loc[1]))
        return "--" + part.replace("_", "-")
    return "--" + str(loc[0]).replace("_", "-") if loc else "billing"


def _account_set_plan(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.catalog import accounts

    plan_id = None if args.plan == "none" else args.plan
    _in_transaction(
        settings,
        lambda s: accounts.set_account_plan(session=s, account_id=args.account_id, plan_id=plan_id),
    )
    print(f"account {args.account_id} is on plan {plan_id or '(none)'}")


def _account_list(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.catalog import accounts

    async def work(session: AsyncSession) -> list[Any]:
        found: list[Any] = []
        after: str | None = None
        while page := await accounts.list_accounts(session=session, limit=1000, after=after):
            found.extend(page)
            after = page[-1].id
        return found

    rows = _in_transaction(settings, work, write=False)
    _print_table(
        ("id", "name", "kind", "currency", "time_zone", "plan", "series"),
        [
            (r.id, r.name, r.kind, r.currency, r.time_zone, r.plan_id or "", r.invoice_series)
            for r in rows
        ],
    )


# -- profiles and devices -------------------------------------------------------------------------


def _add_profile(commands: Commands) -> None:
    group = _group(commands, "profile", "manage device profiles (session rules)")
    add = _command(group, "add", "create a device profile", _profile_add)
    add.add_argument("--id", required=True, dest="profile_id")
    add.add_argument("--name", required=True)
    add.add_argument("--start-on", default="", help="event names that start a session: a,b")
    add.add_argument("--end-on", default="", help="event names that end a session: c,d")
    add.add_argument("--timeout", help='close a session after this long idle: "90s", "30m", "4h"')
    add.add_argument("--expected-interval", help='silent after this long unheard: "15m", "1h"')


def _profile_add(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.catalog import devices

    timeout = None if args.timeout is None else parse_timeout(args.timeout)
    interval = None if args.expected_interval is None else parse_timeout(args.expected_interval)
    _in_transaction(
        settings,
        lambda s: devices.create_profile(
            session=s,
            profile_id=args.profile_id,
            name=args.name,
            start_on=_names(args.start_on),
            end_on=_names(args.end_on),
            timeout_seconds=timeout,
            expected_interval_seconds=interval,
        ),
    )
    print(f"profile {args.profile_id} added")


# The `device` group of each parser built, so a package above the catalog (fleet's `device
# show`) can add to it without the catalog importing that package (see `device_commands`).
_DEVICE_GROUPS: weakref.WeakKeyDictionary[Commands, Commands] = weakref.WeakKeyDictionary()


def device_commands(commands: Commands) -> Commands:
    """The subcommands of `tollgate-cloud device` added to `commands` by `add_commands`."""
    return _DEVICE_GROUPS[commands]


def _add_device(commands: Commands) -> None:
    group = _group(commands, "device", "manage billable devices")
    _DEVICE_GROUPS[commands] = group
    add = _command(group, "add", "register a device (its id is its events' device_id)", _device_add)
    add.add_argument("--id", required=True, dest="device_id")
    add.add_argument("--name", required=True)
    add.add_argument("--profile", required=True)
    add.add_argument("--site")


def _device_add(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.catalog import devices

    _in_transaction(
        settings,
        lambda s: devices.create_device(
            session=s,
            device_id=args.device_id,
            name=args.name,
            profile_id=args.profile,
            site_id=args.site,
        ),
    )
    print(f"device {args.device_id} added")


def _add_bind(commands: Commands) -> None:
    bind = _command(commands, "bind", "bill a device to an account from a time on", _bind)
    bind.add_argument("--device", required=True)
    bind.add_argument("--account", required=True)
    bind.add_argument("--from", required=True, dest="valid_from", help="ISO 8601 with offset")
    bind.add_argument("--to", dest="valid_to", help="ISO 8601 with offset (default: open-ended)")
    bind.add_argument("--move", action="store_true", help="end the device's open binding at --from")


def _bind(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.catalog import bindings

    valid_from = parse_time(args.valid_from, option="--from")
    valid_to = None if args.valid_to is None else parse_time(args.valid_to, option="--to")
    row = _in_transaction(
        settings,
        lambda s: bindings.create_binding(
            session=s,
            device_id=args.device,
            account_id=args.account,
            valid_from=valid_from,
            valid_to=valid_to,
            move=args.move,
        ),
    )
    until = "on" if row.valid_to is None else f"until {row.valid_to.isoformat()}"
    print(
        f"binding {row.id}: device {row.device_id} billed to {row.account_id} "
        f"from {row.valid_from.isoformat()} {until}"
    )


# -- metrics and plans ----------------------------------------------------------------------------


def _add_metric(commands: Commands) -> None:
    group = _group(commands, "metric", "manage billable metrics")
    add = _command(group, "add", "create a metric", _metric_add)
    add.add_argument("--id", required=True, dest="metric_id")
    add.add_argument("--name", required=True)
    add.add_argument("--source", required=True, choices=[m.value for m in MetricSource])
    add.add_argument("--aggregation", required=True, choices=[m.value for m in Aggregation])
    add.add_argument("--field", choices=[m.value for m in MetricField])
    add.add_argument("--profiles", default="", help="only devices of these profiles: a,b")
    add.add_argument("--names", default="", help="only these event names: a,b")
    add.add_argument("--unit", help="only events in this unit")
    add.add_argument(
        "--duration-unit", default=DurationUnit.HOUR.value, choices=[m.value for m in DurationUnit]
    )


def _metric_add(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.catalog import metrics

    _in_transaction(
        settings,
        lambda s: metrics.create_metric(
            session=s,
            metric_id=args.metric_id,
            name=args.name,
            source=args.source,
            aggregation=args.aggregation,
            field=args.field,
            profiles=_names(args.profiles),
            names=_names(args.names),
            unit=args.unit,
            duration_unit=args.duration_unit,
        ),
    )
    print(f"metric {args.metric_id} added")


def _add_plan(commands: Commands) -> None:
    group = _group(commands, "plan", "manage price plans and their versions")
    add = _command(group, "add", "create a plan (without versions)", _plan_add)
    add.add_argument("--id", required=True, dest="plan_id")
    add.add_argument("--name", required=True)
    add.add_argument("--currency", required=True)
    version = _command(group, "version", "append a version of a plan's terms", _plan_version)
    version.add_argument("--plan", required=True)
    version.add_argument(
        "--terms", required=True, type=Path, help="a PlanTerms document, JSON or TOML"
    )


def _plan_add(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.catalog import plans

    _in_transaction(
        settings,
        lambda s: plans.create_plan(
            session=s, plan_id=args.plan_id, name=args.name, currency=args.currency
        ),
    )
    print(f"plan {args.plan_id} added")


def _plan_version(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.catalog import plans

    terms = read_terms(args.terms)
    row = _in_transaction(
        settings, lambda s: plans.create_plan_version(session=s, plan_id=args.plan, terms=terms)
    )
    print(
        f"plan {row.plan_id} version {row.version} effective from {row.effective_from.isoformat()}"
    )


def read_terms(path: Path) -> PlanTerms:
    """A `PlanTerms` document from a JSON or TOML (`.toml`) file; `CommandFailed` if unusable."""
    from pydantic import ValidationError

    from cloud.catalog.plan_terms import PlanTerms

    text = _read_text(path, what="terms file")
    try:
        document = tomllib.loads(text) if path.suffix == ".toml" else orjson.loads(text)
    except (tomllib.TOMLDecodeError, orjson.JSONDecodeError) as exc:
        raise CommandFailed(
            f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}"
        ) from exc
    try:
        return PlanTerms.model_validate(document)
    except ValidationError as exc:
        first = error_locations(exc.errors())[0]
        where = ".".join(map(str, first["loc"])) or "document"
        raise CommandFailed(f"{path}: {where}: {first['msg']}") from exc


# -- unbilled usage and catalog files -------------------------------------------------------------


def _add_unbilled(commands: Commands) -> None:
    unbilled = _command(commands, "unbilled", "list usage no binding covers, per device", _unbilled)
    unbilled.add_argument("--from", dest="start", help="ISO 8601 with offset (inclusive)")
    unbilled.add_argument("--to", dest="end", help="ISO 8601 with offset (exclusive)")
    unbilled.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _unbilled(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.catalog.unbilled import unbilled_usage

    start = None if args.start is None else parse_time(args.start, option="--from")
    end = None if args.end is None else parse_time(args.end, option="--to")
    found = _in_transaction(
        settings, lambda s: unbilled_usage(session=s, start=start, end=end), write=False
    )
    if args.json:
        rows = [
            {
                "device_id": item.device_id,
                "known": item.known,
                "event_count": item.event_count,
                "first_at": item.first_at.isoformat(),
                "last_at": item.last_at.isoformat(),
                "names": list(item.names),
            }
            for item in found
        ]
        print(json.dumps(rows, indent=2))
        return
    _print_table(
        ("device_id", "in catalog", "events", "first", "last", "names"),
        [
            (
                item.device_id,
                "yes" if item.known else "no",
                str(item.event_count),
                _when(item.first_at),
                _when(item.last_at),
                ",".join(item.names),
            )
            for item in found
        ],
    )


# The `catalog` group of each parser built: `catalog load` and `catalog list` need invoices (the
# correction rules, the drafts a file changes) and sources, so they are added from above the
# catalog (`cloud.invoices.catalog_cli`), as fleet adds `device show`.
_CATALOG_GROUPS: weakref.WeakKeyDictionary[Commands, Commands] = weakref.WeakKeyDictionary()


def catalog_commands(commands: Commands) -> Commands:
    """The subcommands of `tollgate-cloud catalog` added to `commands` by `add_commands`."""
    return _CATALOG_GROUPS[commands]


def _add_catalog(commands: Commands) -> None:
    _CATALOG_GROUPS[commands] = _group(
        commands, "catalog", "declare the catalog from a file, list its objects"
    )


# -- parsing and printing -------------------------------------------------------------------------

_TIMEOUT_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_timeout(text: str) -> int:
    """`90`, `90s`, `30m`, `4h`, `1d` as seconds; `CommandFailed` otherwise."""
    match = re.fullmatch(r"(\d+)\s*([smhd]?)", text.strip())
    if match is None or int(match[1]) == 0:
        raise CommandFailed(f"--timeout {text!r}: use a positive number and s, m, h or d (30m)")
    return int(match[1]) * _TIMEOUT_UNITS[match[2] or "s"]


def parse_time(text: str, *, option: str) -> datetime:
    """An ISO 8601 time; a naive one is left for the service to refuse with its message."""
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise CommandFailed(
            f"{option} {text!r}: not an ISO 8601 time (e.g. 2026-11-01T00:00:00+01:00)"
        ) from exc


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _read_text(path: Path, *, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise CommandFailed(f"cannot read {what} {path}: {reason}") from exc


def _when(value: datetime | None) -> str:
    return "" if value is None else value.isoformat(timespec="seconds")


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]
    for line in (headers, *rows):
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
