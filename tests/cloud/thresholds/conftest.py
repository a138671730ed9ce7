"""Threshold fixtures: the invoice tests' catalog (plans home, biz, shop) on both backends, a
webhook endpoint to make `emit` write messages, and readers of what was stored."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from cloud.auth.service import create_api_key
from cloud.db import Database
from cloud.thresholds.models import Measure, ThresholdFiring
from cloud.thresholds.service import create_threshold
from cloud.webhooks.endpoints import create_endpoint
from cloud.webhooks.models import WebhookMessage
from cloud.webhooks.types import EventType
from tests.cloud.invoices.test_runs import Billing, billing

__all__ = ["billing"]  # the fixture of tests/cloud/invoices/test_runs.py

# Nothing listens here: the delivery job is not run by these tests (W's tests deliver).
HOOK_URL = "http://127.0.0.1:9/hook"


async def subscribe(db: Database, *kinds: EventType) -> int:
    """An enabled endpoint for `kinds`, so that emit writes their messages; its id."""
    async with db.transaction(write=True) as session:
        made = await create_endpoint(
            session=session, url=HOOK_URL, event_types=list(kinds), now=datetime.now(UTC)
        )
    return made.endpoint.id


async def payloads(db: Database, kind: EventType) -> list[dict[str, Any]]:
    """The data of every stored message of `kind`, oldest first."""
    query = (
        select(WebhookMessage.payload)
        .where(WebhookMessage.event_type == kind.value)
        .order_by(WebhookMessage.created_at, WebhookMessage.id)
    )
    async with db.transaction() as session:
        return list(await session.scalars(query))


async def add_threshold(
    billing: Billing, account_id: str, metric_id: str | None, measure: Measure, value: str
) -> int:
    """A threshold through the service; its id."""
    async with billing.db.transaction(write=True) as session:
        row = await create_threshold(
            session=session,
            account_id=account_id,
            metric_id=metric_id,
            measure=measure,
            value=Decimal(value),
            now=datetime.now(UTC),
        )
        return row.id


async def firings(db: Database) -> list[tuple[int, str, Decimal]]:
    """(threshold id, period, observed) of every firing."""
    query = select(
        ThresholdFiring.threshold_id, ThresholdFiring.period, ThresholdFiring.observed
    ).order_by(ThresholdFiring.threshold_id, ThresholdFiring.period_start)
    async with db.transaction() as session:
        return [tuple(row) for row in await session.execute(query)]  # type: ignore[misc]


async def key_headers(db: Database, scope: str) -> dict[str, str]:
    """The Authorization header of a new key of role `scope` (billing, viewer, admin)."""
    async with db.transaction(write=True) as session:
        issued = await create_api_key(session=session, name=f"test {scope}", scope=scope)
    return {"Authorization": f"Bearer {issued.secret}"}
