"""The forwarder against the real collector app (ASGI, a migrated database): a batch whose
content the collector refuses is dead-lettered with its answer, and the later batches are stored."""

from datetime import timedelta
from pathlib import Path

import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from cloud.db import Database
from cloud.ingest.models import StoredEvent
from cloud.settings import Limits, Settings
from edge.config import ForwarderConfig
from edge.forwarder import Forwarder
from edge.outbox import Outbox
from edge.status import format_status, status_document
from shared.canonical import format_time
from shared.events import EventDraft
from tests.cloud.conftest import GATEWAY, running_app
from tests.support.batches import T0, draft

CONFIG = ForwarderConfig.model_validate(
    {"batch_max_events": 3, "retry_initial": "10ms", "retry_max": "20ms"}
)
# Three ordinary events inflate to about 2 KiB; the bulky one alone to more than 8 KiB.
LIMITS = Limits(max_inflated_bytes=8 * 1024)


def bulky(n: int) -> EventDraft:
    """An event whose attrs alone are larger than the collector's inflated-body limit."""
    attrs = {f"note_{i}": "x" * 500 for i in range(20)}
    return draft(n).model_copy(update={"attrs": attrs})


async def stored_seqs(db: Database) -> list[int]:
    async with db.transaction() as session:
        return list(await session.scalars(select(StoredEvent.seq).order_by(StoredEvent.seq)))


async def test_a_batch_the_collector_refuses_is_dead_lettered_and_the_next_are_stored(
    db_url: str, tmp_path: Path
) -> None:
    key = Ed25519PrivateKey.generate()
    drafts = [draft(n) for n in range(1, 10)]
    drafts[4] = bulky(5)  # seq 5: its batch 4..6 is too large once inflated
    async with (
        running_app(Settings(db_url=db_url, limits=LIMITS), key) as app,
        Outbox(tmp_path / "outbox.sqlite", gateway_id=GATEWAY, budget_bytes=10**8) as outbox,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://collector"
        ) as client,
    ):
        await outbox.append(drafts)
        forwarder = Forwarder(
            outbox=outbox, client=client, gateway_id=GATEWAY, key=key, config=CONFIG
        )
        sent = await forwarder.forward_pending()
        letters = await outbox.dead_letters()
        stats = await outbox.stats()
        assert await stored_seqs(app.state.db) == [1, 2, 3, 7, 8, 9]

    assert sent == 9  # every event left the outbox: six stored, three dead-lettered
    assert stats.backlog == 0 and stats.dead_letters == 1
    assert [(d["first_seq"], d["last_seq"], d["status"]) for d in letters] == [(4, 6, 413)]
    assert orjson.loads(letters[0]["reason"])["error"]["code"] == "body_too_large"
    assert forwarder.health.dead_lettered == 1 and forwarder.health.events_sent == 6

    # The dead letter keeps the events themselves, for a later replay or inspection.
    async with Outbox(tmp_path / "outbox.sqlite", gateway_id=GATEWAY, budget_bytes=10**8) as again:
        kept = await again.dead_letter_events(letters[0]["id"])
    assert [event["seq"] for event in kept] == [4, 5, 6]
    assert kept[1]["attrs"] == bulky(5).attrs
    assert kept[0]["occurred_at"] == format_time(T0 + timedelta(seconds=4))

    shown = format_status(
        status_document(
            gateway_id=GATEWAY,
            state="running",
            outbox=stats,
            outbox_full=False,
            link=forwarder.health,
            devices={},
        )
    )
    assert "1 dead letters" in shown
    assert "dead letters: 1 batches the collector refused" in shown
    assert "seq 4..6: HTTP 413" in shown
