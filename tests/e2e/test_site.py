"""simulator -> agent -> collector, through Modbus TCP, the outbox and HTTP, on both databases."""

import asyncio
import itertools
import random
from decimal import Decimal

import pytest

from firmware_sims.site import SimulatedPanel
from tests.e2e.conftest import (
    COUNTERS,
    DEVICE_ID,
    GATEWAY_ID,
    SiteFactory,
    query_cloud,
)
from tests.support.waiting import eventually, free_port


def assert_contiguous(events: list[dict[str, object]]) -> None:
    seqs = [event["seq"] for event in events]
    assert seqs == list(range(1, len(seqs) + 1)), f"seq run is not 1..{len(seqs)}"


async def test_counter_deltas_arrive_signed_contiguous_and_complete(make_site: SiteFactory) -> None:
    site = await make_site()
    await site.agent_caught_up()  # baselines: the first reading of a counter makes no event
    rng = random.Random(7)
    for step in range(30):
        await site.panel.advance("door_open", rng.randint(1, 4))  # wraps past 65535 early on
        await site.panel.advance("energy_wh", rng.randint(1, 90_000))  # uses the high word
        if step in (12, 24):
            await site.agent_caught_up()
            await site.panel.reset("door_open")  # a power cycle
        await site.agent_caught_up()
    await site.cloud_has_everything()

    events = await site.stored()
    assert_contiguous(events)
    assert {e["device_id"] for e in events} == {DEVICE_ID}
    door = [e for e in events if e["name"] == "door_open"]
    assert sum(1 for e in door if e["attrs"].get("wrapped")) == 1
    assert sum(1 for e in door if e["attrs"].get("reset")) == 2
    assert all(e["kind"] == "activity" and e["unit"] == "count" for e in events)
    gateway = await site.gateway()
    assert gateway["last_seq"] == len(events) and gateway["missing_ranges"] == []
    assert gateway["last_hash"] == events[-1]["hash"]


@pytest.mark.slow
async def test_kill_9_at_random_moments_loses_and_duplicates_nothing(
    make_site: SiteFactory,
) -> None:
    site = await make_site(start_agent=False)
    rng = random.Random(2026)
    running = True

    async def use_the_panel() -> None:
        while running:
            await site.panel.advance("door_open", rng.randint(1, 3))
            await site.panel.advance("energy_wh", rng.randint(1, 500))
            await asyncio.sleep(0.02)

    await site.agent.spawn()
    await site.agent_caught_up()
    usage = asyncio.create_task(use_the_panel())
    try:
        for _ in range(22):
            await site.agent.kill()
            await site.agent.spawn()
            await asyncio.sleep(rng.uniform(0.2, 2.0))
        await site.agent.kill()
    finally:
        running = False
        await usage
    await site.agent.spawn()
    await site.cloud_has_everything()

    events = await site.stored()
    assert_contiguous(events)
    gateway = await site.gateway()
    assert gateway["last_seq"] == len(events) and gateway["missing_ranges"] == []
    assert "chain_broken" not in gateway["incidents"]
    assert "seq_conflict" not in gateway["incidents"]


async def test_collector_outage_backlog_drains_in_order(
    make_site: SiteFactory, db_url: str
) -> None:
    site = await make_site(start_collector=False)
    await site.agent_caught_up()
    for _ in range(40):
        await site.panel.advance("door_open", 1)
        await site.panel.advance("energy_wh", 10)
        await site.agent_caught_up()
    # Every delta is committed at the edge while the collector is down.
    await site.collector.start()
    await site.cloud_has_everything()

    events = await site.stored()
    assert len(events) == 80
    assert_contiguous(events)
    batches = await query_cloud(db_url, "SELECT first_seq, last_seq FROM batches ORDER BY id")
    assert [b[0] for b in batches] == sorted(b[0] for b in batches)
    assert batches[0][0] == 1 and batches[-1][1] == 80
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(batches))


async def test_collector_restart_mid_run_loses_nothing(make_site: SiteFactory) -> None:
    site = await make_site()
    await site.agent_caught_up()
    for step in range(30):
        await site.panel.advance("door_open", 2)
        if step == 10:
            await site.collector.terminate()
        if step == 20:
            await site.collector.start()
        await site.agent_caught_up()
    await site.cloud_has_everything()
    assert_contiguous(await site.stored())


