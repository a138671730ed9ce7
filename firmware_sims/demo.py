"""`tollgate-sim demo` (what `make demo` runs): a whole site in a box on embedded defaults.

Two simulated Modbus panels play their scenarios (increments, a 16-bit wrap, a power-cycle
reset); the real agent (`tollgate-edge run`) polls them, commits signed, hash-chained events to
its outbox and forwards them to the real collector (`tollgate-cloud serve` on SQLite). A live
line per device shows what the cloud has stored; at the end the cloud's totals are checked
against what the panels really counted.
"""

import asyncio
import contextlib
import shutil
import socket
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from firmware_sims.modbus_panel import ModbusPanel, default_scenario
from firmware_sims.processes import (
    AgentProcess,
    CollectorProcess,
    committed_counters,
    fetch_events,
)
from firmware_sims.site import SimulatedPanel, Timing, render_site_config

GATEWAY_ID = "demo-site-gw1"
PANEL_TICKS = {"panel-1": 0.5, "panel-2": 0.8}
DEMO_TIMING = Timing(poll_interval="200ms", batch_max_wait="1s")
LIVE_EVERY = 2.0


Totals = dict[str, dict[str, Decimal]]


def totals_by_device(events: list[dict[str, Any]]) -> tuple[Totals, dict[str, int]]:
    """Stored quantity per device and counter, and event count per device."""
    totals: Totals = defaultdict(lambda: defaultdict(Decimal))
    counts: dict[str, int] = defaultdict(int)
    for event in events:
        totals[event["device_id"]][event["name"]] += Decimal(event["quantity"])
        counts[event["device_id"]] += 1
    return totals, counts


