"""`make bench`: BLE locks and MQTT devices through the real agent into its outbox.

1. BLE: `--locks` simulated locks on a virtual air each hold `--entries` log entries; one agent
   (bleak over the Bumble backend on the air's HCI TCP port, `max_connections` 3) drains them
   all: commit, then acknowledge, page by page. Reported: entries/s and locks/s until every lock
   has acknowledged everything.
2. MQTT, live: `--messages` QoS 1 messages published to Mosquitto (127.0.0.1:1883) by the
   camera simulator while one agent takes them (commit, then PUBACK). Reported: messages/s from
   the first publish until all are in the outbox; the simulator's own publish rate bounds it.
3. MQTT, backlog: the agent's persistent session on a private Mosquitto holds `--messages`
   queued messages (the gateway was offline); reported: messages/s for a fresh agent to drain
   them, with Mosquitto's default of 20 messages in flight per client and with 200.

Both are end to end on real transports; the numbers include the virtual radio and the broker.
"""

import argparse
import asyncio
import logging
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from decimal import Decimal
from pathlib import Path

from edge.agent import Agent
from edge.config import parse_config
from firmware_sims.ble_air import VirtualAir
from firmware_sims.ble_lock import Close, Open, Scenario, SimLock, lock_address
from firmware_sims.mqtt_device import (
    MqttDevice,
    SimulatedMqttSite,
    StreamStart,
    StreamStop,
    render_broker,
    render_devices,
)
from firmware_sims.site import SimulatedLocks, render_site_config
from tests.support.waiting import free_port

BROKER = "mqtt://127.0.0.1:1883"
MOSQUITTO = "/usr/sbin/mosquitto"


def camera_steps(count: int) -> list[StreamStart | StreamStop]:
    """Stream starts and stops in turn (the stops carry 2.5 minutes)."""
    return [StreamStart() if n % 2 == 0 else StreamStop(Decimal("2.5")) for n in range(count)]


def gateway_section(data_dir: Path) -> str:
    return render_site_config(
        gateway_id="bench-edge", cloud_url="http://127.0.0.1:9", data_dir=data_dir, panels=[]
    )


def stored_count(data_dir: Path) -> int:
    path = data_dir / "outbox.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM events").fetchone()[0])


async def run_until(config: str, done: Callable[[], bool]) -> float:
    """Run an agent on `config` until `done()`; return the seconds it took."""
    agent = Agent(parse_config(config, source="bench"))
    stop = asyncio.Event()
    start = time.perf_counter()
    task = asyncio.create_task(agent.run(stop))
    try:
        while not done():
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        return time.perf_counter() - start
    finally:
        stop.set()
        await task


