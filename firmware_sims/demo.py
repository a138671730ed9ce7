"""`tollgate-sim demo` (what `make demo` runs): a whole site in a box on embedded defaults.

Two simulated Modbus panels play their scenarios (increments, a 16-bit wrap, a power-cycle
reset) and two battery BLE locks (a waste lock weighing each pour, a door lock) log on a
virtual air whose gateway radio is served as an HCI dongle on TCP; a camera and a home hub
publish JSON over MQTT (to `--broker`, or an embedded amqtt broker); the real agent
(`tollgate-edge run`) polls and drains them, commits signed, hash-chained events to
its outbox and forwards them to the real collector (`tollgate-cloud serve` on SQLite). A live
line per device shows what the cloud has stored; at the end the cloud's totals are checked
against what the panels really counted, the locks really logged and the MQTT devices
really published. Then the month is invoiced: the company's draft is finalized (forced: the
period is still open), one of its lines is credited, and the invoices and the credit note are
written to the workdir as HTML, PDF and Factur-X, the documents a customer receives (the seller
on them is demo_seller.toml; the billing is firmware_sims/demo_billing.py).

The terminal gets the banner, the live lines, the balance check and, last, a few lines per account
(its invoice's number, state and gross, the paths of its files); the long printouts (each draft as
`invoice show` prints it, the sessions behind it, each document's VAT summary) go to
`billing-details.txt` in the workdir, and to the terminal too with `--verbose`. Each run starts
from an empty workdir and says so when it empties an earlier run's: continuing from it would start
a new gateway key and fresh panel counters against the old cloud database, and bill and finalize
the same month a second time.
"""

import asyncio
import contextlib
import logging
import shutil
import signal
import socket
import sys
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from edge.diagnostics.password import store_password
from firmware_sims.ble_air import VirtualAir
from firmware_sims.ble_lock import SimLock, lock_address
from firmware_sims.ble_lock import default_scenario as lock_scenario
from firmware_sims.demo_billing import (
    DETAILS,
    SELLER,
    Books,
    DetailLog,
    customer_documents,
    print_invoices,
)
from firmware_sims.demo_direct import feed_direct_source, register_source
from firmware_sims.embedded_broker import broker_url
from firmware_sims.modbus_panel import ModbusPanel, default_scenario
from firmware_sims.mqtt_device import (
    MqttDevice,
    SimulatedMqttSite,
    render_broker,
    render_devices,
)
from firmware_sims.processes import (
    AgentProcess,
    CollectorProcess,
    committed_counters,
    fetch_events,
)
from firmware_sims.site import SimulatedLocks, SimulatedPanel, Timing, render_site_config

GATEWAY_ID = "demo-site-gw1"
CATALOG = Path(__file__).with_name("demo_catalog.toml")
PANEL_TICKS = {"panel-1": 0.5, "panel-2": 0.8}
PANEL_UNITS = (("energy_wh", "Wh"), ("runtime_s", "s"))  # the other counters count ("count")
LOCK_IDS = {"waste-lock-1": 101, "door-lock-1": 102}
LOCK_TICK = 1.0
DIAGNOSTICS_PASSWORD = "tollgate-demo"  # the demo's only; a real gateway's is set at init/enroll
CONSOLE_USER = "demo"  # a billing user of the console (the demo's only; `tollgate-cloud user add`)
CONSOLE_PASSWORD = "tollgate-demo-console"
MQTT_PREFIX = "demo-site"
MQTT_TICK = 1.0
DEMO_TIMING = Timing(poll_interval="200ms", batch_max_wait="1s")
LIVE_EVERY = 2.0
MARKER = ".tollgate-demo"  # marks a workdir as the demo's: only such a directory is emptied
EARLIER_RUN = ("site.toml", "cloud.sqlite")  # what a workdir of a demo without MARKER held


Totals = dict[str, dict[str, Decimal]]


def totals_by_device(events: list[dict[str, Any]]) -> tuple[Totals, dict[str, int]]:
    """Stored quantity per device and counter, and event count per device."""
    totals: Totals = defaultdict(lambda: defaultdict(Decimal))
    counts: dict[str, int] = defaultdict(int)
    for event in events:
        totals[event["device_id"]][event["name"]] += Decimal(event["quantity"] or 0)
        counts[event["device_id"]] += 1
    return totals, counts


class WorkdirRefused(Exception):
    """The workdir holds files that are not an earlier demo run's: the demo will not empty it."""


