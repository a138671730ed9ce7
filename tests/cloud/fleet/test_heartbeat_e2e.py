"""A real agent's heartbeats at a real collector: `tollgate-edge run` polling a Modbus panel
simulator and `tollgate-cloud serve` as child processes (firmware_sims.processes), on SQLite and
PostgreSQL. Nothing is mocked.

The forwarder is configured to hold its events (batch_max_wait 60 s, far above the test's
length) while heartbeats go out every 200 ms, so the outbox backlog is a known number when the
collector's gateway twin shows it.
"""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from firmware_sims.modbus_panel import ModbusPanel, Scenario, SimCounter
from firmware_sims.processes import AgentProcess, CollectorProcess, committed_counters
from firmware_sims.site import SimulatedPanel, Timing, render_site_config
from tests.support.waiting import eventually, free_port

GATEWAY_ID = "site-hb-gw1"
DEVICE_ID = "panel-hb"
COUNTERS = (SimCounter("door_open", "input", 0, "uint16", "big", initial=10),)
HOLD = Timing(poll_interval="50ms", batch_max_wait="60s", batch_max_events=10_000)


@pytest.fixture
async def panel() -> AsyncIterator[ModbusPanel]:
    simulator = ModbusPanel(port=0, scenario=Scenario(counters=COUNTERS, tick=0.05))
    await simulator.__aenter__()
    yield simulator
    await simulator.__aexit__(None, None, None)


async def test_the_gateway_twin_shows_the_agents_outbox_backlog(
    db_url: str, tmp_path: Path, panel: ModbusPanel
) -> None:
    collector = CollectorProcess(db_url=db_url, port=free_port(), log_path=tmp_path / "c.log")
    config = tmp_path / "site.toml"
    config.write_text(
        render_site_config(
            gateway_id=GATEWAY_ID,
            cloud_url=collector.url,
            data_dir=tmp_path / "edge",
            panels=[SimulatedPanel(DEVICE_ID, panel.port, COUNTERS)],
            timing=HOLD,
        )
        + '\n[cloud]\nheartbeat_interval = "200ms"\n'
    )
    agent = AgentProcess(config_path=config, log_path=tmp_path / "agent.log")
    pem = tmp_path / "gateway.pub"
    pem.write_text(await agent.keygen())
    await collector.migrate()
    await collector.add_gateway(GATEWAY_ID, pem)
    outbox = tmp_path / "edge" / "outbox.sqlite"

    async def committed(value: int) -> bool:
        return committed_counters(outbox).get((DEVICE_ID, "door_open")) == value

    async with (
        collector,
        agent,
        httpx.AsyncClient(base_url=collector.url, headers=collector.reader_headers()) as client,
    ):
        await eventually(lambda: committed(10), what="the agent's baseline of the counter")
        for step in range(1, 4):  # three deltas: three events held in the outbox
            await panel.advance("door_open", 1)
            await eventually(lambda v=10 + step: committed(v), what=f"delta {step} committed")

        seen: dict[str, Any] = {}

        async def shown() -> bool:
            response = await client.get(f"/v1/gateways/{GATEWAY_ID}")
            response.raise_for_status()
            seen.update(response.json())
            beat = seen["heartbeat"]
            return bool(beat) and beat["outbox"]["backlog_events"] == 3

        await eventually(shown, what="a heartbeat reporting the 3 held events")
        gateway = seen

        assert gateway["status"] == "online" and gateway["last_heartbeat_at"] is not None
        assert gateway["last_batch_at"] is None and gateway["last_seq"] is None  # none sent
        beat = gateway["heartbeat"]
        assert beat["gateway_id"] == GATEWAY_ID and beat["outbox"]["oldest_unsent_at"]
        assert [d["device_id"] for d in beat["devices"]] == [DEVICE_ID]
        twin = (await client.get(f"/v1/devices/{DEVICE_ID}/twin")).json()
        assert twin["health"] is not None and twin["gateway_id"] == GATEWAY_ID
        assert twin["last_received_at"] is None  # heard of through the heartbeat only
