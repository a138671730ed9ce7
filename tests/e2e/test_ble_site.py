"""BLE locks end to end on real parts: `tollgate-sim ble-lock` (20 Bumble locks on a virtual air,
the gateway radio served as an HCI dongle on TCP), `tollgate-edge run` reaching them with the
Bumble bleak backend, `tollgate-cloud serve` on SQLite or PostgreSQL.

The agent is killed with SIGKILL at random moments while the locks log (their scenarios include
link drops mid-read, going out of range and clock drift): afterwards every entry every lock
logged is in the cloud exactly once, and the gateway's seq run has no gap.
"""

import asyncio
import random
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from firmware_sims.processes import (
    AgentProcess,
    BleLockSimProcess,
    CollectorProcess,
    fetch_events,
)
from firmware_sims.site import SimulatedLocks, render_site_config
from tests.e2e.conftest import (
    FAST,
)
from tests.support.waiting import eventually, free_port

GATEWAY_ID = "site-ble-gw1"
LOCKS = 20


def expected_entries(report: dict[str, Any]) -> dict[str, list[tuple[Any, ...]]]:
    return {
        f"lock-{lock_id}": [
            (e["seq"], e["action"], e["badge"], e["amount"] if e["unit"] else None, e["unit"])
            for e in lock["logged"]
        ]
        for lock_id, lock in report.items()
    }


def stored_entries(events: list[dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    entries: dict[str, list[tuple[Any, ...]]] = {}
    for e in sorted(events, key=lambda e: (e["device_id"], e["attrs"]["lock_seq"])):
        entries.setdefault(e["device_id"], []).append(
            (e["attrs"]["lock_seq"], e["name"], e["attrs"]["badge"], e["quantity"], e["unit"])
        )
    return entries


@pytest.mark.slow
async def test_twenty_locks_through_kill_9_every_entry_once(db_url: str, tmp_path: Path) -> None:
    sim = BleLockSimProcess(
        locks=LOCKS, tick=0.1, report_path=tmp_path / "locks.json", log_path=tmp_path / "sim.log"
    )
    collector = CollectorProcess(db_url=db_url, port=free_port(), log_path=tmp_path / "cloud.log")
    config = tmp_path / "site.toml"
    agent = AgentProcess(config_path=config, log_path=tmp_path / "agent.log")
    rng = random.Random(4)
    try:
        backend = await sim.start()
        radio = SimulatedLocks(
            backend=backend, locks=tuple((f"lock-{n}", n) for n in range(1, LOCKS + 1))
        )
        config.write_text(
            render_site_config(
                gateway_id=GATEWAY_ID,
                cloud_url=collector.url,
                data_dir=tmp_path / "edge",
                panels=[],
                timing=FAST,
                locks=radio,
            )
        )
        pem = tmp_path / "gateway.pub"
        pem.write_text(await agent.keygen())
        await collector.migrate()
        await collector.add_gateway(GATEWAY_ID, pem)
        await collector.start()
        for _ in range(10):
            await agent.spawn()
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            await agent.kill()
        await agent.spawn()

        async def scenarios_done() -> bool:
            return sim.report_path.exists()

        await eventually(scenarios_done, what="the locks to finish their scenarios")
        expected = expected_entries(orjson.loads(sim.report_path.read_bytes()))
        total = sum(len(entries) for entries in expected.values())
        async with httpx.AsyncClient(
            base_url=collector.url, timeout=10, headers=collector.reader_headers()
        ) as client:

            async def all_stored() -> bool:
                try:
                    return len(await fetch_events(client, gateway_id=GATEWAY_ID)) >= total
                except httpx.HTTPError:
                    return False

            await eventually(all_stored, what=f"the cloud to hold {total} lock entries", limit=180)
            events = await fetch_events(client, gateway_id=GATEWAY_ID)
            gateway = (await client.get(f"/v1/gateways/{GATEWAY_ID}")).json()
    finally:
        await agent.terminate()
        await collector.terminate()
        await sim.terminate()
    assert stored_entries(events) == expected
    assert [e["seq"] for e in events] == list(range(1, total + 1))
    assert gateway["missing_ranges"] == []
    assert {e["clock"] for e in events} == {"device"}
    final = orjson.loads(sim.report_path.read_bytes())  # rewritten at exit: acks included
    assert sum(lock["dropped_reads"] for lock in final.values()) >= 1
    assert all(lock["acked"] == len(lock["logged"]) for lock in final.values())
