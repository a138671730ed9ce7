"""The chain goes on past archived months: a re-sent archived batch is a duplicate, the next batch
links to the archived head (and a wrong link is refused), a direct source seals after the head,
and the gateway view lists no archived seq as missing."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from cloud.archive.service import archive_before
from cloud.db import Database
from cloud.incidents.models import Incident
from cloud.ingest.archived_heads import ArchivedHead
from cloud.ingest.models import StoredEvent
from shared.events import EventKind, UsageEvent
from tests.cloud.conftest import GATEWAY, READER, error_code, http_client, post
from tests.cloud.direct.conftest import SOURCE_ID, bearer, create_source, make_admin_key
from tests.cloud.direct.test_cloudevents_api import cloud_event, send
from tests.support.batches import chain_events
from tests.support.usage import usage

NOW = datetime(2028, 1, 10, 12, tzinfo=UTC)  # August 2026 is outside the correction window


def water(day: int, litres: str = "5", month: int = 8) -> Any:
    """A meter reading on `day` of `month` 2026, 10:00 UTC."""
    when = datetime(2026, month, day, 10, tzinfo=UTC)
    return usage("meter-1", "water", when, kind=EventKind.MEASUREMENT, quantity=litres, unit="l")


def august_chain() -> list[UsageEvent]:
    """Seqs 1..5 of GATEWAY, all in August 2026."""
    return chain_events([water(day) for day in range(1, 6)], gateway_id=GATEWAY)


async def archive_august(db: Database, tmp_path: Path) -> None:
    """Archive August 2026 (and every month before it)."""
    directory = tmp_path / "archive"
    directory.mkdir(exist_ok=True)
    await archive_before(db, before=(2026, 9), directory=directory, now=NOW)


async def stored_count(db: Database, gateway_id: str = GATEWAY) -> int:
    """How many events of the gateway are stored."""
    async with db.transaction() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(StoredEvent)
            .where(StoredEvent.gateway_id == gateway_id)
        )
        return count or 0


async def gateway_view(client: httpx.AsyncClient, gateway_id: str = GATEWAY) -> dict[str, Any]:
    """GET /v1/gateways/{id}."""
    response = await client.get(f"/v1/gateways/{gateway_id}", headers=READER)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_archiving_records_each_gateways_newest_archived_event(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    chain = august_chain()
    assert (await post(client, chain[:3], gateway_key)).status_code == 200
    assert (await post(client, chain[3:], gateway_key)).status_code == 200

    await archive_august(db, tmp_path)

    async with db.transaction() as session:
        heads = list(await session.scalars(select(ArchivedHead)))
    assert [(h.gateway_id, h.seq, h.prev_hash, h.hash) for h in heads] == [
        (GATEWAY, 5, chain[3].hash, chain[4].hash)
    ]


async def test_a_resent_archived_batch_stores_nothing_and_answers_duplicates(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    chain = august_chain()
    assert (await post(client, chain[:3], gateway_key)).status_code == 200
    assert (await post(client, chain[3:], gateway_key)).status_code == 200
    await archive_august(db, tmp_path)
    assert await stored_count(db) == 0

    first = await post(client, chain[:3], gateway_key)  # below the head: not compared
    last = await post(client, chain[3:], gateway_key)  # ends at the head: compared

    assert first.status_code == 200 and last.status_code == 200, (first.text, last.text)
    assert (first.json()["stored"], first.json()["duplicates"]) == (0, 3)
    assert (last.json()["stored"], last.json()["duplicates"]) == (0, 2)
    assert await stored_count(db) == 0
    async with db.transaction() as session:
        evidence = list(
            await session.scalars(
                select(Incident.evidence).where(Incident.kind == "duplicate_delivery")
            )
        )
    assert [e["seqs"] for e in evidence] == [[1, 2, 3, 4, 5]]  # one incident, both deliveries


async def test_the_archived_head_with_another_hash_is_a_seq_conflict(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    chain = august_chain()
    assert (await post(client, chain, gateway_key)).status_code == 200
    await archive_august(db, tmp_path)

    rewritten = chain_events(
        [water(5, litres="500")], gateway_id=GATEWAY, first_seq=5, prev_hash=chain[3].hash
    )
    response = await post(client, rewritten, gateway_key)

    assert response.status_code == 409 and error_code(response) == "seq_conflict", response.text
    assert await stored_count(db) == 0


async def test_the_next_batch_links_to_the_archived_head(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    chain = august_chain()
    assert (await post(client, chain, gateway_key)).status_code == 200
    await archive_august(db, tmp_path)
    september = [water(day, month=9) for day in (1, 2)]

    forged = chain_events(september, gateway_id=GATEWAY, first_seq=6, prev_hash=chain[3].hash)
    refused = await post(client, forged, gateway_key)
    following = chain_events(september, gateway_id=GATEWAY, first_seq=6, prev_hash=chain[4].hash)
    accepted = await post(client, following, gateway_key)

    assert refused.status_code == 409 and error_code(refused) == "chain_broken", refused.text
    assert refused.json()["error"]["detail"]["seq"] == 6
    assert accepted.status_code == 200 and accepted.json()["stored"] == 2, accepted.text
    assert await stored_count(db) == 2


async def test_the_gateway_view_lists_no_archived_seq_as_missing(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    chain = chain_events(
        [*(water(day) for day in range(1, 6)), *(water(day, month=9) for day in range(1, 11))],
        gateway_id=GATEWAY,
    )
    assert (await post(client, chain[:5], gateway_key)).status_code == 200
    assert (await post(client, chain[5:7], gateway_key)).status_code == 200  # seqs 6, 7
    assert (await post(client, chain[9:], gateway_key)).status_code == 200  # 10.. after a gap
    await archive_august(db, tmp_path)

    view = await gateway_view(client)

    assert view["missing_ranges"] == [[8, 9]]  # the real gap stays; 1..5 are archived
    assert (view["last_seq"], view["last_hash"], view["event_count"]) == (15, chain[14].hash, 8)
    async with db.transaction() as session:
        gaps = list(
            await session.scalars(select(Incident.evidence).where(Incident.kind == "seq_gap"))
        )
    assert [gap["missing"] for gap in gaps] == [[[8, 9]]]


async def test_the_gateway_head_is_the_archived_head_once_all_is_archived(
    client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    chain = august_chain()
    assert (await post(client, chain, gateway_key)).status_code == 200
    await archive_august(db, tmp_path)

    view = await gateway_view(client)
    following = chain_events(
        [water(1, month=9)], gateway_id=GATEWAY, first_seq=6, prev_hash=chain[4].hash
    )
    assert (await post(client, following, gateway_key)).status_code == 200

    # a fresh outbox renumbers after last_seq: it must not start again at seq 1
    assert (view["last_seq"], view["last_hash"]) == (5, chain[4].hash)
    assert view["missing_ranges"] == []
    async with db.transaction() as session:
        kinds = list(await session.scalars(select(Incident.kind)))
    assert "seq_gap" not in kinds  # seqs 1..5 are archived, not skipped


async def test_a_direct_source_seals_after_its_archived_head(
    app: Any, db: Database, tmp_path: Path
) -> None:
    gateway_id = f"source:{SOURCE_ID}"
    admin_key = await make_admin_key(db)
    async with http_client(app) as http:
        http.headers.update(bearer(admin_key.secret))
        ingest_key = await create_source(http)
    august = datetime(2026, 8, 3, 10, tzinfo=UTC)
    async with http_client(app) as sender:
        for event_id in ("a", "b", "c"):
            response = await send(sender, ingest_key, cloud_event(event_id, time=august))
            assert response.status_code == 200, response.text
        before = await gateway_view(sender, gateway_id)
        await archive_august(db, tmp_path)
        assert await stored_count(db, gateway_id) == 0

        response = await send(sender, ingest_key, cloud_event("d"))
        assert response.status_code == 200, response.text
        after = await gateway_view(sender, gateway_id)

    assert (response.json()["first_seq"], response.json()["last_seq"]) == (4, 4)
    async with db.transaction() as session:
        (event,) = await session.scalars(
            select(StoredEvent).where(StoredEvent.gateway_id == gateway_id)
        )
    assert (event.seq, event.prev_hash) == (4, before["last_hash"])
    assert before["last_seq"] == 3 and after["last_seq"] == 4 and after["missing_ranges"] == []
