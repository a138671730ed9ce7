"""Webhook delivery rate: messages/s from the outbox to a local receiver, SQLite and PostgreSQL.

The receiver is a Starlette app under uvicorn in its own process (so the collector's event loop
is not also the receiver's) that verifies every signature with `standardwebhooks`; the bench
emits N messages for one endpoint (their emit rate printed too), then times `deliver_due` with
the stated policy until every delivery has succeeded, and checks the receiver verified each.
"""

import argparse
import asyncio
import multiprocessing
import time
from datetime import UTC, datetime
from functools import partial

import httpx
import uvicorn
from sqlalchemy.orm import Session
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.collector_ingest import fresh_database
from cloud.db import Database
from cloud.schema import migrate
from cloud.webhooks.delivery import deliver_due
from cloud.webhooks.endpoints import create_endpoint
from cloud.webhooks.outbox import emit
from cloud.webhooks.types import EventType
from tests.support.waiting import free_port


def serve_receiver(port: int, secret: str) -> None:
    """The receiver process: verify, count, answer 204; GET /count says how many."""
    counts = {"verified": 0, "refused": 0}
    hook = Webhook(secret)

    async def receive(request: Request) -> Response:
        try:
            hook.verify(await request.body(), dict(request.headers), json_parse=False)
        except WebhookVerificationError:
            counts["refused"] += 1
            return Response(status_code=400)
        counts["verified"] += 1
        return Response(status_code=204)

    async def count(request: Request) -> Response:
        return JSONResponse(counts)

    app = Starlette(routes=[Route("/hooks", receive, methods=["POST"]), Route("/count", count)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def wait_listening(base: str) -> None:
    """Poll /count until the receiver answers."""
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                await client.get(f"{base}/count")
                return
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    raise RuntimeError("the receiver did not start")


async def measure(backend: str, messages: int) -> None:
    """Emit `messages`, deliver them all, print both rates."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with fresh_database(backend) as url, Database(url) as db:
        await migrate(db.engine)
        async with db.transaction(write=True) as session:
            made = await create_endpoint(
                session=session, url=f"{base}/hooks", event_types=list(EventType)
            )
        receiver = multiprocessing.get_context("spawn").Process(
            target=serve_receiver, args=(port, made.secret), daemon=True
        )
        receiver.start()
        try:
            await wait_listening(base)
            emitted = await emit_all(db, messages)
            delivered, seconds = await deliver_all(db, messages)
            async with httpx.AsyncClient() as client:
                counts = (await client.get(f"{base}/count")).json()
        finally:
            receiver.terminate()
            receiver.join()
    ok = counts == {"verified": messages, "refused": 0} and delivered == messages
    print(
        f"webhooks {backend:<10}: emit {messages:,} in {emitted:5.2f} s = "
        f"{messages / emitted:8,.0f} msg/s; deliver {delivered:,} in {seconds:5.2f} s = "
        f"{delivered / seconds:6,.0f} msg/s to a local receiver "
        f"({'every signature verified' if ok else f'MISMATCH {counts}'})"
    )


async def emit_all(db: Database, messages: int) -> float:
    """Emit in transactions of 100 (as callers do: a few per batch or sweep); the seconds."""

    def emit_some(session: Session, count: int) -> None:
        for n in range(count):
            emit(session, "incident.opened", {"incident_id": n, "kind": "seq_gap"})

    started = time.perf_counter()
    for first in range(0, messages, 100):
        await db.run_write(partial(emit_some, count=min(100, messages - first)))
    return time.perf_counter() - started


async def deliver_all(db: Database, messages: int) -> tuple[int, float]:
    """deliver_due until everything succeeded; (delivered, seconds)."""
    delivered = 0
    started = time.perf_counter()
    while delivered < messages:
        report = await deliver_due(db, datetime.now(UTC))
        if report.sent == 0:
            break
        delivered += report.succeeded
    return delivered, time.perf_counter() - started


async def main(args: argparse.Namespace) -> None:
    """Each backend in turn."""
    for backend in ("sqlite", "postgresql"):
        await measure(backend, args.messages)


def cli() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5_000)
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
