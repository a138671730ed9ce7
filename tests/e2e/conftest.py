"""A whole site on real parts: a Modbus panel simulator on TCP, `tollgate-edge run` as a child
process, `tollgate-cloud serve` on SQLite or PostgreSQL (the `db_url` fixture)."""

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from firmware_sims.modbus_panel import ModbusPanel, Scenario, SimCounter
from firmware_sims.processes import (
    AgentProcess,
    CollectorProcess,
    committed_counters,
    fetch_events,
)
from firmware_sims.site import SimulatedPanel, Timing, render_site_config
from tests.support.waiting import eventually, free_port

GATEWAY_ID = "site-e2e-gw1"
DEVICE_ID = "panel-1"
COUNTERS = (
    SimCounter("door_open", "input", 0, "uint16", "big", initial=65_530),  # wraps soon
    SimCounter("energy_wh", "holding", 10, "uint32", "little", initial=70_000),
)
FAST = Timing(
    poll_interval="50ms",
    batch_max_wait="100ms",
    batch_max_events=200,
    retry_initial="100ms",
    retry_max="500ms",
    reconnect_initial="100ms",
    reconnect_max="500ms",
)


@dataclass
class Site:
    """Handles on every running part of the site."""

    tmp: Path
    panel: ModbusPanel
    collector: CollectorProcess
    agent: AgentProcess
    client: httpx.AsyncClient

    @property
    def outbox_path(self) -> Path:
        return self.tmp / "edge" / "outbox.sqlite"

    def agent_counters(self) -> dict[str, int]:
        """What the agent has committed as each counter's last value (read-only peek)."""
        return {point: value for (_, point), value in committed_counters(self.outbox_path).items()}

    def outbox_used_bytes(self) -> int:
        """Bytes of the outbox's pages in use (what the budget limits)."""
        db = sqlite3.connect(f"file:{self.outbox_path}?mode=ro", uri=True, timeout=5)
        try:
            pages, free, size = (
                db.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("page_count", "freelist_count", "page_size")
            )
        finally:
            db.close()
        return int((pages - free) * size)

    async def agent_caught_up(self) -> None:
        """Wait until the agent has committed the panel's current value of every counter."""

        async def synced() -> bool:
            seen = self.agent_counters()
            for name in self.panel.counters:
                if seen.get(name) != await self.panel.value(name):
                    return False
            return True

        await eventually(synced, what="the agent to commit the panel's current counters")

    async def stored(self) -> list[dict[str, Any]]:
        return await fetch_events(self.client, gateway_id=GATEWAY_ID)

    async def cloud_totals(self) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = dict.fromkeys(self.panel.counters, Decimal(0))
        for event in await self.stored():
            totals[event["name"]] += Decimal(event["quantity"])
        return totals

    async def cloud_has_everything(self) -> None:
        """Wait until the cloud's deltas add up to the panel's real advance."""
        expected = {name: Decimal(n) for name, n in self.panel.total_advance.items()}

        async def complete() -> bool:
            try:
                return await self.cloud_totals() == expected
            except httpx.HTTPError:
                return False

        await eventually(complete, what=f"the cloud to hold {expected}")

    async def gateway(self) -> dict[str, Any]:
        response = await self.client.get(f"/v1/gateways/{GATEWAY_ID}")
        response.raise_for_status()
        return dict(response.json())


SiteFactory = Callable[..., Awaitable[Site]]


@pytest.fixture
async def make_site(db_url: str, tmp_path: Path) -> AsyncIterator[SiteFactory]:
    """Build a site; everything started is stopped at teardown."""
    started: list[Site] = []

    async def build(
        *,
        outbox_budget_mb: float = 64,
        start_agent: bool = True,
        start_collector: bool = True,
        extra_panels: tuple[SimulatedPanel, ...] = (),
    ) -> Site:
        panel = ModbusPanel(port=0, scenario=Scenario(counters=COUNTERS, tick=0.05))
        await panel.__aenter__()
        config = tmp_path / "site.toml"
        collector = CollectorProcess(
            db_url=db_url, port=free_port(), log_path=tmp_path / "collector.log"
        )
        config.write_text(
            render_site_config(
                gateway_id=GATEWAY_ID,
                cloud_url=collector.url,
                data_dir=tmp_path / "edge",
                panels=[SimulatedPanel(DEVICE_ID, panel.port, COUNTERS), *extra_panels],
                timing=FAST,
                outbox_budget_mb=outbox_budget_mb,
            )
        )
        agent = AgentProcess(config_path=config, log_path=tmp_path / "agent.log")
        pem = tmp_path / "gateway.pub"
        pem.write_text(await agent.keygen())
        await collector.migrate()
        await collector.add_gateway(GATEWAY_ID, pem)
        site = Site(
            tmp_path,
            panel,
            collector,
            agent,
            httpx.AsyncClient(
                base_url=collector.url, timeout=10, headers=collector.reader_headers()
            ),
        )
        started.append(site)
        if start_collector:
            await collector.start()
        if start_agent:
            await agent.spawn()
        return site

    yield build
    for site in started:
        await site.agent.terminate()
        await site.collector.terminate()
        await site.client.aclose()
        await site.panel.__aexit__(None, None, None)


async def query_cloud(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    """Read the collector's database directly (to check what the API does not show)."""
    if db_url.startswith("sqlite"):
        db = sqlite3.connect(db_url.split(":///", 1)[1])
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()
    import asyncpg

    connection = await asyncpg.connect(db_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return [tuple(row) for row in await connection.fetch(sql)]
    finally:
        await connection.close()


@asynccontextmanager
async def running_site(
    *, db_url: str, tmp_path: Path, gateway_id: str, devices: str
) -> AsyncIterator[tuple[AgentProcess, httpx.AsyncClient]]:
    """A registered gateway whose agent runs `devices` (TOML) against a running collector."""
    collector = CollectorProcess(db_url=db_url, port=free_port(), log_path=tmp_path / "c.log")
    config = tmp_path / "site.toml"
    config.write_text(
        f'[gateway]\nid = "{gateway_id}"\ncloud_url = "{collector.url}"\n'
        f'data_dir = "{tmp_path / "edge"}"\n\n[forwarder]\nbatch_max_wait = "100ms"\n{devices}'
    )
    agent = AgentProcess(config_path=config, log_path=tmp_path / "agent.log")
    pem = tmp_path / "gateway.pub"
    pem.write_text(await agent.keygen())
    await collector.migrate()
    await collector.add_gateway(gateway_id, pem)
    async with (
        collector,
        agent,
        httpx.AsyncClient(base_url=collector.url, headers=collector.reader_headers()) as client,
    ):
        yield agent, client


def agent_status(agent: AgentProcess) -> dict[str, Any]:
    """The status the running agent last published (empty before the first one)."""
    path = agent.config_path.parent / "edge" / "status.json"
    return dict(orjson.loads(path.read_bytes())) if path.exists() else {}
