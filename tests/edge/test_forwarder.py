"""Forwarder retry policy against scripted HTTP answers (httpx.MockTransport).

Only the policy is tested here; delivery to the real collector is in tests/e2e.
"""

import gzip
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.config import ForwarderConfig
from edge.forwarder import Forwarder
from edge.outbox import Outbox
from shared.events import GENESIS_HASH, Batch
from shared.signing import verify_batch
from tests.support.batches import draft

GW = "gw-fwd"
FAST = ForwarderConfig.model_validate(
    {"batch_max_events": 3, "retry_initial": "10ms", "retry_max": "20ms", "request_timeout": "2s"}
)
Handler = Callable[[httpx.Request], httpx.Response]


class Collector:
    """Scripted answers for POST /v1/batches; records every batch it saw."""

    def __init__(self, statuses: list[int], cloud_last_seq: int | None = None) -> None:
        self.statuses = statuses
        self.cloud_last_seq = cloud_last_seq
        self.batches: list[Batch] = []
        self.key = Ed25519PrivateKey.generate()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            last = self.cloud_last_seq
            return httpx.Response(
                200, json={"last_seq": last, "last_hash": "cd" * 32 if last else None}
            )
        assert request.headers["content-encoding"] == "gzip"
        batch = Batch.model_validate_json(gzip.decompress(request.content))
        verify_batch(batch, self.key.public_key())
        self.batches.append(batch)
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 500:  # what the collector answers for an unexpected error
            error = {
                "code": "internal_error",
                "message": "the collector failed",
                "detail": {"error_id": f"err-{len(self.batches)}"},
            }
            return httpx.Response(500, json={"error": error})
        return httpx.Response(status, json={"error": {"code": f"status_{status}"}})


async def forward(
    tmp_path: Path, collector: Collector, events: int, config: ForwarderConfig = FAST
) -> tuple[Outbox, Forwarder]:
    outbox = Outbox(tmp_path / "o.sqlite", gateway_id=GW, budget_bytes=10**8)
    await outbox.__aenter__()
    await outbox.append([draft(n) for n in range(events)])
    client = httpx.AsyncClient(transport=httpx.MockTransport(collector), base_url="http://c")
    forwarder = Forwarder(
        outbox=outbox, client=client, gateway_id=GW, key=collector.key, config=config
    )
    try:
        await forwarder.forward_pending()
    finally:
        await client.aclose()
        await outbox.__aexit__(None, None, None)
    return outbox, forwarder


def runs(collector: Collector) -> list[tuple[int, int]]:
    return [(b.first_seq, b.last_seq) for b in collector.batches]


async def dead_letters(outbox: Outbox) -> list[dict[str, Any]]:
    """The dead letters of a closed outbox (reopened), after checking nothing is left unsent."""
    async with Outbox(outbox.path, gateway_id=GW, budget_bytes=10**8) as reopened:
        assert await reopened.lease(10) is None
        assert (await reopened.stats()).dead_letters == len(await reopened.dead_letters())
        return await reopened.dead_letters()


async def test_sends_signed_contiguous_batches_in_order(tmp_path: Path) -> None:
    collector = Collector([])
    _, forwarder = await forward(tmp_path, collector, 7)
    assert runs(collector) == [(1, 3), (4, 6), (7, 7)]
    assert collector.batches[0].prev_hash == GENESIS_HASH
    assert collector.batches[1].prev_hash == collector.batches[0].last_hash
    assert forwarder.health.events_sent == 7


async def test_transient_errors_are_retried_until_accepted(tmp_path: Path) -> None:
    collector = Collector([503, 500, 429, 200])
    _, forwarder = await forward(tmp_path, collector, 3)
    assert runs(collector) == [(1, 3)] * 4
    assert forwarder.health.dead_lettered == 0 and forwarder.health.events_sent == 3


async def test_refused_batch_is_dead_lettered_and_the_next_one_goes(tmp_path: Path) -> None:
    collector = Collector([409, 200])
    outbox, forwarder = await forward(tmp_path, collector, 6)
    assert runs(collector) == [(1, 3), (4, 6)]
    async with Outbox(outbox.path, gateway_id=GW, budget_bytes=10**8) as reopened:
        letters = await reopened.dead_letters()
        assert await reopened.lease(10) is None
    assert [(d["first_seq"], d["last_seq"], d["status"]) for d in letters] == [(1, 3, 409)]
    assert "status_409" in letters[0]["reason"]
    assert forwarder.health.dead_lettered == 1


async def test_gateway_refusal_is_retried_not_dead_lettered(tmp_path: Path) -> None:
    collector = Collector([403, 401, 200])
    _, forwarder = await forward(tmp_path, collector, 2)
    assert runs(collector) == [(1, 2)] * 3
    assert forwarder.health.dead_lettered == 0
    assert forwarder.health.refusals == {403: 1, 401: 1}


async def test_fresh_outbox_continues_the_cloud_chain(tmp_path: Path) -> None:
    collector = Collector([], cloud_last_seq=10)
    await forward(tmp_path, collector, 4)
    assert runs(collector) == [(11, 13), (14, 14)]
    assert collector.batches[0].prev_hash == "cd" * 32


