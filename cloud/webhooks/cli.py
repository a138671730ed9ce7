"""`tollgate-cloud webhook add | list | disable | enable | deliveries | replay`."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from cloud.webhooks.deliveries import DeliveryEntry
    from cloud.webhooks.models import WebhookEndpoint

from cloud.choices import DeliveryState
from cloud.cli_support import DB_HELP, CommandFailed, Commands
from cloud.settings import Settings
from cloud.webhooks.types import EventType

T = TypeVar("T")
TYPES = ", ".join(kind.value for kind in EventType)


def add_commands(commands: Commands) -> None:
    """Register `webhook ...` (each sets `run(args, settings)`)."""
    webhook = commands.add_parser("webhook", help="outgoing webhooks: endpoints and deliveries")
    actions = webhook.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="register a receiver URL (prints its secret once)")
    add.add_argument("url", help="http:// or https:// URL receiving the POSTs")
    add.add_argument("--events", required=True, help=f"comma-separated event types: {TYPES}")
    add.add_argument("--description", default="", help="what the receiver is")
    add.set_defaults(run=_add)
    actions.add_parser("list", help="every endpoint and its state").set_defaults(run=_list)
    disable = actions.add_parser("disable", help="stop delivering to an endpoint")
    disable.add_argument("endpoint_id", type=int)
    disable.set_defaults(run=_disable)
    enable = actions.add_parser("enable", help="deliver to an endpoint again")
    enable.add_argument("endpoint_id", type=int)
    enable.set_defaults(run=_enable)
    log = actions.add_parser("deliveries", help="the delivery log, newest first")
    log.add_argument("--state", choices=[state.value for state in DeliveryState])
    log.add_argument("--endpoint", type=int, help="only this endpoint's deliveries")
    log.add_argument("--limit", type=int, default=50, help="at most this many (1..1000)")
    log.set_defaults(run=_deliveries)
    replay = actions.add_parser("replay", help="send a failed or succeeded delivery again")
    replay.add_argument("delivery_id", type=int)
    replay.set_defaults(run=_replay)
    for action in (add, disable, enable, log, replay, actions.choices["list"]):
        action.add_argument("--db", help=DB_HELP)


def _in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from cloud.db import Database

    async def run() -> T:
        async with Database(settings.db_url) as db, db.transaction(write=True) as session:
            return await work(session)

    return asyncio.run(run())


def _add(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.webhooks.endpoints import create_endpoint
    from cloud.webhooks.models import MAX_DESCRIPTION_LENGTH
    from cloud.webhooks.schemas import check_receiver_url

    kinds = parse_event_types(args.events)
    try:
        url = check_receiver_url(args.url)
    except ValueError as exc:
        raise CommandFailed(f"{args.url!r}: {exc}") from exc
    if len(url) > 2048 or len(args.description) > MAX_DESCRIPTION_LENGTH:
        raise CommandFailed("the URL is limited to 2048 characters, the description to 500")
    made = _in_transaction(
        settings,
        lambda session: create_endpoint(
            session=session, url=url, event_types=kinds, description=args.description
        ),
    )
    print(f"endpoint {made.endpoint.id}: {url} ({', '.join(made.endpoint.event_types)})")
    print(f"secret {made.secret}")
    print("shown only now: the receiver verifies signatures with it (Standard Webhooks)")


def parse_event_types(text: str) -> list[EventType]:
    """`a,b` as event types; CommandFailed naming an unknown one."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise CommandFailed(f"--events needs at least one of: {TYPES}")
    unknown = [name for name in names if name not in EventType._value2member_map_]
    if unknown:
        raise CommandFailed(f"unknown event type {unknown[0]!r}; known: {TYPES}")
    return [EventType(name) for name in names]


def _list(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.webhooks.endpoints import list_endpoints

    rows = _in_transaction(settings, lambda session: list_endpoints(session=session))
    if not rows:
        print("no webhook endpoints")
    for row in rows:
        print(_endpoint_line(row))


def _endpoint_line(row: WebhookEndpoint) -> str:
    state = "enabled" if row.enabled else f"DISABLED ({row.disabled_reason})"
    failing = f", {row.consecutive_failures} failed in a row" if row.consecutive_failures else ""
    return f"{row.id}\t{row.url}\t{','.join(row.event_types)}\t{state}{failing}"


def _disable(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.webhooks.endpoints import disable_endpoint

    row = _in_transaction(
        settings,
        lambda session: disable_endpoint(
            session=session, endpoint_id=args.endpoint_id, reason="disabled from the CLI"
        ),
    )
    print(f"endpoint {row.id} disabled: its deliveries wait until it is enabled")


def _enable(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.webhooks.endpoints import enable_endpoint

    row = _in_transaction(
        settings, lambda session: enable_endpoint(session=session, endpoint_id=args.endpoint_id)
    )
    print(f"endpoint {row.id} enabled: its waiting deliveries are due now")


def _deliveries(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.webhooks.deliveries import list_deliveries

    if not 1 <= args.limit <= 1000:
        raise CommandFailed("--limit must be 1..1000")
    state = DeliveryState(args.state) if args.state else None
    entries = _in_transaction(
        settings,
        lambda session: list_deliveries(
            session=session, endpoint_id=args.endpoint, state=state, limit=args.limit
        ),
    )
    if not entries:
        print("no deliveries")
    for entry in entries:
        print(_delivery_line(entry))


def _delivery_line(entry: DeliveryEntry) -> str:
    row = entry.delivery
    last = row.last_error or (f"HTTP {row.last_status}" if row.last_status else "not tried yet")
    return (
        f"{row.id}\t{row.message_id}\t{entry.event_type}\tendpoint {row.endpoint_id}\t"
        f"{row.state}\t{row.attempts} attempt(s)\t{last}"
    )


def _replay(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.webhooks.deliveries import replay_delivery

    row = _in_transaction(
        settings, lambda session: replay_delivery(session=session, delivery_id=args.delivery_id)
    )
    print(f"delivery {row.id} ({row.message_id}) pending again: the next run sends it")
