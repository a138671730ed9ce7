"""`deliver_due`: the background job that sends due deliveries and records what happened.

A round claims up to `batch_size` due deliveries in one short write transaction (PostgreSQL:
`FOR UPDATE SKIP LOCKED`, so several collectors share the work without waiting on each other;
SQLite: the write lock), setting a lease on each; sends them with no transaction open,
`concurrency` at a time; then records every outcome in a second transaction. A collector that
dies between the two leaves its deliveries leased: they are due again when the lease passes and
are sent again with the same `webhook-id` (at least once; the receiver drops duplicates by id).
Rounds repeat until nothing is due (at most `max_rounds` per run).

Order: deliveries are concurrent across messages and endpoints; one endpoint may receive a
later message before an earlier one (and a retried message after newer ones). Receivers order by
the body's `timestamp` if they care. A disabled endpoint's deliveries are not claimed: they wait,
and are sent once it is enabled again.

Times: `now` (the job's clock) decides what is due, the backoff, the lease and the disable rule,
so tests drive it through hours of retries; each attempt's log row holds the wall-clock time the
POST was made, and the signature's timestamp is that time too (receivers check it).
"""

import asyncio
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import cast

import httpx
import orjson
from sqlalchemy import Table, insert, or_, select, update
from sqlalchemy.orm import Session

from cloud.db import Database
from cloud.webhooks.models import (
    DeliveryState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)
from cloud.webhooks.policy import DEFAULT_POLICY, DeliveryPolicy, disable_reason, retry_delay
from cloud.webhooks.sender import Attempt, Outgoing, attempt_delivery


@dataclass
class DeliveryReport:
    """What one run did: deliveries sent, and how they ended up."""

    sent: int = 0
    succeeded: int = 0
    retrying: int = 0
    failed: int = 0
    disabled_endpoints: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        text = (
            f"{self.sent} sent: {self.succeeded} delivered, {self.retrying} to retry, "
            f"{self.failed} failed"
        )
        if self.disabled_endpoints:
            text += f"; endpoints disabled: {', '.join(map(str, self.disabled_endpoints))}"
        return text


async def deliver_due(
    db: Database,
    now: datetime,
    *,
    policy: DeliveryPolicy = DEFAULT_POLICY,
    client: httpx.AsyncClient | None = None,
) -> DeliveryReport:
    """Send every delivery due at `now` (rounds of `batch_size`); what happened.

    Each round's clock is `now` plus the time the run has taken so far: a run of many rounds
    sets each round's lease from when that round starts, not from when the run did.
    """
    report = DeliveryReport()
    started = time.monotonic()
    async with nullcontext(client) if client is not None else _new_client(policy) as http:
        for _ in range(policy.max_rounds):
            at = now + timedelta(seconds=time.monotonic() - started)
            claimed = await db.run_write(partial(claim_due, now=at, policy=policy))
            if not claimed:
                break
            attempts = await send_all(http, claimed, policy)
            at = now + timedelta(seconds=time.monotonic() - started)
            await db.run_write(
                partial(record_attempts, attempts=attempts, now=at, policy=policy, report=report)
            )
            if len(claimed) < policy.batch_size:
                break
    return report


def _new_client(policy: DeliveryPolicy) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=policy.timeout_seconds,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=policy.concurrency),
    )


def claim_due(session: Session, *, now: datetime, policy: DeliveryPolicy) -> list[Outgoing]:
    """Lease up to `batch_size` due deliveries of enabled endpoints; what to send for each."""
    due = (
        select(WebhookDelivery.id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.state == DeliveryState.PENDING.value,
            WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until <= now),
            WebhookEndpoint.enabled,
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(policy.batch_size)
        .with_for_update(of=WebhookDelivery, skip_locked=True)
    )
    ids = list(session.scalars(due))
    if not ids:
        return []
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(ids))
        .values(lease_until=now + policy.lease)
    )
    return _outgoing(session, ids)


def _outgoing(session: Session, ids: Sequence[int]) -> list[Outgoing]:
    rows = session.execute(
        select(
            WebhookDelivery.id,
            WebhookDelivery.endpoint_id,
            WebhookMessage.id.label("message_id"),
            WebhookMessage.event_type,
            WebhookMessage.payload,
            WebhookMessage.created_at,
            WebhookEndpoint.url,
            WebhookEndpoint.secret,
        )
        .join(WebhookMessage, WebhookMessage.id == WebhookDelivery.message_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.id.in_(ids))
        .order_by(WebhookDelivery.id)
    )
    return [
        Outgoing(
            delivery_id=row.id,
            endpoint_id=row.endpoint_id,
            message_id=row.message_id,
            url=row.url,
            secret=row.secret,
            body=message_body(row.event_type, row.created_at, row.payload),
        )
        for row in rows
    ]