async def test_full_outbox_pauses_the_panel_and_loses_nothing(make_site: SiteFactory) -> None:
    site = await make_site(outbox_budget_mb=0.1, start_collector=False)
    await site.agent_caught_up()

    async def alarm_raised() -> bool:
        return "ALARM outbox full" in site.agent.log_path.read_text()

    while not await alarm_raised():
        await site.panel.advance("door_open", 1)
        await site.panel.advance("energy_wh", 3)
        await asyncio.sleep(0.06)
    # Keep using the panel while the agent refuses new events: the counter keeps the count.
    for _ in range(20):
        await site.panel.advance("door_open", 5)
        await asyncio.sleep(0.05)
    assert site.outbox_used_bytes() <= 0.1 * 1024 * 1024
    await site.collector.start()
    await site.cloud_has_everything()
    assert_contiguous(await site.stored())
    assert "outbox has room again" in site.agent.log_path.read_text()


async def test_corrupt_outbox_is_quarantined_and_the_chain_continues(
    make_site: SiteFactory,
) -> None:
    site = await make_site()
    await site.agent_caught_up()
    for _ in range(5):
        await site.panel.advance("door_open", 1)
        await site.agent_caught_up()
    await site.cloud_has_everything()
    assert await site.agent.terminate() == 0, site.agent.log_path.read_text()[-4000:]

    site.outbox_path.write_bytes(b"\x00garbage" * 4096)
    for suffix in ("-wal", "-shm"):
        site.outbox_path.with_name(site.outbox_path.name + suffix).unlink(missing_ok=True)
    await site.agent.spawn()
    await site.agent_caught_up()
    for _ in range(5):
        await site.panel.advance("door_open", 2)
        await site.agent_caught_up()
    await site.cloud_has_everything()

    events = await site.stored()
    assert_contiguous(events)
    assert sum(Decimal(e["quantity"]) for e in events) == 15
    quarantined = list(site.outbox_path.parent.glob("outbox.sqlite.corrupt-*"))
    assert len(quarantined) == 1 and quarantined[0].read_bytes().startswith(b"\x00garbage")
    assert "quarantined" in site.agent.log_path.read_text()


async def test_malformed_config_is_refused_before_anything_starts(make_site: SiteFactory) -> None:
    site = await make_site(start_agent=False, start_collector=False)
    text = site.agent.config_path.read_text()
    site.agent.config_path.write_text(text.replace('table = "input"', 'table = "inptu"'))
    await site.agent.spawn()
    assert site.agent.process is not None
    assert await site.agent.process.wait() == 2
    log = site.agent.log_path.read_text()
    assert "site.toml:" in log and "device 'panel-1', field device.point.table" in log
    assert not site.outbox_path.exists()


async def test_gateway_shows_no_incidents_after_a_clean_run(make_site: SiteFactory) -> None:
    site = await make_site()
    await site.agent_caught_up()
    await site.panel.advance("door_open", 3)
    await site.agent_caught_up()
    await site.cloud_has_everything()

    async def quiet() -> bool:
        return (await site.gateway())["event_count"] == 1

    await eventually(quiet, what="one event")
    gateway = await site.gateway()
    assert gateway["gateway_id"] == GATEWAY_ID
    assert set(gateway["incidents"]) <= {"duplicate_delivery"}


async def test_an_unreachable_device_does_not_hold_back_another(make_site: SiteFactory) -> None:
    dead = SimulatedPanel("panel-unplugged", free_port(), COUNTERS)  # nothing listens there
    site = await make_site(extra_panels=(dead,))
    await site.agent_caught_up()
    for _ in range(10):
        await site.panel.advance("door_open", 1)
        await site.agent_caught_up()
    await site.cloud_has_everything()
    assert {e["device_id"] for e in await site.stored()} == {DEVICE_ID}
    assert await site.agent.terminate() == 0, site.agent.log_path.read_text()[-4000:]
    log = site.agent.log_path.read_text()
    assert '"device_id":"panel-unplugged"' in log and "DeviceUnreachable" in log
    assert "agent stopped" in log
