"""The BLE lock driver end to end in one process: simulated locks on a virtual air, the real agent
(writer, outbox file) reaching them through bleak with the Bumble backend over the air's HCI
TCP port, exactly as a gateway opens a USB dongle. Nothing is mocked.
"""

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from bumble.device import Connection

from edge.codecs.ble_lock_mapping import lock_time
from edge.config import parse_config
from firmware_sims.ble_air import VirtualAir
from firmware_sims.ble_lock import (
    BackInRange,
    Close,
    DropNextRead,
    FactoryReset,
    Open,
    OutOfRange,
    Scenario,
    SimLock,
    StepClock,
    lock_address,
)
from firmware_sims.site import SimulatedLocks, Timing, render_site_config
from tests.support.agent import running_agent
from tests.support.waiting import eventually

TIMING = Timing(reconnect_initial="100ms", reconnect_max="500ms")


def pours(count: int) -> list[Open | Close]:
    steps: list[Open | Close] = []
    for n in range(count):
        steps += [
            Open(badge=1000 + n),
            Close(badge=1000 + n, amount=Decimal(f"{n}.125"), unit="kg"),
        ]
    return steps


@asynccontextmanager
async def lock_site(
    tmp_path: Path,
    count: int,
    *,
    max_connections: int = 3,
    budget_mb: float = 64,
    lock_class: type[SimLock] = SimLock,
) -> AsyncIterator[tuple[VirtualAir, list[SimLock]]]:
    """`count` idle locks (ids 1..count) on an air; the test plays their steps."""
    async with VirtualAir(port=0) as air, AsyncExitStack() as stack:
        locks = []
        for index in range(count):
            device = await air.add_peripheral(f"lock-{index + 1}", lock_address(index))
            lock = lock_class(device, lock_id=index + 1, scenario=Scenario(steps=()))
            locks.append(await stack.enter_async_context(lock))
        yield air, locks


def site_config(tmp_path: Path, air: VirtualAir, count: int, **options: Any) -> str:
    radio = SimulatedLocks(
        backend=air.backend,
        locks=tuple((f"lock-{n}", n) for n in range(1, count + 1)),
        max_connections=options.get("max_connections", 3),
    )
    return render_site_config(
        gateway_id="gw-ble",
        cloud_url="http://127.0.0.1:9",
        data_dir=tmp_path / "edge",
        panels=[],
        timing=TIMING,
        locks=radio,
        outbox_budget_mb=options.get("budget_mb", 64),
    )


