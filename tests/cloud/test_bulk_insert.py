"""The events insert: COPY on PostgreSQL stores exactly the rows the executemany stores."""

import functools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Text, cast, delete, select
from sqlalchemy.orm import Session

from cloud.db import Database
from cloud.ingest import bulk_insert
from cloud.ingest.models import ReceivedBatch, StoredEvent
from cloud.ingest.store import insert_new
from cloud.settings import Settings
from shared.events import Batch, ClockState, EventDraft, EventKind
from tests.cloud.conftest import GATEWAY, running_app
from tests.support.batches import T0, batch_document, chain_events


def varied_drafts(count: int) -> list[EventDraft]:
    """Drafts covering every column's shapes: no quantity, channels, units, attrs of each type."""
    drafts = []
    for n in range(count):
        at = T0 + timedelta(seconds=n, microseconds=n * 7)
        drafts.append(
            EventDraft(
                device_id=f"dev-{n % 3}",
                channel=None if n % 2 else f"ch-{n}",
                name="energy" if n % 3 else "door_open",
                kind=list(EventKind)[n % len(EventKind)],
                quantity=None if n % 4 == 3 else Decimal(f"{n}.{n:03d}") - Decimal(5),
                unit=None if n % 5 == 4 else "kWh",
                occurred_at=at,
                observed_at=at + timedelta(milliseconds=n),
                clock=list(ClockState)[n % len(ClockState)],
                attrs={}
                if n % 3 == 0
                else {"n": n, "on": n % 2 == 0, "label": "é-✓", "none": None},
            )
        )
    return drafts


def stored_rows(session: Session) -> list[tuple[Any, ...]]:
    """Stored events (but the batch row and receipt time), JSON and numeric also as text."""
    columns = [
        column
        for column in StoredEvent.__table__.columns
        if column.name not in ("batch_id", "received_at")
    ]
    statement = select(
        *columns,
        cast(StoredEvent.attrs, Text).label("attrs_text"),
        cast(StoredEvent.quantity, Text).label("quantity_text"),
    ).order_by(StoredEvent.seq)
    return [tuple(row) for row in session.execute(statement)]


def insert_and_read(session: Session, *, batch: Batch) -> list[tuple[Any, ...]]:
    insert_new(session, batch=batch, events=list(batch.events))
    rows = stored_rows(session)
    session.execute(delete(StoredEvent))
    session.execute(delete(ReceivedBatch))
    return rows


@pytest.fixture
def batch(gateway_key: Ed25519PrivateKey) -> Batch:
    events = chain_events(varied_drafts(40), gateway_id=GATEWAY)
    return Batch.model_validate(batch_document(events, gateway_key))


async def test_copy_is_used_on_postgresql_and_stores_the_executemany_rows(
    postgres_url: str,
    gateway_key: Ed25519PrivateKey,
    batch: Batch,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real_copy = bulk_insert.copy_events

    def counting_copy(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        real_copy(*args, **kwargs)

    monkeypatch.setattr(bulk_insert, "copy_events", counting_copy)
    async with running_app(Settings(db_url=postgres_url), gateway_key) as app:
        db: Database = app.state.db
        copied = await db.run_write(functools.partial(insert_and_read, batch=batch))
        assert calls == [1]
        monkeypatch.setattr(bulk_insert, "uses_copy", lambda dialect: False)
        executed = await db.run_write(functools.partial(insert_and_read, batch=batch))
    assert calls == [1]
    assert len(copied) == len(batch.events)
    assert copied == executed
    # And they are the events as sent: the same wire form.
    assert [row[1] for row in copied] == [event.seq for event in batch.events]
    assert all(row[8].tzinfo is not None for row in copied)


async def test_copy_outside_a_transaction_is_refused(
    postgres_url: str, gateway_key: Ed25519PrivateKey, batch: Batch
) -> None:
    async with running_app(Settings(db_url=postgres_url), gateway_key) as app:
        db: Database = app.state.db
        async with db.engine.connect() as connection:
            # The dialect begins the driver's transaction at the first statement, not before.
            def copy(sync: Any) -> None:
                bulk_insert.copy_events(
                    sync, batch.events, batch_id=1, received_at=datetime.now(UTC)
                )

            with pytest.raises(RuntimeError, match="outside the write transaction"):
                await connection.run_sync(copy)
