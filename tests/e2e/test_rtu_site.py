"""Two Modbus RTU units on one pseudo-terminal line -> `tollgate-edge run` -> the collector:
counter deltas, state transitions and gauge measurements, on SQLite and PostgreSQL."""

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from firmware_sims.modbus_panel import ModbusPanel, Scenario, SimCounter, SimGauge, SimState
from firmware_sims.processes import AgentProcess, committed_counters, fetch_events
from tests.e2e.conftest import (
    running_site,
)
from tests.support.waiting import eventually

GATEWAY_ID = "site-rtu-gw1"
SCENARIO = Scenario(
    counters=(SimCounter("cycles", "holding", 0, "uint16"),),
    states=(SimState("armed", "coil", 0),),
    gauges=(SimGauge("level", "input", 10, "float32"),),
)

DEVICE = """
[[device]]
id = "rtu-{unit}"
driver = "modbus"
url = "rtu://{path}?baudrate=9600&parity=N&stopbits=1&bytesize=8"
unit = {unit}
poll_interval = "100ms"
timeout = "300ms"
retries = 0
request_gap = "5ms"
reconnect_initial = "100ms"
reconnect_max = "500ms"

[[device.point]]
name = "cycles"
table = "holding"
address = 0
type = "uint16"
kind = "counter"

[[device.point]]
name = "armed"
table = "coil"
address = 0
kind = "state"
activation = "armed"
deactivation = "disarmed"

[[device.point]]
name = "level"
table = "input"
address = 10
type = "float32"
kind = "gauge"
unit = "l"
deadband = "0.5"
"""


@pytest.fixture
async def rtu_site(
    db_url: str, tmp_path: Path
) -> AsyncIterator[tuple[ModbusPanel, AgentProcess, httpx.AsyncClient]]:
    async with ModbusPanel(scenario=SCENARIO, rtu=True, units=(1, 2)) as panel:
        devices = "".join(DEVICE.format(unit=u, path=panel.serial_path) for u in (1, 2))
        async with running_site(
            db_url=db_url, tmp_path=tmp_path, gateway_id=GATEWAY_ID, devices=devices
        ) as (agent, client):
            yield panel, agent, client


async def test_counters_states_and_gauges_from_two_units_on_one_line(
    rtu_site: tuple[ModbusPanel, AgentProcess, httpx.AsyncClient],
) -> None:
    panel, agent, client = rtu_site
    outbox = agent.config_path.parent / "edge" / "outbox.sqlite"

    async def committed(**expected: int) -> bool:
        values = committed_counters(outbox)
        return all(values.get(tuple(k.split("__"))) == v for k, v in expected.items())

    await eventually(
        lambda: committed(**{"rtu-1__cycles": 0, "rtu-2__armed": 0}),
        what="baselines from both units",
    )
    await panel.advance("cycles", 5)  # unit 1
    await panel.set_state("armed", True, unit=1)
    await panel.set_state("armed", True, unit=2)
    await eventually(
        lambda: committed(**{"rtu-1__cycles": 5, "rtu-2__armed": 1}), what="the changes"
    )
    await panel.set_state("armed", False, unit=2)
    await panel.set_gauge("level", 12.5, unit=1)
    await panel.set_gauge("level", 0.25, unit=2)  # within the 0.5 deadband: no measurement

    def usage(events: list[dict[str, Any]]) -> list[tuple[str, str, str, str | None]]:
        return [(e["device_id"], e["kind"], e["name"], e["quantity"]) for e in events]

    want = {
        ("rtu-1", "activity", "cycles", "5"),
        ("rtu-1", "activation", "armed", None),
        ("rtu-2", "activation", "armed", None),
        ("rtu-2", "deactivation", "disarmed", None),
        ("rtu-1", "measurement", "level", "12.5"),
    }

    async def arrived() -> bool:
        return want <= set(usage(await fetch_events(client, gateway_id=GATEWAY_ID)))

    await eventually(arrived, what=f"{want}")
    events = await fetch_events(client, gateway_id=GATEWAY_ID)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    gauges = [(e["device_id"], Decimal(e["quantity"])) for e in events if e["name"] == "level"]
    # First readings are reported (0 on both units), then only the change past the deadband.
    assert sorted(gauges) == [
        ("rtu-1", Decimal(0)),
        ("rtu-1", Decimal("12.5")),
        ("rtu-2", Decimal(0)),
    ]
    assert all(e["unit"] == "l" for e in events if e["name"] == "level")
    assert sum(1 for e in events if e["name"] in ("armed", "disarmed")) == 3


async def test_rtu_cable_pull_and_replug_loses_and_duplicates_no_count(
    rtu_site: tuple[ModbusPanel, AgentProcess, httpx.AsyncClient],
) -> None:
    panel, agent, client = rtu_site
    outbox = agent.config_path.parent / "edge" / "outbox.sqlite"

    async def agent_sees(cycles: int) -> bool:
        return committed_counters(outbox).get(("rtu-1", "cycles")) == cycles

    await eventually(lambda: agent_sees(0), what="the baseline")
    await panel.advance("cycles", 5)
    await eventually(lambda: agent_sees(5), what="the first count")
    panel.unplug()
    await eventually(lambda: _log_has(agent, "DeviceTimeout"), what="the agent to notice")
    await panel.advance("cycles", 7)  # counted by the panel while nobody can read it
    panel.replug()
    await eventually(lambda: agent_sees(12), what="the agent to read again")
    await panel.advance("cycles", 3)
    await eventually(lambda: agent_sees(15), what="the last count")

    async def billed() -> Decimal:
        events = await fetch_events(client, gateway_id=GATEWAY_ID, device_id="rtu-1")
        return sum((Decimal(e["quantity"]) for e in events if e["name"] == "cycles"), Decimal(0))

    async def complete() -> bool:
        return await billed() == panel.total_advance["cycles"] == 15

    await eventually(complete, what="15 cycles in the cloud")
    events = await fetch_events(client, gateway_id=GATEWAY_ID)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


async def _log_has(agent: AgentProcess, text: str) -> bool:
    return text in agent.log_path.read_text()
