"""Several collectors sharing one database store each event once, whatever arrives at once."""

import asyncio

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.app import create_app
from cloud.settings import Settings
from tests.cloud.conftest import READER, counts, http_client, make_events, post, running_app


async def test_two_collectors_receiving_the_same_batches_store_them_once(
    db_url: str, gateway_key: Ed25519PrivateKey
) -> None:
    chain = make_events(1, 60)
    deliveries = [chain[:30], chain[:30], chain[20:], chain[20:], chain[30:], chain[:30]]
    second = create_app(Settings(db_url=db_url))
    async with (
        running_app(Settings(db_url=db_url), gateway_key) as first,
        second.router.lifespan_context(second),
        http_client(first) as one,
        http_client(second) as other,
    ):
        sends = [
            post(client, events, gateway_key)
            for client, events in zip([one, other] * 3, deliveries, strict=True)
        ]
        responses: list[httpx.Response] = await asyncio.gather(*sends)
        totals = await counts(first.state.db)
        listed = (await one.get("/v1/events", headers=READER, params={"limit": 1000})).json()[
            "events"
        ]

    assert [response.status_code for response in responses] == [200] * 6
    assert sum(response.json()["stored"] for response in responses) == 60
    sent = sum(len(events) for events in deliveries)
    assert sum(response.json()["duplicates"] for response in responses) == sent - 60
    assert totals["events"] == 60
    assert [event["hash"] for event in listed] == [event.hash for event in chain]