def message_body(event_type: str, created_at: datetime, data: object) -> bytes:
    """The Standard Webhooks payload `{"type", "timestamp", "data"}` (the same on every retry)."""
    timestamp = created_at.astimezone(UTC).isoformat(timespec="milliseconds")
    return orjson.dumps(
        {"type": event_type, "timestamp": timestamp.replace("+00:00", "Z"), "data": data}
    )


async def send_all(
    client: httpx.AsyncClient, outgoing: Sequence[Outgoing], policy: DeliveryPolicy
) -> list[Attempt]:
    """Attempt every delivery, at most `concurrency` at once; the attempts in claim order."""
    turn = asyncio.Semaphore(policy.concurrency)

    async def one(item: Outgoing) -> Attempt:
        async with turn:
            return await attempt_delivery(client, item, policy)

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(item)) for item in outgoing]
    return [task.result() for task in tasks]


def record_attempts(
    session: Session,
    *,
    attempts: Sequence[Attempt],
    now: datetime,
    policy: DeliveryPolicy,
    report: DeliveryReport,
) -> None:
    """Log every POST, move each delivery on, count failures per endpoint (into `report`).

    Locks endpoints, then deliveries (the order every writer of both takes); the endpoints
    `FOR NO KEY UPDATE`, which does not wait for transactions emitting to them (those hold a
    key-share lock through the deliveries' foreign key until they commit).
    """
    endpoint_ids = sorted({attempt.outgoing.endpoint_id for attempt in attempts})
    endpoints = {
        row.id: row
        for row in session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.id.in_(endpoint_ids))
            .order_by(WebhookEndpoint.id)
            .with_for_update(key_share=True)
        )
    }
    delivery_ids = [attempt.outgoing.delivery_id for attempt in attempts]
    rows = {
        row.id: row
        for row in session.scalars(
            select(WebhookDelivery)
            .where(
                WebhookDelivery.id.in_(delivery_ids),
                WebhookDelivery.state == DeliveryState.PENDING.value,
            )
            .order_by(WebhookDelivery.id)
            .with_for_update()
        )
    }
    log: list[dict[str, object]] = []
    for attempt in attempts:
        delivery = rows.get(attempt.outgoing.delivery_id)
        if delivery is None:
            continue  # deleted meanwhile: nothing left to move on
        log.extend(_log_rows(delivery.id, attempt))
        _tally(report, _move_on(delivery, attempt, now, policy))
        endpoint = endpoints.get(attempt.outgoing.endpoint_id)
        if endpoint is not None and _count_on_endpoint(endpoint, attempt, now, policy):
            report.disabled_endpoints.append(endpoint.id)
    if log:
        session.execute(insert(cast(Table, WebhookAttempt.__table__)), log)


def _log_rows(delivery_id: int, attempt: Attempt) -> list[dict[str, object]]:
    return [
        {
            "delivery_id": delivery_id,
            "at": made.at,
            "status_code": made.status,
            "error": made.error,
            "response_excerpt": made.excerpt,
            "duration_ms": made.duration_ms,
        }
        for made in attempt.tries
    ]


def _move_on(
    delivery: WebhookDelivery, attempt: Attempt, now: datetime, policy: DeliveryPolicy
) -> DeliveryState:
    """The delivery after this attempt: succeeded, failed (out of attempts) or rescheduled."""
    last = attempt.last
    delivery.attempts += 1
    delivery.lease_until = None
    delivery.last_status = last.status
    delivery.last_response = last.excerpt
    delivery.last_error = last.error
    if last.succeeded:
        delivery.state = DeliveryState.SUCCEEDED.value
        delivery.delivered_at = now
        return DeliveryState.SUCCEEDED
    delay = retry_delay(delivery.attempts, policy)
    if delay is None:
        delivery.state = DeliveryState.FAILED.value
        return DeliveryState.FAILED
    delivery.next_attempt_at = now + delay
    return DeliveryState.PENDING


def _tally(report: DeliveryReport, state: DeliveryState) -> None:
    report.sent += 1
    if state is DeliveryState.SUCCEEDED:
        report.succeeded += 1
    elif state is DeliveryState.FAILED:
        report.failed += 1
    else:
        report.retrying += 1


def _count_on_endpoint(
    endpoint: WebhookEndpoint, attempt: Attempt, now: datetime, policy: DeliveryPolicy
) -> bool:
    """Count the attempt on its endpoint; True when this attempt disabled it."""
    if attempt.last.succeeded:
        endpoint.consecutive_failures = 0
        endpoint.failing_since = None
        return False
    endpoint.consecutive_failures += 1
    endpoint.failing_since = endpoint.failing_since or now
    if not endpoint.enabled:
        return False
    reason = disable_reason(
        failures=endpoint.consecutive_failures,
        failing_since=endpoint.failing_since,
        now=now,
        last_failure=attempt.last.describe(),
        policy=policy,
    )
    if reason is None:
        return False
    endpoint.enabled = False
    endpoint.disabled_at = now
    endpoint.disabled_reason = reason
    return True
