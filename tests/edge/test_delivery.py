"""Deliveries: a source that keeps its own log learns its events are durable only after commit.

These run the real agent (its writer, a real outbox file) with no devices and an unreachable
cloud, and hand it deliveries the way the BLE and MQTT drivers do.
"""

import sqlite3
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.agent import Agent
from edge.delivery import Delivery, deliver
from edge.errors import OutboxError, OutboxFull
from edge.outbox import CounterValue, Outbox
from tests.support.agent import running_agent as run_agent
from tests.support.batches import draft

SITE = """
[gateway]
id = "gw-delivery"
cloud_url = "http://127.0.0.1:9"
data_dir = "{data_dir}"
outbox_budget_mb = {budget_mb}
"""


def running_agent(data_dir: Path, *, budget_mb: float = 64) -> AbstractAsyncContextManager[Agent]:
    return run_agent(SITE.format(data_dir=data_dir, budget_mb=budget_mb))


def stored_rows(data_dir: Path) -> list[tuple[int, str]]:
    """What another process reading the outbox file sees (so: committed)."""
    with sqlite3.connect(data_dir / "outbox.sqlite") as db:
        return list(db.execute("SELECT seq, device_id FROM events ORDER BY seq"))


async def test_deliver_returns_after_the_commit_with_the_count_stored(tmp_path: Path) -> None:
    async with running_agent(tmp_path) as agent:
        stored = await deliver(agent._queue, [draft(1), draft(2), draft(3)], ["a", "b", "c"])
        assert stored == 3
        assert [seq for seq, _ in stored_rows(tmp_path)] == [1, 2, 3]


async def test_a_redelivery_is_stored_once(tmp_path: Path) -> None:
    async with running_agent(tmp_path) as agent:
        await deliver(agent._queue, [draft(1), draft(2)], ["lock-7:1", "lock-7:2"])
        again = await deliver(
            agent._queue, [draft(1), draft(2), draft(3)], ["lock-7:1", "lock-7:2", "lock-7:3"]
        )
        assert again == 1
    assert [seq for seq, _ in stored_rows(tmp_path)] == [1, 2, 3]


async def test_dedupe_keys_survive_a_restart(tmp_path: Path) -> None:
    async with running_agent(tmp_path) as agent:
        await deliver(agent._queue, [draft(1)], ["mqtt:abc"])
    async with running_agent(tmp_path) as agent:
        assert await deliver(agent._queue, [draft(1)], ["mqtt:abc"]) == 0
    assert len(stored_rows(tmp_path)) == 1


async def test_two_copies_in_one_group_commit_are_stored_once(tmp_path: Path) -> None:
    async with running_agent(tmp_path) as agent:
        first = Delivery((draft(1),), ("k",))
        second = Delivery((draft(1),), ("k",))
        agent._queue.put_nowait(first)
        agent._queue.put_nowait(second)  # queued before the writer wakes: one group
        assert (await first.committed, await second.committed) == (1, 0)
    assert len(stored_rows(tmp_path)) == 1


async def test_marks_are_committed_with_the_events_and_loaded_on_restart(tmp_path: Path) -> None:
    at = datetime(2026, 11, 21, tzinfo=UTC)
    async with running_agent(tmp_path) as agent:
        mark = CounterValue("lock-7", "lock_seq", 12, at)
        await deliver(agent._queue, [draft(1)], ["lock-7:12"], [mark])
        assert agent._counters[("lock-7", "lock_seq")] == 12
    async with running_agent(tmp_path) as agent:
        assert agent._counters[("lock-7", "lock_seq")] == 12


async def test_a_full_outbox_refuses_a_delivery_and_stores_none_of_it(tmp_path: Path) -> None:
    async with running_agent(tmp_path, budget_mb=0.05) as agent:
        drafts = [draft(n) for n in range(400)]
        with pytest.raises(OutboxFull, match="budget"):
            await deliver(agent._queue, drafts, [f"k{n}" for n in range(400)])
        assert agent.outbox_full
    assert stored_rows(tmp_path) == []
    # The keys were not recorded either: the source may deliver them again later.
    async with Outbox(
        tmp_path / "outbox.sqlite", gateway_id="gw-delivery", budget_bytes=1 << 26
    ) as o:
        assert await o.delivered_keys(["k0", "k399"]) == set()


async def test_a_delivery_needs_one_distinct_key_per_draft() -> None:
    with pytest.raises(ValueError, match="need as many keys"):
        Delivery((draft(1), draft(2)), ("a",))
    with pytest.raises(ValueError, match="distinct"):
        Delivery((draft(1), draft(2)), ("a", "a"))


async def test_the_outbox_refuses_a_key_it_already_holds_and_writes_nothing(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.sqlite", gateway_id="gw", budget_bytes=1 << 26) as outbox:
        await outbox.append([draft(1)], keys=["k1"])
        with pytest.raises(OutboxError, match="outbox write failed"):
            await outbox.append([draft(2), draft(3)], keys=["k2", "k1"])
        assert await outbox.delivered_keys(["k1", "k2", "k3"]) == {"k1"}
        assert (await outbox.stats()).last_seq == 1
