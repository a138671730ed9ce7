"""`tollgate-cloud sink` and `tollgate-cloud bus status`; `serve --bus` is `cloud.cli`'s serve.

`sink --bus URL --db URL [--metrics-port N] [--name NAME]` consumes every partition of the log
and stores what it reads (cloud.bus.sink); SIGTERM or SIGINT finishes the messages in hand and
exits 0. Several sinks may run at once, on one machine or many.
`bus status --bus URL` prints the stream, its replicas, partitions and each consumer's lag.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from cloud.bus.connection import Bus, BusConfig

from cloud.cli_support import DB_HELP, CommandFailed, Commands
from cloud.settings import Settings

BUS_HELP = "the ingest log: nats://HOST:PORT[,nats://HOST:PORT...] (default $TOLLGATE_BUS)"


def add_bus_option(parser: argparse.ArgumentParser) -> None:
    """`--bus URL` on a command (serve, sink, bus status)."""
    parser.add_argument("--bus", help=BUS_HELP)


def add_commands(commands: Commands) -> None:
    """Register `sink` and `bus status`."""
    sink = commands.add_parser("sink", help="store the ingest log's batches (with --bus)")
    add_bus_option(sink)
    sink.add_argument("--db", help=DB_HELP)
    sink.add_argument("--metrics-port", type=int, help="serve /metrics on 127.0.0.1:PORT")
    sink.add_argument("--name", help="this sink's name in logs (default host:pid)")
    sink.set_defaults(run=_sink)

    bus = commands.add_parser("bus", help="inspect the ingest log")
    actions = bus.add_subparsers(dest="action", required=True)
    status = actions.add_parser("status", help="stream, replicas, partitions, consumer lag (JSON)")
    add_bus_option(status)
    status.set_defaults(run=_status, db=None, no_database=True)


def require_bus(settings: Settings) -> BusConfig:
    """The bus of the settings; `CommandFailed` without one."""
    from cloud.bus.connection import BusConfig

    if settings.bus_url is None:
        raise CommandFailed("no ingest log: pass --bus nats://HOST:PORT or set $TOLLGATE_BUS")
    return BusConfig.of(settings)


def _sink(args: argparse.Namespace, settings: Settings) -> int:
    from cloud.metrics import serve_metrics

    config = require_bus(settings)
    name = args.name or f"{socket.gethostname()}:{os.getpid()}"
    if args.metrics_port is not None:
        serve_metrics(args.metrics_port)
    asyncio.run(run_sink(settings, config, name=name))
    return 0


async def run_sink(settings: Settings, config: BusConfig, *, name: str) -> None:
    """Run one sink until SIGTERM or SIGINT."""
    from nats.errors import Error as NatsError

    from cloud.bus.connection import open_bus
    from cloud.bus.direct import store_direct_message
    from cloud.bus.sink import Sink
    from cloud.db import Database

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()  # handlers first: a SIGTERM while connecting is a clean stop too
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        async with Database(settings.db_url) as db, open_bus(config) as bus:
            sink = Sink(bus=bus, db=db, name=name, direct=store_direct_message, stopping=stopping)
            print(f"sink {name}: consuming {config.partitions} partitions", file=sys.stderr)
            await sink.run()
            print(f"sink {name}: stopped after {sink.handled} messages", file=sys.stderr)
    except (NatsError, OSError) as exc:
        raise CommandFailed(f"ingest log {config.servers[0]}: {exc}") from exc


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from nats.errors import Error as NatsError
    from nats.js.errors import BucketNotFoundError, NotFoundError

    from cloud.bus.connection import open_bus

    config = require_bus(settings)

    async def run() -> dict[str, Any]:
        async with open_bus(config, create=False) as bus:
            return await bus_status(bus)

    try:
        status = asyncio.run(run())
    except (NotFoundError, BucketNotFoundError) as exc:
        raise CommandFailed(
            f"no stream {config.stream!r} yet: start serve --bus or a sink"
        ) from exc
    except (NatsError, OSError) as exc:
        raise CommandFailed(f"ingest log {config.servers[0]}: {exc}") from exc
    sys.stdout.buffer.write(orjson.dumps(status, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


async def bus_status(bus: Bus) -> dict[str, Any]:
    """The stream and its consumers as a JSON-ready dict."""
    from nats.js.errors import APIError, NotFoundError

    from cloud.bus.log import durable

    info = await bus.js.stream_info(bus.config.stream)
    consumers: list[dict[str, Any]] = []
    for partition in range(bus.config.partitions):
        try:
            consumer = await bus.js.consumer_info(bus.config.stream, durable(partition))
        except NotFoundError:
            consumers.append({"partition": partition, "consumer": None, "lag": None})
            continue
        except APIError as exc:  # pragma: no cover - the server failed between two calls
            raise CommandFailed(f"consumer {durable(partition)}: {exc}") from exc
        pending, unacked = consumer.num_pending or 0, consumer.num_ack_pending or 0
        consumers.append(
            {
                "partition": partition,
                "consumer": durable(partition),
                "pending": pending,
                "unacked": unacked,
                "redelivered": consumer.num_redelivered or 0,
                "lag": pending + unacked,
            }
        )
    cluster = info.cluster
    return {
        "stream": bus.config.stream,
        "replicas": info.config.num_replicas,
        "partitions": bus.config.partitions,
        "messages": info.state.messages,
        "bytes": info.state.bytes,
        "leader": None if cluster is None else cluster.leader,
        "lag": sum(c["lag"] or 0 for c in consumers),
        "consumers": consumers,
    }
