"""The change feed: consumers see exactly the events a transaction stored, inside it."""

from collections.abc import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.db import Database
from cloud.ingest import feed
from cloud.ingest.feed import StoredBatch
from cloud.wiring import connect
from tests.cloud.conftest import counts, make_events, post


class Recorder:
    """A consumer that records what it was handed, and fails when told to."""

    def __init__(self) -> None:
        self.seen: list[StoredBatch] = []
        self.fail = False

    def __call__(self, session: Session, stored: StoredBatch) -> None:
        assert session.in_transaction()
        self.seen.append(stored)
        if self.fail:
            raise RuntimeError("consumer failed on purpose")


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """A recording consumer subscribed after the real ones, for one test."""
    recording = Recorder()
    feed.subscribe("test-recorder", recording)
    yield recording
    feed.unsubscribe("test-recorder")


def test_the_composition_root_subscribes_the_sessions() -> None:
    connect()
    assert "sessions" in feed.subscribers()


def test_publishing_without_consumers_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed, "_consumers", {})
    stored = StoredBatch(gateway_id="g", batch_id=1, received_at=None, events=[], duplicates=0)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="connect"):
        feed.publish(None, stored)  # type: ignore[arg-type]


async def test_consumers_see_only_the_new_events(
    client: httpx.AsyncClient, gateway_key: Ed25519PrivateKey, recorder: Recorder
) -> None:
    first = make_events(1, 5)
    assert (await post(client, first, gateway_key)).status_code == 200
    overlapping = make_events(1, 8)
    assert (await post(client, overlapping, gateway_key)).status_code == 200
    assert (await post(client, overlapping, gateway_key)).status_code == 200  # all duplicates

    assert [[e.seq for e in s.events] for s in recorder.seen] == [[1, 2, 3, 4, 5], [6, 7, 8], []]
    assert [s.duplicates for s in recorder.seen] == [0, 5, 8]
    first, second, resent = (s.batch_id for s in recorder.seen)
    assert first is not None and second is not None and first != second
    assert resent is None  # nothing new, no batch row: published so the gateway counts as alive


async def test_a_failing_consumer_stores_nothing(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey, recorder: Recorder
) -> None:
    recorder.fail = True
    refused = await post(client, make_events(1, 3), gateway_key)
    assert refused.status_code == 500
    assert refused.json()["error"]["code"] == "internal_error"
    assert (await counts(db))["events"] == 0
    assert await _session_work(db) == 0

    recorder.fail = False
    assert (await post(client, make_events(1, 3), gateway_key)).json()["stored"] == 3
    assert await _session_work(db) == 1  # the sessions' consumer ran in the same transaction


async def _session_work(db: Database) -> int:
    from cloud.session_work import SessionWork

    async with db.transaction() as session:
        return await session.scalar(select(func.count()).select_from(SessionWork)) or 0