def _port(preferred: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Demo:
    """The running site: panels in this process, collector and agent as child processes."""

    def __init__(self, workdir: Path, cloud_port: int, *, verbose: bool = False) -> None:
        self.workdir = workdir
        self.panels = {
            device: ModbusPanel(port=0, scenario=default_scenario(tick=tick))
            for device, tick in PANEL_TICKS.items()
        }
        port = _port(cloud_port)
        self.collector = CollectorProcess(
            db_url=f"sqlite+aiosqlite:///{workdir}/cloud.sqlite",
            port=port,
            log_path=workdir / "collector.log",
            # the seller on invoices; absolute links in exported files (this collector's URL)
            env={"TOLLGATE_SELLER": str(SELLER), "TOLLGATE_PUBLIC_URL": f"http://127.0.0.1:{port}"},
        )
        self.books = Books(self.collector, workdir, DetailLog(workdir / DETAILS, echo=verbose))
        self.agent = AgentProcess(config_path=workdir / "site.toml", log_path=workdir / "agent.log")
        self.diagnostics_port = _port(8080)
        self.air = VirtualAir(port=0)
        self.locks: dict[str, SimLock] = {}
        self.mqtt_site = SimulatedMqttSite(MQTT_PREFIX)
        self.broker_url = ""
        self.mqtt: MqttDevice | None = None
        self.source_key = ""  # the direct source's ingest key, made by prepare()

    async def open_mqtt(self, stack: contextlib.AsyncExitStack, broker: str | None) -> None:
        """The broker (embedded unless one is given) and the publishing camera and home hub."""
        self.broker_url = await stack.enter_async_context(broker_url(broker))
        device = MqttDevice(self.broker_url, prefix=MQTT_PREFIX)
        self.mqtt = await stack.enter_async_context(device)

    @property
    def mqtt_devices(self) -> list[str]:
        """The MQTT device ids of the site config."""
        return [*self.mqtt_site.cameras, self.mqtt_site.home_id]

    def mqtt_published(self) -> dict[str, int]:
        """Events published so far, per MQTT device."""
        published = dict.fromkeys(self.mqtt_devices, 0)
        for event in self.mqtt.expected if self.mqtt else []:
            published[event.device_id] += 1
        return published

    async def open_locks(self, stack: contextlib.AsyncExitStack) -> None:
        """The BLE locks on their virtual air (a waste lock, then a door lock)."""
        await stack.enter_async_context(self.air)
        for index, (device_id, lock_id) in enumerate(LOCK_IDS.items()):
            device = await self.air.add_peripheral(device_id, lock_address(index))
            scenario = lock_scenario(index, seed=lock_id, tick=LOCK_TICK)
            lock = SimLock(device, lock_id=lock_id, scenario=scenario)
            self.locks[device_id] = await stack.enter_async_context(lock)

    async def prepare(self) -> None:
        """Config, gateway key, schema, gateway registration."""
        panels = [
            SimulatedPanel(device, panel.port, panel.scenario.counters, point_units=PANEL_UNITS)
            for device, panel in self.panels.items()
        ]
        site = render_site_config(
            gateway_id=GATEWAY_ID,
            cloud_url=self.collector.url,
            data_dir=self.workdir / "edge",
            panels=panels,
            timing=DEMO_TIMING,
            locks=SimulatedLocks(self.air.backend, tuple(LOCK_IDS.items())),
        )
        mqtt = render_broker(self.broker_url, GATEWAY_ID) + render_devices(self.mqtt_site)
        page = f'[diagnostics]\nlisten = "127.0.0.1:{self.diagnostics_port}"\n'
        self.agent.config_path.write_text(f"{site}\n{page}\n{mqtt}")
        store_password(self.workdir / "edge", DIAGNOSTICS_PASSWORD)
        pem = self.workdir / "gateway.pub"
        pem.write_text(await self.agent.keygen())
        await self.collector.migrate()
        await self.collector.add_gateway(GATEWAY_ID, pem)
        await self.collector.admin("catalog", "load", str(CATALOG))
        secret = self.workdir / "console.password"
        secret.write_text(CONSOLE_PASSWORD + "\n")
        secret.chmod(0o600)
        await self.collector.admin(
            "user",
            "add",
            "--name",
            CONSOLE_USER,
            "--role",
            "billing",
            "--password-file",
            str(secret),
        )
        self.source_key = await register_source(self.collector)

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
            f"  console    {url}/console (log in as {CONSOLE_USER!r}, password "
            f"{CONSOLE_PASSWORD!r}: accounts, devices, drafts and their evidence)",
            f"  page       http://127.0.0.1:{self.diagnostics_port}/ (technician password "
            f"{DIAGNOSTICS_PASSWORD!r})",
            f"  agent      tollgate-edge run --config {self.agent.config_path}"
            f"  (JSON log {self.agent.log_path})",
        ]
        lines += [
            f"  {device:9}  modbus tcp://127.0.0.1:{panel.port}  {panel.register_map()}"
            for device, panel in self.panels.items()
        ]
        lines += [
            f"  {device:9}  ble lock {lock.lock_id} on {self.air.backend}"
            for device, lock in self.locks.items()
        ]
        lines += [f"  {device:9}  mqtt {self.broker_url}" for device in self.mqtt_devices]
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
                for device, lock in self.locks.items():
                    print(
                        f"{stamp} {device}: {counts[device]} of {lock.counter} log entries "
                        f"stored, {lock.counter - lock.acked} waiting on the lock",
                        flush=True,
                    )
                for device, published in self.mqtt_published().items():
                    print(
                        f"{stamp} {device}: {counts[device]} of {published} MQTT messages stored",
                        flush=True,
                    )

    async def settle(self, client: httpx.AsyncClient, limit: float = 15.0) -> bool:
        """After the panels stop, wait for the cloud to hold everything they counted."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while loop.time() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                events = await fetch_events(client, gateway_id=GATEWAY_ID)
                if self.mismatches(*totals_by_device(events)) == []:
                    return True
            await asyncio.sleep(0.25)
        return False

    def mismatches(self, totals: Totals, counts: dict[str, int]) -> list[str]:
        """Counters whose cloud total differs from the panel's real usage, and locks whose
        logged entries are not all stored."""
        wrong = [
            f"{device}: lock logged {lock.counter}, cloud stored {counts.get(device, 0)}"
            for device, lock in self.locks.items()
            if counts.get(device, 0) != lock.counter
        ]
        wrong += [
            f"{device}: published {published}, cloud stored {counts.get(device, 0)}"
            for device, published in self.mqtt_published().items()
            if counts.get(device, 0) != published
        ]
        for device, panel in self.panels.items():
            for name, truth in panel.total_advance.items():
                stored = totals.get(device, {}).get(name, Decimal(0))
                if stored != truth:
                    wrong.append(f"{device}.{name}: panel counted {truth}, cloud stored {stored}")
        return wrong


def fresh_workdir(workdir: Path) -> tuple[Path, str | None]:
    """An empty, marked workdir, and the notice to print when an earlier run's was emptied.

    Only a directory an earlier demo left (its marker, or its config and cloud database) is
    emptied; any other non-empty directory is refused, so `--workdir ~` deletes nothing."""
    notice = None
    if workdir.is_dir() and any(workdir.iterdir()):
        if not any((workdir / name).exists() for name in (MARKER, *EARLIER_RUN)):
            raise WorkdirRefused(
                f"--workdir {workdir} is not empty and holds no earlier demo run "
                f"(no {MARKER}, site.toml or cloud.sqlite): the demo empties its workdir "
                "first, so give it a new or empty directory"
            )
        notice = (
            f"{workdir}/ from an earlier run was reset: each run starts over (a new gateway, "
            "fresh counters, this month billed once); copy it elsewhere first to keep it"
        )
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text("tollgate-sim demo's workdir: the next run empties it\n")
    return workdir.resolve(), notice


async def run_demo(
    *,
    duration: float | None,
    workdir: Path,
    cloud_port: int = 8000,
    broker: str | None = None,
    verbose: bool = False,
    stay: bool | None = None,
) -> int:
    """Run the site-in-a-box until Ctrl-C or `duration` seconds; 0 when the books balance.
    Then, with `stay` (default: run on a terminal without `duration`), keep the collector and its
    console up with the invoices until Ctrl-C or SIGTERM."""
    directory, notice = fresh_workdir(workdir)
    if notice:
        print(notice, flush=True)
    demo = Demo(directory, cloud_port, verbose=verbose)
    # The simulated panels' server logs a client that hangs up mid-answer (the agent stopping)
    # as an error with a frame dump; the agent's own log is where the demo's story is.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    async with contextlib.AsyncExitStack() as stack:
        for panel in demo.panels.values():
            await stack.enter_async_context(panel)
        await demo.open_locks(stack)
        await demo.open_mqtt(stack, broker)
        await demo.prepare()
        await stack.enter_async_context(demo.collector)
        await stack.enter_async_context(demo.agent)
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=demo.collector.url, headers=demo.collector.reader_headers())
        )
        await demo.wait_for_baselines()
        print(demo.banner(), flush=True)
        tasks = [asyncio.create_task(panel.run_forever()) for panel in demo.panels.values()]
        tasks += [asyncio.create_task(lock.run_forever()) for lock in demo.locks.values()]
        if demo.mqtt is not None:
            tasks.append(asyncio.create_task(demo.mqtt.run_forever()))
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
        code = await demo_summary(demo, client)
        if stay if stay is not None else duration is None and sys.stdin.isatty():
            print(
                f"\nThe console stays up with these invoices: {demo.collector.url}/console "
                f"(log in as {CONSOLE_USER!r}, password {CONSOLE_PASSWORD!r}). Ctrl-C to stop.",
                flush=True,
            )
            await until_interrupted()
        return code
    return 1


async def until_interrupted() -> None:
    """Wait for Ctrl-C (SIGINT) or SIGTERM; the demo's processes then stop as usual."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def demo_summary(demo: Demo, client: httpx.AsyncClient) -> int:
    """Let the last batch land, then compare the cloud with the panels' own counts."""
    balanced = await demo.settle(client)
    totals, counts = totals_by_device(await fetch_events(client, gateway_id=GATEWAY_ID))
    print("\nWhat the panels counted vs what the cloud stored:")
    for device, panel in demo.panels.items():
        for name, truth in panel.total_advance.items():
            stored = totals.get(device, {}).get(name, Decimal(0))
            mark = "ok" if stored == truth else "MISMATCH"
            print(f"  {device}.{name:10} panel {truth:>10}  cloud {stored:>10}  {mark}")
    for device, lock in demo.locks.items():
        stored_entries = counts.get(device, 0)
        mark = "ok" if stored_entries == lock.counter else "MISMATCH"
        print(
            f"  {device:16} lock logged {lock.counter:>4}  cloud {stored_entries:>4}"
            f"  acked {lock.acked:>4}  {mark}"
        )
    for device, published in demo.mqtt_published().items():
        stored_messages = counts.get(device, 0)
        mark = "ok" if stored_messages == published else "MISMATCH"
        print(f"  {device:16} published {published:>4}  cloud {stored_messages:>4}  {mark}")
    gateway = (await client.get(f"/v1/gateways/{GATEWAY_ID}")).json()
    print(
        f"gateway {GATEWAY_ID}: last seq {gateway.get('last_seq')}, "
        f"missing ranges {gateway.get('missing_ranges')}, incidents {gateway.get('incidents')}"
    )
    print(fleet_line(gateway, await open_incidents(client)))
    await feed_direct_source(demo.collector, client, key=demo.source_key, workdir=demo.workdir)
    invoice_of = await print_invoices(demo.books)
    await customer_documents(demo.books, client, invoice_of)
    print(result_lines(demo), flush=True)
    return 0 if balanced else 1