def _port(preferred: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Demo:
    """The running site: panels in this process, collector and agent as child processes."""

    def __init__(self, workdir: Path, cloud_port: int) -> None:
        self.workdir = workdir
        self.panels = {
            device: ModbusPanel(port=0, scenario=default_scenario(tick=tick))
            for device, tick in PANEL_TICKS.items()
        }
        self.collector = CollectorProcess(
            db_url=f"sqlite+aiosqlite:///{workdir}/cloud.sqlite",
            port=_port(cloud_port),
            log_path=workdir / "collector.log",
        )
        self.agent = AgentProcess(config_path=workdir / "site.toml", log_path=workdir / "agent.log")

    async def prepare(self) -> None:
        """Config, gateway key, schema, gateway registration."""
        panels = [
            SimulatedPanel(device, panel.port, panel.scenario.counters)
            for device, panel in self.panels.items()
        ]
        self.agent.config_path.write_text(
            render_site_config(
                gateway_id=GATEWAY_ID,
                cloud_url=self.collector.url,
                data_dir=self.workdir / "edge",
                panels=panels,
                timing=DEMO_TIMING,
            )
        )
        pem = self.workdir / "gateway.pub"
        pem.write_text(await self.agent.keygen())
        await self.collector.migrate()
        await self.collector.add_gateway(GATEWAY_ID, pem)

    async def wait_for_baselines(self) -> None:
        """Scenarios start once the agent has read every counter once (so nothing goes unseen)."""
        expected = {
            (device, name) for device, panel in self.panels.items() for name in panel.counters
        }
        while not expected <= committed_counters(self.workdir / "edge" / "outbox.sqlite").keys():
            if not self.agent.running:
                raise RuntimeError(f"the agent stopped; see {self.agent.log_path}")
            await asyncio.sleep(0.1)

    def banner(self) -> str:
        """Where to look."""
        url = self.collector.url
        lines = [
            "Tollgate site-in-a-box",
            f"  collector  {url}  (API docs {url}/docs, events {url}/v1/events,"
            f" gateway {url}/v1/gateways/{GATEWAY_ID})",
            f"  agent      tollgate-edge run --config {self.agent.config_path}"
            f"  (JSON log {self.agent.log_path})",
        ]
        lines += [
            f"  {device:9}  modbus tcp://127.0.0.1:{panel.port}  {panel.register_map()}"
            for device, panel in self.panels.items()
        ]
        lines.append("  Ctrl-C stops the demo.")
        return "\n".join(lines)

    async def live(self, client: httpx.AsyncClient) -> None:
        """Print a line per device with what the cloud has stored, every few seconds."""
        while True:
            await asyncio.sleep(LIVE_EVERY)
            with contextlib.suppress(httpx.HTTPError):
                events = await fetch_events(client, gateway_id=GATEWAY_ID)
                totals, counts = totals_by_device(events)
                stamp = time.strftime("%H:%M:%S")
                last_seq = events[-1]["seq"] if events else 0
                for device, panel in self.panels.items():
                    shown = "  ".join(f"{name} {totals[device][name]}" for name in panel.counters)
                    print(
                        f"{stamp} {device}: {counts[device]} events stored "
                        f"(gateway seq {last_seq})  {shown}",
                        flush=True,
                    )

    async def settle(self, client: httpx.AsyncClient, limit: float = 15.0) -> bool:
        """After the panels stop, wait for the cloud to hold everything they counted."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while loop.time() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                events = await fetch_events(client, gateway_id=GATEWAY_ID)
                if self.mismatches(totals_by_device(events)[0]) == []:
                    return True
            await asyncio.sleep(0.25)
        return False

    def mismatches(self, totals: Totals) -> list[str]:
        """Counters whose cloud total differs from the panel's real usage."""
        wrong = []
        for device, panel in self.panels.items():
            for name, truth in panel.total_advance.items():
                stored = totals.get(device, {}).get(name, Decimal(0))
                if stored != truth:
                    wrong.append(f"{device}.{name}: panel counted {truth}, cloud stored {stored}")
        return wrong


def fresh_workdir(workdir: Path) -> Path:
    """Demo state starts empty each run."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    return workdir.resolve()


async def run_demo(*, duration: float | None, workdir: Path, cloud_port: int = 8000) -> int:
    """Run the site-in-a-box until Ctrl-C or `duration` seconds; 0 when the books balance."""
    demo = Demo(fresh_workdir(workdir), cloud_port)
    async with contextlib.AsyncExitStack() as stack:
        for panel in demo.panels.values():
            await stack.enter_async_context(panel)
        await demo.prepare()
        await stack.enter_async_context(demo.collector)
        await stack.enter_async_context(demo.agent)
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=demo.collector.url))
        await demo.wait_for_baselines()
        print(demo.banner(), flush=True)
        tasks = [asyncio.create_task(panel.run_forever()) for panel in demo.panels.values()]
        tasks.append(asyncio.create_task(demo.live(client)))
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(duration):
                    await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            print("\nstopping (Ctrl-C)", flush=True)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return await demo_summary(demo, client)
    return 1


async def demo_summary(demo: Demo, client: httpx.AsyncClient) -> int:
    """Let the last batch land, then compare the cloud with the panels' own counts."""
    balanced = await demo.settle(client)
    totals, _ = totals_by_device(await fetch_events(client, gateway_id=GATEWAY_ID))
    print("\nWhat the panels counted vs what the cloud stored:")
    for device, panel in demo.panels.items():
        for name, truth in panel.total_advance.items():
            stored = totals.get(device, {}).get(name, Decimal(0))
            mark = "ok" if stored == truth else "MISMATCH"
            print(f"  {device}.{name:10} panel {truth:>10}  cloud {stored:>10}  {mark}")
    gateway = (await client.get(f"/v1/gateways/{GATEWAY_ID}")).json()
    print(
        f"gateway {GATEWAY_ID}: last seq {gateway.get('last_seq')}, "
        f"missing ranges {gateway.get('missing_ranges')}, incidents {gateway.get('incidents')}"
    )
    print(f"state kept in {demo.workdir}")
    return 0 if balanced else 1