async def ble_rate(work: Path, locks: int, entries: int) -> tuple[float, float]:
    """Drain `locks` x `entries` entries; return (entries/s, locks/s)."""
    async with VirtualAir(port=0) as air, AsyncExitStack() as stack:
        sims = []
        for index in range(locks):
            device = await air.add_peripheral(f"lock-{index}", lock_address(index))
            sim = SimLock(device, lock_id=index + 1, scenario=Scenario(()), capacity=entries)
            sims.append(await stack.enter_async_context(sim))
            for n in range(entries // 2):
                await sim.play([Open(badge=n), Close(badge=n, amount=Decimal("1.5"), unit="kg")])
        radio = SimulatedLocks(air.backend, tuple((f"lock-{n}", n) for n in range(1, locks + 1)))
        config = render_site_config(
            gateway_id="bench-edge",
            cloud_url="http://127.0.0.1:9",
            data_dir=work / "ble",
            panels=[],
            locks=radio,
        )
        seconds = await run_until(config, lambda: all(s.acked == s.counter for s in sims))
    total = stored_count(work / "ble")
    if total != locks * (entries // 2) * 2:
        raise AssertionError(f"stored {total} entries, expected {locks * entries}")
    return total / seconds, locks / seconds


async def mqtt_rate(work: Path, messages: int) -> float:
    """Publish `messages` camera messages and time them into the outbox; messages/s."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    data_dir = work / "mqtt"
    config = (
        gateway_section(data_dir)
        + "\n"
        + render_broker(BROKER, f"bench-{uuid.uuid4().hex[:8]}", clean_session="true")
        + render_devices(SimulatedMqttSite(prefix))
    )
    steps = [StreamStart() if n % 2 == 0 else StreamStop(Decimal("2.5")) for n in range(messages)]
    async with MqttDevice(BROKER, prefix=prefix) as device:
        agent_done = asyncio.Event()

        async def publish_when_subscribed() -> None:
            await asyncio.sleep(1.0)  # the agent subscribes (clean session: nothing queued)
            started.append(time.perf_counter())
            for offset in range(0, messages, 200):
                await device.burst(steps[offset : offset + 200])
            await agent_done.wait()

        started: list[float] = []
        publisher = asyncio.create_task(publish_when_subscribed())
        await run_until(config, lambda: stored_count(data_dir) >= messages)
        finished = time.perf_counter()
        agent_done.set()
        await publisher
    return messages / (finished - started[0])


async def mqtt_backlog_rate(work: Path, messages: int, inflight: int) -> float:
    """A fresh agent drains `messages` queued for its persistent session; messages/s."""
    port = free_port()
    conf = work / f"mosquitto-{inflight}.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
        f"max_inflight_messages {inflight}\npersistence false\nlog_type none\nuser root\n"
    )
    broker = await asyncio.create_subprocess_exec(
        MOSQUITTO, "-c", str(conf), stderr=asyncio.subprocess.DEVNULL
    )
    try:
        await asyncio.sleep(0.5)
        url = f"mqtt://127.0.0.1:{port}"
        prefix, data_dir = f"backlog-{inflight}", work / f"backlog-{inflight}"
        config = (
            gateway_section(data_dir)
            + "\n"
            + render_broker(url, f"bench-backlog-{inflight}")
            + render_devices(SimulatedMqttSite(prefix))
        )
        subscribed_at = time.perf_counter() + 1.0
        await run_until(config, lambda: time.perf_counter() > subscribed_at)  # makes the session
        steps = [
            StreamStart() if n % 2 == 0 else StreamStop(Decimal("2.5")) for n in range(messages)
        ]
        async with MqttDevice(url, prefix=prefix) as device:
            for offset in range(0, messages, 200):
                await device.burst(steps[offset : offset + 200])
        seconds = await run_until(config, lambda: stored_count(data_dir) >= messages)
    finally:
        broker.terminate()
        await broker.wait()
    return messages / seconds


async def main(locks: int, entries: int, messages: int) -> None:
    with tempfile.TemporaryDirectory(prefix="tollgate-bench-") as tmp:
        work = Path(tmp)
        per_entry, per_lock = await ble_rate(work, locks, entries)
        print(
            f"BLE locks, {locks} locks x {entries} entries, one agent, 3 connections at once "
            f"(bleak over Bumble, virtual air on HCI/TCP): {per_entry:,.0f} entries/s, "
            f"{per_lock:,.1f} locks drained/s"
        )
        rate = await mqtt_rate(work, messages)
        print(
            f"MQTT live, {messages:,} QoS 1 messages via Mosquitto 127.0.0.1:1883, ack after "
            f"commit: {rate:,.0f} messages/s (bounded by the simulator's publishing)"
        )
        for inflight in (20, 200):
            backlog = await mqtt_backlog_rate(work, messages, inflight)
            print(
                f"MQTT backlog, {messages:,} queued messages drained by a fresh agent, broker "
                f"max_inflight_messages {inflight}: {backlog:,.0f} messages/s"
            )


if __name__ == "__main__":
    logging.getLogger("mqtt").setLevel(logging.ERROR)  # aiomqtt's "pending publish calls"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locks", type=int, default=20)
    parser.add_argument("--entries", type=int, default=100)
    parser.add_argument("--messages", type=int, default=5_000)
    options = parser.parse_args()
    asyncio.run(main(options.locks, options.entries, options.messages))