async def test_wire_body_is_valid_json(tmp_path: Path) -> None:
    collector = Collector([])
    await forward(tmp_path, collector, 1)
    document = orjson.loads(orjson.dumps(collector.batches[0].model_dump(mode="json")))
    assert document["events"][0]["seq"] == 1


async def test_server_errors_for_one_batch_end_in_a_dead_letter(tmp_path: Path) -> None:
    # Five 500s for the first batch (the default max_server_errors), then the rest goes on.
    collector = Collector([500] * 5)
    outbox, forwarder = await forward(tmp_path, collector, 6)
    assert runs(collector) == [(1, 3)] * 5 + [(4, 6)]
    letters = await dead_letters(outbox)
    assert [(d["first_seq"], d["last_seq"], d["status"]) for d in letters] == [(1, 3, 500)]
    assert "internal_error" in letters[0]["reason"] and "err-5" in letters[0]["reason"]
    assert forwarder.health.dead_lettered == 1 and forwarder.health.events_sent == 3
    assert forwarder.health.last_dead_letter is not None
    assert forwarder.health.last_dead_letter.startswith("seq 1..3: HTTP 500")


async def test_max_server_errors_is_the_configured_bound(tmp_path: Path) -> None:
    config = FAST.model_copy(update={"max_server_errors": 2})
    collector = Collector([500, 500, 500, 200])
    outbox, forwarder = await forward(tmp_path, collector, 6, config)
    # (1,3) dead after its second 500; (4,6) got the third 500 and was accepted on retry.
    assert runs(collector) == [(1, 3), (1, 3), (4, 6), (4, 6)]
    assert [(d["first_seq"], d["status"]) for d in await dead_letters(outbox)] == [(1, 500)]
    assert forwarder.health.events_sent == 3


async def test_only_500s_count_towards_the_bound(tmp_path: Path) -> None:
    collector = Collector([500, 503, 500, 502, 500, 504, 500, 200])
    outbox, forwarder = await forward(tmp_path, collector, 3)
    assert runs(collector) == [(1, 3)] * 8
    assert await dead_letters(outbox) == []
    assert forwarder.health.events_sent == 3


@pytest.mark.parametrize("status", [502, 503, 504, 408, 425, 429])
async def test_outages_and_throttling_are_retried_without_end(tmp_path: Path, status: int) -> None:
    # Twice as many as max_server_errors: none of these is ever counted against the batch.
    collector = Collector([status] * 10)
    outbox, forwarder = await forward(tmp_path, collector, 3)
    assert runs(collector) == [(1, 3)] * 11
    assert await dead_letters(outbox) == [] and forwarder.health.dead_lettered == 0


@pytest.mark.parametrize("status", [401, 403, 404, 405, 407, 421])
async def test_refusals_of_the_gateway_or_endpoint_are_retried_without_end(
    tmp_path: Path, status: int
) -> None:
    collector = Collector([status] * 10)
    outbox, forwarder = await forward(tmp_path, collector, 3)
    assert runs(collector) == [(1, 3)] * 11
    assert await dead_letters(outbox) == [] and forwarder.health.refusals == {status: 10}


@pytest.mark.parametrize("status", [400, 409, 410, 413, 415, 422])
async def test_refusals_of_the_batch_are_dead_lettered_at_once(tmp_path: Path, status: int) -> None:
    collector = Collector([status])
    outbox, forwarder = await forward(tmp_path, collector, 6)
    assert runs(collector) == [(1, 3), (4, 6)]
    letters = await dead_letters(outbox)
    assert [(d["first_seq"], d["last_seq"], d["status"]) for d in letters] == [(1, 3, status)]
    assert f"status_{status}" in letters[0]["reason"]
    assert forwarder.health.events_sent == 3


async def test_the_link_keeps_since_when_it_fails_until_a_batch_gets_through(
    tmp_path: Path,
) -> None:
    collector = Collector([503, 503, 200])
    seen: list[tuple[int, datetime | None, datetime | None]] = []
    forwarder: Forwarder | None = None

    def watching(request: httpx.Request) -> httpx.Response:
        if forwarder is not None and request.method == "POST":
            health = forwarder.health
            seen.append((health.consecutive_failures, health.failing_since, health.last_error_at))
        return collector(request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(watching), base_url="http://c")
    async with Outbox(tmp_path / "o.sqlite", gateway_id=GW, budget_bytes=10**8) as outbox:
        await outbox.append([draft(n) for n in range(2)])
        forwarder = Forwarder(
            outbox=outbox, client=client, gateway_id=GW, key=collector.key, config=FAST
        )
        await forwarder.forward_pending()
    await client.aclose()

    first, second, third = seen
    assert first == (0, None, None)
    assert second[0] == 1 and second[1] is not None and second[1] == second[2]
    assert third[0] == 2 and third[1] == second[1] and third[2] != second[2]  # since the first
    assert forwarder.health.failing_since is None and forwarder.health.consecutive_failures == 0