def result_lines(demo: Demo) -> str:
    """The end of the demo: per account its invoice and files, then where everything else is."""
    details = demo.books.details.path
    lines = [f"\nResult per account (invoices, sessions and VAT summaries: {details}):"]
    for outcome in demo.books.outcomes.values():
        lines += outcome.lines()
    lines += [
        f"  collector  {demo.collector.url} stopped with the demo; its database "
        f"{demo.workdir / 'cloud.sqlite'}, its log {demo.collector.log_path}",
        f"  agent      log {demo.agent.log_path}, outbox {demo.workdir / 'edge' / 'outbox.sqlite'}",
        f"  state kept in {demo.workdir} until the next run, which empties it and says so",
    ]
    return "\n".join(lines)


async def open_incidents(client: httpx.AsyncClient) -> dict[str, int]:
    """Open data-quality incidents by kind (the first page: the demo has a few)."""
    answer = await client.get("/v1/quality/incidents", params={"state": "open", "limit": 500})
    kinds: dict[str, int] = {}
    for incident in answer.json().get("incidents", []):
        kinds[incident["kind"]] = kinds.get(incident["kind"], 0) + 1
    return kinds


def fleet_line(gateway: dict[str, Any], incidents: dict[str, int]) -> str:
    """The fleet view in one line: the gateway twin's status and heartbeat, open incidents."""
    heartbeat = (gateway.get("heartbeat") or {}).get("outbox") or {}
    opened = ", ".join(f"{kind} {count}" for kind, count in sorted(incidents.items())) or "none"
    return (
        f"fleet view: gateway {gateway.get('status')}, last heartbeat "
        f"{gateway.get('last_heartbeat_at')} (outbox backlog {heartbeat.get('backlog_events')}); "
        f"open incidents: {opened} (tollgate-cloud quality list, GET /v1/twins)"
    )