def stored(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "edge" / "outbox.sqlite"
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT wire FROM events ORDER BY seq")
        return [orjson.loads(wire) for (wire,) in rows]


def all_acked(locks: list[SimLock]) -> Callable[[], bool]:
    return lambda: all(lock.counter > 0 and lock.acked == lock.counter for lock in locks)


def entries_of(events: list[dict[str, Any]], device_id: str) -> list[tuple[Any, ...]]:
    return [
        (e["attrs"]["lock_seq"], e["name"], e["attrs"]["badge"], e["quantity"], e["unit"])
        for e in events
        if e["device_id"] == device_id
    ]


def logged(lock: SimLock) -> list[tuple[Any, ...]]:
    return [
        (
            entry.seq,
            entry.action,
            entry.badge,
            str(entry.amount) if entry.unit else None,
            entry.unit,
        )
        for entry in lock.report.logged
    ]


async def test_every_entry_is_committed_once_then_acknowledged(tmp_path: Path) -> None:
    async with lock_site(tmp_path, 3) as (air, locks):
        for lock in locks:
            await lock.play(pours(15))  # 30 entries: two pages of 22 and 8
        async with running_agent(site_config(tmp_path, air, 3)) as agent:
            await eventually(all_acked(locks), what="every lock acknowledged")
            # A lock has its acknowledge a moment before the drain records its outcome.
            lock_2 = agent.health["lock-2"]
            await eventually(lambda: lock_2.state == "ok", what="lock-2's drain recorded")
            health = lock_2.as_dict()
    events = stored(tmp_path)
    for lock in locks:
        assert entries_of(events, f"lock-{lock.lock_id}") == logged(lock)
        assert lock.pending == []
    assert [e["seq"] for e in events] == list(range(1, 91))
    closed = next(e for e in events if e["name"] == "closed")
    assert (closed["kind"], closed["quantity"], closed["unit"]) == ("deactivation", "0.125", "kg")
    assert {e["clock"] for e in events} == {"device"}
    assert health["state"] == "ok" and health["last_values"]["committed_seq"] == 30
    assert health["last_values"]["battery"] == 87


async def test_a_drifted_lock_clock_is_measured_and_corrected(tmp_path: Path) -> None:
    async with lock_site(tmp_path, 1) as (air, locks):
        lock = locks[0]
        await lock.play([StepClock(delta_ms=90_000), Open(badge=7), Close(badge=7)])
        async with running_agent(site_config(tmp_path, air, 1)):
            await eventually(all_acked(locks), what="the lock acknowledged")
    events = stored(tmp_path)
    offset = events[0]["attrs"]["clock_offset_ms"]
    assert 85_000 < offset < 95_000  # the 90 s step, give or take the link's delay
    for event, entry in zip(events, lock.report.logged, strict=True):
        assert event["attrs"]["lock_time"] == lock_time(entry.lock_time_ms).isoformat().replace(
            "+00:00", "Z"
        )
        corrected = lock_time(entry.lock_time_ms - offset).isoformat().replace("+00:00", "Z")
        assert event["occurred_at"] == corrected


class CountedLinks(SimLock):
    """Counts the links open across every lock of the test, and the most at once."""

    live = 0
    most = 0

    def _on_connection(self, connection: Connection) -> None:
        super()._on_connection(connection)
        CountedLinks.live += 1
        CountedLinks.most = max(CountedLinks.most, CountedLinks.live)

    def _on_disconnection(self, connection: Connection) -> None:
        super()._on_disconnection(connection)
        CountedLinks.live -= 1


async def test_twenty_locks_share_three_connections(tmp_path: Path) -> None:
    CountedLinks.live = CountedLinks.most = 0
    async with lock_site(tmp_path, 20, lock_class=CountedLinks) as (air, locks):
        for lock in locks:
            await lock.play(pours(3))
        async with running_agent(site_config(tmp_path, air, 20, max_connections=3)):
            await eventually(all_acked(locks), what="all 20 locks acknowledged")
    events = stored(tmp_path)
    assert 1 <= CountedLinks.most <= 3  # never more than max_connections locks at once
    assert len(events) == 20 * 6
    for lock in locks:
        assert entries_of(events, f"lock-{lock.lock_id}") == logged(lock)


async def test_link_drop_mid_read_and_out_of_range_lose_nothing(tmp_path: Path) -> None:
    async with lock_site(tmp_path, 2) as (air, locks):
        first, second = locks
        await first.play([DropNextRead(after_first_segment=True), *pours(12)])
        await second.play([DropNextRead(), *pours(2), OutOfRange()])
        async with running_agent(site_config(tmp_path, air, 2)) as agent:
            await eventually(
                lambda: first.acked == first.counter, what="the first lock acknowledged"
            )
            await second.play([*pours(2)])  # logs while out of range
            assert second.acked < second.counter
            await second.play([BackInRange()])
            await eventually(all_acked(locks), what="both locks acknowledged")
            failures = agent.health["lock-1"].errors
    events = stored(tmp_path)
    assert first.report.dropped_reads == 1 and second.report.dropped_reads == 1
    assert sum(failures.values()) >= 1
    for lock in locks:
        assert entries_of(events, f"lock-{lock.lock_id}") == logged(lock)


async def test_a_factory_reset_lock_starts_its_seqs_again_and_nothing_is_skipped(
    tmp_path: Path,
) -> None:
    async with lock_site(tmp_path, 1) as (air, locks):
        lock = locks[0]
        await lock.play(pours(3))
        async with running_agent(site_config(tmp_path, air, 1)) as agent:
            await eventually(all_acked(locks), what="the first six entries acknowledged")
            await lock.play([FactoryReset(), *pours(2)])  # seqs 1..4 again
            await eventually(
                lambda: len(stored(tmp_path)) == 10, what="the entries after the reset"
            )
            await eventually(all_acked(locks), what="the new entries acknowledged")
            resets = agent.health["lock-1"].protocol["lock_reset"]
    assert lock.report.resets == 1 and lock.report.wiped == 0
    assert resets == 1
    assert entries_of(stored(tmp_path), "lock-1") == logged(lock)  # 1..6 then 1..4


class AckLost(SimLock):
    """A lock whose link drops when an acknowledge arrives, before it is applied (the first
    `lose` times): from the gateway's side, a crash between the outbox commit and the ack."""

    lose = 1
    lost = 0

    def _write_ack(self, connection: Connection, value: bytes) -> None:
        if self.lost < self.lose:
            self.lost += 1
            asyncio.get_running_loop().create_task(connection.disconnect())
            return
        super()._write_ack(connection, value)


async def test_a_commit_whose_acknowledge_was_lost_is_not_stored_twice(tmp_path: Path) -> None:
    async with lock_site(tmp_path, 1, lock_class=AckLost) as (air, locks):
        lock = locks[0]
        await lock.play(pours(5))
        async with running_agent(site_config(tmp_path, air, 1)):
            await eventually(all_acked(locks), what="the lock acknowledged in the end")
    assert isinstance(lock, AckLost) and lock.lost == 1
    assert lock.report.connections >= 2  # the entries were read again after the lost ack
    assert entries_of(stored(tmp_path), "lock-1") == logged(lock)


async def test_a_restart_between_commit_and_ack_is_completed_once(tmp_path: Path) -> None:
    async with lock_site(tmp_path, 1, lock_class=AckLost) as (air, locks):
        lock = locks[0]
        assert isinstance(lock, AckLost)
        lock.lose = 1_000_000  # no acknowledge gets through while the first agent runs
        await lock.play(pours(3))
        text = site_config(tmp_path, air, 1)
        async with running_agent(text):
            await eventually(
                lambda: len(stored(tmp_path)) == 6 and lock.lost >= 2, what="commit, lost ack"
            )
        # The agent stopped; the lock still holds all six entries unacknowledged.
        assert lock.acked == 0 and len(lock.pending) == 6
        lock.lose = 0
        async with running_agent(text):
            await eventually(all_acked(locks), what="the restarted agent acknowledged")
    assert entries_of(stored(tmp_path), "lock-1") == logged(lock)


async def test_a_full_outbox_leaves_the_log_on_the_lock(tmp_path: Path) -> None:
    async with lock_site(tmp_path, 1) as (air, locks):
        lock = locks[0]
        await lock.play(pours(200))  # 400 entries: more than 0.05 MB of outbox
        async with running_agent(site_config(tmp_path, air, 1, budget_mb=0.05)) as agent:
            await eventually(lambda: agent.outbox_full, what="the outbox alarm")
            await eventually(
                lambda: agent.health["lock-1"].errors["OutboxFull"] > 0, what="a refusal"
            )
        kept = len(stored(tmp_path))
        assert lock.acked == lock.report.logged[kept - 1].seq if kept else lock.acked == 0
        assert len(lock.pending) == 400 - lock.acked  # nothing acknowledged that is not stored
        async with running_agent(site_config(tmp_path, air, 1, budget_mb=64)):
            await eventually(all_acked(locks), what="the lock drained once there was room")
    assert entries_of(stored(tmp_path), "lock-1") == logged(lock)


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ("bumble:tcp-client:nowhere", "port"),
        ("bumble:carrier-pigeon:1", "unknown Bumble transport"),
        ("hci0", "unknown BLE backend"),
    ],
)
def test_a_bad_backend_is_a_config_error_naming_the_field(backend: str, message: str) -> None:
    from edge.errors import ConfigError

    gateway = '[gateway]\nid = "g"\ncloud_url = "http://x"\ndata_dir = "/tmp/x"\n'
    text = f'{gateway}[ble]\nbackend = "{backend}"\n'
    with pytest.raises(ConfigError, match=message) as error:
        parse_config(text, source="site.toml")
    assert "backend" in str(error.value) and "site.toml" in str(error.value)
