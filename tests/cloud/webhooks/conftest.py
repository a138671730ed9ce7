"""Webhook fixtures: a migrated database on both backends, and helpers that drive it."""

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from cloud.db import Database
from cloud.schema import migrate
from cloud.webhooks.delivery import DeliveryReport, deliver_due
from cloud.webhooks.endpoints import create_endpoint
from cloud.webhooks.models import DeliveryState, WebhookDelivery, WebhookEndpoint
from cloud.webhooks.outbox import emit
from cloud.webhooks.policy import DEFAULT_POLICY, DeliveryPolicy
from cloud.webhooks.types import EventType

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
# The stated policy, without the short real sleeps between quick tries (tests never sleep).
FAST = replace(DEFAULT_POLICY, quick_wait_seconds=0.0, timeout_seconds=5.0)


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    """An open, migrated database (SQLite and PostgreSQL)."""
    async with Database(db_url) as db:
        await migrate(db.engine)
        yield db


async def add_endpoint(db: Database, url: str, *kinds: EventType) -> tuple[int, str]:
    """Register an endpoint for `kinds` (default: every type); its id and secret."""
    async with db.transaction(write=True) as session:
        made = await create_endpoint(
            session=session, url=url, event_types=list(kinds or EventType), now=T0
        )
    return made.endpoint.id, made.secret


async def emit_many(db: Database, count: int, *, at: datetime = T0) -> list[str]:
    """Emit `count` incident.opened events, one transaction each; their message ids."""
    ids = []
    for n in range(count):
        data: dict[str, Any] = {"incident_id": n + 1, "kind": "silent_device", "device": f"d-{n}"}
        message = await db.run_write(lambda s, d=data: emit(s, "incident.opened", d, at=at))
        assert message is not None
        ids.append(message)
    return ids


async def deliveries(db: Database, endpoint_id: int | None = None) -> list[WebhookDelivery]:
    """Every delivery (of one endpoint), in id order."""
    query = select(WebhookDelivery).order_by(WebhookDelivery.id)
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    async with db.transaction() as session:
        return list(await session.scalars(query))


async def endpoint(db: Database, endpoint_id: int) -> WebhookEndpoint:
    """The endpoint row as stored now."""
    async with db.transaction() as session:
        row = await session.get(WebhookEndpoint, endpoint_id)
    assert row is not None
    return row


async def next_due(db: Database) -> datetime | None:
    """When the earliest pending delivery is due (None when none is pending)."""
    async with db.transaction() as session:
        return await session.scalar(
            select(WebhookDelivery.next_attempt_at)
            .where(WebhookDelivery.state == DeliveryState.PENDING.value)
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(1)
        )


async def run_until_settled(
    db: Database, policy: DeliveryPolicy = FAST, *, until: int = 40
) -> list[DeliveryReport]:
    """Drive deliver_due at each next due time (the clock jumps, nothing sleeps) until no
    delivery of an enabled endpoint is left to try; the report of every run that sent."""
    reports = []
    for _ in range(until):
        due = await next_due(db)
        if due is None:
            break
        report = await deliver_due(db, due, policy=policy)
        if report.sent == 0:
            break  # what is pending waits for a disabled endpoint
        reports.append(report)
    return reports
