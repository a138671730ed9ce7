"""A site for diagnostics tests: one simulated Modbus panel, a technician password, the page on
a free port, and the real agent running in this process."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from edge.agent import Agent
from edge.diagnostics.password import store_password
from firmware_sims.modbus_panel import ModbusPanel, Scenario, SimCounter
from firmware_sims.site import SimulatedPanel, Timing, render_site_config
from tests.support.agent import running_agent

PASSWORD = "correct horse battery"
DEVICE_ID = "panel-1"
COUNTERS = (SimCounter("door_open", "input", 0, "uint16", "big", initial=40),)
# One scheduled poll at start, then an hour's wait: any later value must come from "poll now".
SLOW = Timing(poll_interval="1h", batch_max_wait="100ms")


@dataclass
class DiagnosticsSite:
    """The running agent, its simulated panel and the page's base URL."""

    agent: Agent
    panel: ModbusPanel
    url: str
    data_dir: Path


@asynccontextmanager
async def diagnostics_site(
    tmp_path: Path,
    *,
    password: str | None = PASSWORD,
    listen: str = "127.0.0.1:0",
    cloud_url: str = "http://127.0.0.1:9",  # nothing listens: the link shows an error
) -> AsyncIterator[DiagnosticsSite]:
    """Panel, password (unless None) and agent, all stopped when the block ends."""
    data_dir = tmp_path / "edge"
    if password is not None:
        store_password(data_dir, password)
    async with ModbusPanel(port=0, scenario=Scenario(counters=COUNTERS, tick=0)) as panel:
        config = render_site_config(
            gateway_id="gw-diag",
            cloud_url=cloud_url,
            data_dir=data_dir,
            panels=[SimulatedPanel(DEVICE_ID, panel.port, COUNTERS)],
            timing=SLOW,
        )
        config += f'\n[diagnostics]\nlisten = "{listen}"\n'
        async with running_agent(config) as agent:
            url = agent.diagnostics.url if agent.diagnostics is not None else None
            yield DiagnosticsSite(agent=agent, panel=panel, url=url or "", data_dir=data_dir)
