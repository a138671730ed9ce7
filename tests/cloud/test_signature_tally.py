"""Bad signatures of a registered gateway: no write per request, one incident per interval."""

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from cloud.db import Database
from cloud.incidents.models import Incident
from cloud.ingest import signature_tally
from cloud.ingest.signature_tally import file_bad_signatures, pending
from cloud.settings import Settings
from cloud.wiring import jobs
from tests.cloud.conftest import GATEWAY, counts, make_events, post


@pytest.fixture(autouse=True)
def empty_tally() -> Iterator[None]:
    """The tally is per process: start and end each test with none from other tests."""
    signature_tally._tally.clear()
    yield
    signature_tally._tally.clear()


async def _forge(client: httpx.AsyncClient, times: int, gateway_id: str = GATEWAY) -> None:
    forger = Ed25519PrivateKey.generate()
    for n in range(times):
        events = make_events(1 + n, 1 + n, gateway_id=gateway_id)
        response = await post(client, events, forger)
        expected = 401 if gateway_id == GATEWAY else 403
        assert response.status_code == expected, response.text


async def _incidents(db: Database) -> list[Incident]:
    async with db.transaction() as session:
        return list(await session.scalars(select(Incident).order_by(Incident.id)))


async def test_forged_batches_are_counted_then_filed_as_one_incident(
    client: httpx.AsyncClient, db: Database
) -> None:
    await _forge(client, 5)
    assert (await counts(db))["incidents"] == 0  # no write per refused request
    assert pending() == {GATEWAY: 5}

    report = await file_bad_signatures(db, datetime.now(UTC))

    assert report == "5 bad signature(s) filed for 1 gateway(s)"
    assert pending() == {}
    [incident] = await _incidents(db)
    assert (incident.kind, incident.gateway_id, incident.state) == (
        "invalid_signature",
        GATEWAY,
        "open",
    )
    assert incident.count == 5 and incident.evidence is not None
    assert incident.evidence["refused"] == 5
    assert (incident.first_seq, incident.last_seq) == (1, 5)

    await _forge(client, 2)
    await file_bad_signatures(db, datetime.now(UTC))
    [bumped] = await _incidents(db)
    assert bumped.id == incident.id and bumped.count == 7
    assert await file_bad_signatures(db, datetime.now(UTC)) == "no bad signatures"


async def test_an_unknown_gateway_is_not_tallied(client: httpx.AsyncClient) -> None:
    await _forge(client, 3, gateway_id="nobody-knows-me")
    assert pending() == {}


async def test_a_failed_filing_keeps_the_tally(
    client: httpx.AsyncClient, db: Database, db_url: str
) -> None:
    await _forge(client, 2)
    closed = Database(db_url)  # never opened: every transaction fails
    with pytest.raises(Exception):  # noqa: B017 - whatever the closed database raises
        await file_bad_signatures(closed, datetime.now(UTC))
    assert pending() == {GATEWAY: 2}
    await _forge(client, 1)
    assert pending() == {GATEWAY: 3}
    await file_bad_signatures(db, datetime.now(UTC))
    assert [i.count for i in await _incidents(db)] == [3]


def test_the_job_is_wired() -> None:
    assert "bad_signatures" in [job.name for job in jobs(Settings())]
