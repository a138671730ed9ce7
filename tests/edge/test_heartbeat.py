"""The agent's signed heartbeat: what it reports, when it goes out, and that it never holds up
a batch.

The agent runs for real (its outbox, forwarder and heartbeat tasks, a Modbus device whose panel is
unreachable) against a receiver on loopback (Starlette under uvicorn) that verifies every
heartbeat with `shared.heartbeat.verify_heartbeat`. The receiver stands in for the collector's
batch and head routes (it records the seqs and answers 200); this tests the sender, so a
receiver stub is legitimate. The last test runs the agent against the real collector (uvicorn,
a migrated database on both backends); the route's refusals are tested in tests/cloud/fleet.
"""

import asyncio
import gzip
import itertools
import logging
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cloud.settings import Settings
from edge.agent import Agent
from edge.forwarder import LinkHealth
from edge.health import DeviceHealth
from edge.heartbeat import Sources, build_heartbeat, fit
from edge.keys import create_private_key
from edge.outbox import OutboxStats
from edge.status import STATUS_FILE, format_status, read_status
from shared.bounds import MAX_HEARTBEAT_BYTES
from shared.canonical import dump_canonical, format_time
from shared.errors import ContractError
from shared.events import HEADER_FIELDS, BatchHeader, ClockState, EventDraft, EventKind
from shared.heartbeat import Heartbeat, verify_heartbeat
from shared.signing import private_key_pem, verify_header
from tests.cloud.conftest import GATEWAY as COLLECTOR_GATEWAY
from tests.cloud.conftest import READER, running_app
from tests.support.agent import running_agent
from tests.support.waiting import eventually, free_port

GATEWAY = "gw-beat"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
INTERVAL = 0.1  # seconds: [cloud] heartbeat_interval = "100ms"


# --- building a heartbeat (pure) ---------------------------------------------------------------


def stats(**changes: Any) -> OutboxStats:
    fields: dict[str, Any] = {
        "last_seq": 50,
        "acked_seq": 20,
        "backlog": 30,
        "oldest_unsent": "2026-12-01T11:50:00.000000Z",
        "used_bytes": 4096,
        "file_bytes": 8192,
        "budget_bytes": 1 << 20,
        "synced": True,
        "dead_letters": 2,
    }
    return OutboxStats(**{**fields, **changes})


def lock_health() -> DeviceHealth:
    health = DeviceHealth("lock-7", "ble-lock", "lock:7")
    health.state = "ok"
    health.last_success = NOW - timedelta(seconds=30)
    health.errors["DeviceUnreachable"] += 3
    health.protocol["crc_error"] += 2
    health.last_values.update(
        {"battery": 64, "firmware": "2.4.1", "clock_offset_ms": -250, "counter": 9}
    )
    return health


def failing_panel() -> DeviceHealth:
    health = DeviceHealth("panel-1", "modbus", "tcp://10.0.0.5:502")
    health.record_failure(ConnectionError("refused"))
    health.record_failure(ConnectionError("refused"))
    health.count("ConnectionError")  # a protocol count of the same kind adds up with the errors
    health.last_values.update({"battery": True, "firmware": "", "clock_offset_ms": Decimal(1)})
    return health


def sources(**changes: Any) -> Sources:
    fields: dict[str, Any] = {
        "stats": stats(),
        "link": LinkHealth(last_success=NOW - timedelta(minutes=10), consecutive_failures=4),
        "devices": {"lock-7": lock_health(), "panel-1": failing_panel()},
        "clock": ClockState.UNSYNCED,
    }
    return Sources(**{**fields, **changes})


def build(source: Sources) -> Heartbeat:
    return build_heartbeat(
        source, gateway_id=GATEWAY, now=NOW, boot_id="boot-1", uptime_s=90, version="0.1.0"
    )


def test_the_heartbeat_carries_what_the_status_page_gathers() -> None:
    beat = build(sources())
    assert (beat.gateway_id, beat.sent_at, beat.boot_id, beat.uptime_s) == (
        GATEWAY,
        NOW,
        "boot-1",
        90,
    )
    assert beat.outbox.backlog_events == 30 and beat.outbox.dead_letters == 2
    assert beat.outbox.oldest_unsent_at == datetime(2026, 12, 1, 11, 50, tzinfo=UTC)
    assert beat.outbox.oldest_unsent_age_s == 600
    assert (beat.outbox.used_bytes, beat.outbox.budget_bytes) == (4096, 1 << 20)
    assert beat.cloud_link.last_success_at == NOW - timedelta(minutes=10)
    assert beat.cloud_link.consecutive_failures == 4
    assert beat.clock.state is ClockState.UNSYNCED and "unsynchronized" in (beat.clock.detail or "")
    assert beat.devices_total == 2
    # The failing device comes first; its error and protocol counts of one kind add up.
    panel, lock = beat.devices
    assert (panel.device_id, panel.state, panel.consecutive_failures) == ("panel-1", "failing", 2)
    assert panel.errors == {"ConnectionError": 3}
    assert panel.last_values is None  # a bool battery, empty firmware, Decimal offset: left out
    assert lock.errors == {"DeviceUnreachable": 3, "crc_error": 2}
    assert lock.last_values is not None
    assert (lock.last_values.battery, lock.last_values.firmware) == (64, "2.4.1")
    assert lock.last_values.clock_offset_ms == -250
    assert lock.last_success_at == NOW - timedelta(seconds=30)


def test_an_empty_outbox_and_a_synced_clock() -> None:
    beat = build(sources(stats=stats(backlog=0, oldest_unsent=None), clock=ClockState.SYNCED))
    assert beat.outbox.backlog_events == 0
    assert beat.outbox.oldest_unsent_at is None and beat.outbox.oldest_unsent_age_s is None
    assert beat.clock.state is ClockState.SYNCED and beat.clock.detail is None


def test_an_oldest_event_ahead_of_the_gateway_clock_is_age_zero() -> None:
    ahead = stats(oldest_unsent=format_time(NOW + timedelta(minutes=5)))
    assert build(sources(stats=ahead)).outbox.oldest_unsent_age_s == 0


def test_error_kinds_beyond_the_bound_keep_the_most_frequent() -> None:
    noisy = DeviceHealth("panel-9", "modbus", "tcp://10.0.0.9:502")
    for n in range(40):
        noisy.protocol[f"kind-{n:02d}"] = n + 1
    beat = build(sources(devices={"panel-9": noisy}))
    assert len(beat.devices[0].errors) == 32
    assert min(beat.devices[0].errors.values()) == 9  # kinds 0..7 (counts 1..8) left out


def test_a_heartbeat_too_large_is_trimmed_worst_devices_kept() -> None:
    many: dict[str, DeviceHealth] = {}
    for n in range(1000):
        health = DeviceHealth(f"site-{n:04d}/very-long-device-name-{n:06d}", "modbus", "x")
        health.state = "ok"
        for k in range(32):
            health.protocol[f"a-long-protocol-error-kind-{k:02d}"] = 10**12 + k
        many[health.device_id] = health
    worst = many["site-0500/very-long-device-name-000500"]
    worst.record_failure(TimeoutError("no answer"))
    beat = build(sources(devices=many))
    assert len(dump_canonical(beat.content())) <= MAX_HEARTBEAT_BYTES - 1024
    assert beat.devices_total == 1000 and 0 < len(beat.devices) < 1000
    assert beat.devices[0].device_id == worst.device_id
    assert fit(beat) is beat  # it fits now: nothing more to trim


# --- the receiver (stands in for the collector, see the module docstring) ----------------------


@dataclass
class Receiver:
    """Verifies heartbeats with the gateway key it trusts; takes batches as the collector would.

    `heartbeat_status` other than 202 makes the heartbeat route answer that (a collector whose
    heartbeat route is down); `hold_heartbeats` makes it hang until released; `hold_batches`
    holds every batch answer until released.
    """

    public_key: Ed25519PublicKey
    batch_status: int = 200
    verify_batches: bool = False  # refuse (401) a batch not signed by `public_key`
    heartbeat_status: int = 202
    heartbeats: list[Heartbeat] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    batches: list[tuple[int, int]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    hanging: int = 0
    hanging_at_batch: list[int] = field(default_factory=list)
    hold_heartbeats: asyncio.Event | None = None
    hold_batches: asyncio.Event | None = None

    async def heartbeat(self, request: Request) -> Response:
        if self.hold_heartbeats is not None:
            self.hanging += 1
            try:
                await self.hold_heartbeats.wait()
            finally:
                self.hanging -= 1
        if self.heartbeat_status != 202:
            return JSONResponse({"error": {"code": "unavailable"}}, self.heartbeat_status)
        try:
            beat = verify_heartbeat(
                self.public_key, await request.body(), gateway_id=request.path_params["gateway"]
            )
        except ContractError as exc:
            self.refused.append(f"{type(exc).__name__}: {exc}")
            return JSONResponse({"error": {"code": "refused", "message": str(exc)}}, 400)
        self.heartbeats.append(beat)
        self.log.append(f"heartbeat backlog={beat.outbox.backlog_events}")
        return JSONResponse({"accepted": True}, 202)

    async def batch(self, request: Request) -> Response:
        document = orjson.loads(gzip.decompress(await request.body()))
        self.hanging_at_batch.append(self.hanging)
        if self.verify_batches:
            header = BatchHeader.model_validate({name: document[name] for name in HEADER_FIELDS})
            try:
                verify_header(header, self.public_key)
            except ContractError:
                self.log.append(f"refused batch {header.first_seq}..{header.last_seq}")
                return JSONResponse({"error": {"code": "bad_signature"}}, 401)
        if self.hold_batches is not None:
            await self.hold_batches.wait()
        if self.batch_status != 200:
            return JSONResponse({"error": {"code": "unavailable"}}, self.batch_status)
        self.batches.append((document["first_seq"], document["last_seq"]))
        self.log.append(f"batch {document['first_seq']}..{document['last_seq']}")
        return JSONResponse({"stored": document["last_seq"] - document["first_seq"] + 1})

    async def head(self, request: Request) -> Response:
        last = self.batches[-1][1] if self.batches else None
        return JSONResponse({"last_seq": last, "last_hash": None})

    def seqs(self) -> list[int]:
        return [seq for first, last in self.batches for seq in range(first, last + 1)]


@asynccontextmanager
async def serving(receiver: Receiver) -> AsyncIterator[str]:
    """`receiver` under uvicorn on a free loopback port; its base URL."""
    app = Starlette(
        routes=[
            Route("/v1/gateways/{gateway}/heartbeats", receiver.heartbeat, methods=["POST"]),
            Route("/v1/gateways/{gateway}/head", receiver.head, methods=["GET"]),
            Route("/v1/batches", receiver.batch, methods=["POST"]),
        ]
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started, what="the receiver to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        for hold in (receiver.hold_heartbeats, receiver.hold_batches):
            if hold is not None:
                hold.set()
        server.should_exit = True
        await task


def gateway_key(data_dir: Path) -> Ed25519PrivateKey:
    """The gateway's key, made where the agent will find it."""
    return create_private_key(data_dir / "gateway.key")


def site(url: str, data_dir: Path, *, timeout: str = "10s", gateway: str = GATEWAY) -> str:
    """A gateway with one Modbus panel that nobody serves (port 9) and fast batches."""
    return (
        f'[gateway]\nid = "{gateway}"\ncloud_url = "{url}"\ndata_dir = "{data_dir}"\n\n'
        '[cloud]\nheartbeat_interval = "100ms"\n\n'
        '[forwarder]\nbatch_max_events = 5\nbatch_max_wait = "20ms"\n'
        f'request_timeout = "{timeout}"\n'
        'retry_initial = "20ms"\nretry_max = "50ms"\n\n'
        "[diagnostics]\nenabled = false\n\n"
        '[[device]]\nid = "panel-1"\ndriver = "modbus"\nurl = "tcp://127.0.0.1:9"\n'
        'poll_interval = "50ms"\ntimeout = "200ms"\nreconnect_initial = "50ms"\n'
        'reconnect_max = "100ms"\n'
        '[[device.point]]\nname = "door_open"\ntable = "input"\naddress = 0\ntype = "uint16"\n'
    )


def drafts(count: int, *, at: datetime) -> list[EventDraft]:
    return [
        EventDraft(
            device_id="panel-1",
            name="door_open",
            kind=EventKind.ACTIVITY,
            quantity=Decimal(1),
            unit="count",
            occurred_at=at + timedelta(seconds=n),
            observed_at=at + timedelta(seconds=n),
            clock=ClockState.SYNCED,
        )
        for n in range(count)
    ]


async def commit(agent: Agent, events: list[EventDraft]) -> None:
    """Events into the running agent's outbox, as its writer commits them."""
    assert agent.outbox is not None and agent.forwarder is not None
    await agent.outbox.append(events)
    agent.forwarder.notify()


async def backlog_is_empty(agent: Agent) -> bool:
    assert agent.outbox is not None
    return (await agent.outbox.stats()).backlog == 0


# --- the running agent ---------------------------------------------------------------------------


async def test_idle_heartbeats_arrive_at_the_interval_signed_and_complete(tmp_path: Path) -> None:
    key = gateway_key(tmp_path)
    receiver = Receiver(key.public_key())
    async with serving(receiver) as url, running_agent(site(url, tmp_path)) as agent:
        await eventually(lambda: len(receiver.heartbeats) >= 4, what="four heartbeats")
        await eventually(
            lambda: receiver.heartbeats[-1].devices[0].consecutive_failures > 0,
            what="the unreachable panel's failures in a heartbeat",
        )
        received = len(receiver.heartbeats)
        status = await agent.status("running")

    beats = receiver.heartbeats
    assert receiver.refused == [] and receiver.batches == []
    assert {beat.boot_id for beat in beats} == {beats[0].boot_id}  # one run, one boot id
    assert all(beat.gateway_id == GATEWAY and beat.agent_version for beat in beats)
    assert all(beat.outbox.backlog_events == 0 for beat in beats)
    # At most one per interval: the sender sleeps the interval between two (a lower bound only).
    gaps = [(b.sent_at - a.sent_at).total_seconds() for a, b in itertools.pairwise(beats)]
    assert min(gaps) >= INTERVAL * 0.9
    assert [b.uptime_s for b in beats] == sorted(b.uptime_s for b in beats)
    panel = beats[-1].devices[0]
    assert beats[-1].devices_total == 1
    assert (panel.device_id, panel.state) == ("panel-1", "failing")
    assert sum(panel.errors.values()) > 0
    # The receiver counts a heartbeat before its answer reaches the agent: one may be on its way.
    assert status["heartbeat"]["sent"] >= received - 1 and status["heartbeat"]["failed"] == 0
    assert "heartbeat: " in format_status(status)


async def test_with_the_collector_unreachable_the_heartbeat_reports_the_backlog_and_its_age(
    tmp_path: Path,
) -> None:
    """Batches answer 503 (the collector cannot store), the heartbeat route still answers."""
    key = gateway_key(tmp_path)
    receiver = Receiver(key.public_key(), batch_status=503)
    oldest = datetime.now(UTC) - timedelta(minutes=10)
    async with serving(receiver) as url, running_agent(site(url, tmp_path)) as agent:
        await commit(agent, drafts(12, at=oldest))
        await eventually(
            lambda: any(
                b.outbox.backlog_events == 12 and b.cloud_link.consecutive_failures > 0
                for b in receiver.heartbeats
            ),
            what="a heartbeat reporting the twelve unsent events and the failing link",
        )

    beat = next(b for b in receiver.heartbeats if b.outbox.backlog_events == 12)
    assert receiver.batches == []
    assert beat.outbox.oldest_unsent_at == oldest
    assert beat.outbox.oldest_unsent_age_s is not None and beat.outbox.oldest_unsent_age_s >= 600
    assert beat.cloud_link.last_success_at is None
    # The status the agent wrote as it stopped holds the refusals too (int keys broke it once).
    written = read_status(tmp_path / STATUS_FILE)
    assert written["cloud_link"]["refusals"]["503"] > 0
    assert written["heartbeat"]["sent"] >= 1


async def test_heartbeats_follow_batches_once_delivered(tmp_path: Path) -> None:
    """A due heartbeat waits for the batch in flight and goes out after its ack.

    `ride_limit` is raised so the heartbeat cannot leave by its timeout while the batch is held.
    """
    key = gateway_key(tmp_path)
    receiver = Receiver(key.public_key(), hold_batches=asyncio.Event())
    async with serving(receiver) as url, running_agent(site(url, tmp_path)) as agent:
        assert agent.heartbeat is not None
        agent.heartbeat._ride_limit = 600.0
        await eventually(lambda: len(receiver.heartbeats) >= 1, what="the first heartbeat")
        await commit(agent, drafts(3, at=datetime.now(UTC)))
        await eventually(lambda: receiver.hanging_at_batch != [], what="the batch to be held")
        held_with = len(receiver.heartbeats)
        await asyncio.sleep(INTERVAL * 5)  # several intervals pass while the batch is held
        during = len(receiver.heartbeats)
        assert receiver.hold_batches is not None
        receiver.hold_batches.set()
        await eventually(lambda: receiver.batches == [(1, 3)], what="the batch to be taken")
        await eventually(
            lambda: any(b.outbox.backlog_events == 0 for b in receiver.heartbeats[during:]),
            what="a heartbeat after the ack",
        )

    # One heartbeat may have been on its way when the batch was held; none left while it was.
    assert during <= held_with + 1
    after = receiver.log.index("batch 1..3")
    assert receiver.log[after + 1] == "heartbeat backlog=0"
    assert receiver.heartbeats[-1].cloud_link.last_success_at is not None


async def test_a_heartbeat_route_that_is_down_never_stops_batches_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = gateway_key(tmp_path)
    receiver = Receiver(key.public_key(), heartbeat_status=503)
    caplog.set_level(logging.INFO, logger="edge.heartbeat")
    async with serving(receiver) as url, running_agent(site(url, tmp_path)) as agent:
        assert agent.heartbeat is not None and agent.outbox is not None
        beats = agent.heartbeat.health
        await commit(agent, drafts(7, at=datetime.now(UTC)))
        await eventually(lambda: receiver.seqs() == list(range(1, 8)), what="seqs 1..7")
        await eventually(lambda: beats.failed >= 3, what="three failed heartbeats")
        await commit(agent, drafts(6, at=datetime.now(UTC)))
        await eventually(lambda: receiver.seqs() == list(range(1, 14)), what="seqs 1..13")
        await eventually(lambda: backlog_is_empty(agent), what="every batch acknowledged")
        status = await agent.status("running")
        receiver.heartbeat_status = 202  # the route comes back
        await eventually(lambda: len(receiver.heartbeats) >= 1, what="a heartbeat taken")

    assert status["outbox"]["backlog"] == 0 and status["cloud_link"]["batches_sent"] >= 3
    assert status["heartbeat"]["last_error"].startswith("HTTP 503")
    assert status["heartbeat"]["consecutive_failures"] == status["heartbeat"]["failed"] >= 3
    assert status["heartbeat"]["sent"] == 0
    assert status["heartbeat"]["failing_since"] is not None
    # Batches get through: the link is up though the heartbeats fail (no cloud_link_down).
    assert "cloud_link_down" not in [alarm["code"] for alarm in status["alarms"]]
    messages = Counter(r.getMessage() for r in caplog.records if r.name == "edge.heartbeat")
    assert (
        messages["heartbeat not delivered; batches are not affected, next one at the interval"] == 1
    )
    assert messages["heartbeat delivered again"] == 1
    assert receiver.heartbeats[0].outbox.backlog_events == 0


async def test_a_hanging_heartbeat_route_does_not_delay_batches(tmp_path: Path) -> None:
    key = gateway_key(tmp_path)
    receiver = Receiver(key.public_key(), hold_heartbeats=asyncio.Event())
    # A long request timeout: the held heartbeat stays in flight for the whole test.
    async with (
        serving(receiver) as url,
        running_agent(site(url, tmp_path, timeout="120s")) as agent,
    ):
        await eventually(lambda: receiver.hanging >= 1, what="a heartbeat request hanging")
        await commit(agent, drafts(10, at=datetime.now(UTC)))
        await eventually(lambda: receiver.seqs() == list(range(1, 11)), what="seqs 1..10")
        await eventually(lambda: backlog_is_empty(agent), what="every batch acknowledged")

    assert receiver.hanging_at_batch and min(receiver.hanging_at_batch) >= 1


async def test_a_rotated_key_signs_the_next_heartbeats(tmp_path: Path) -> None:
    old = gateway_key(tmp_path)
    receiver = Receiver(old.public_key())
    new = Ed25519PrivateKey.generate()
    async with serving(receiver) as url, running_agent(site(url, tmp_path)):
        await eventually(lambda: len(receiver.heartbeats) >= 1, what="a heartbeat (old key)")
        replacement = tmp_path / "gateway.key.new"
        replacement.write_bytes(private_key_pem(new))
        replacement.chmod(0o600)
        replacement.replace(tmp_path / "gateway.key")  # what rotate-key does
        receiver.public_key = new.public_key()
        taken = len(receiver.heartbeats)
        await eventually(lambda: len(receiver.heartbeats) > taken, what="a new-key heartbeat")

    # At most the one heartbeat signed before the swap was refused under the new key.
    assert len(receiver.refused) <= 1
    assert all("heartbeat signature does not verify" in reason for reason in receiver.refused)


async def test_a_batch_in_retry_is_re_signed_when_another_task_reread_the_key(
    tmp_path: Path,
) -> None:
    """The heartbeat rereads the key file too (`Forwarder.current_key`): a batch refused under
    the old key must still go out signed with the new one, whoever noticed the change first."""
    old = gateway_key(tmp_path)
    new = Ed25519PrivateKey.generate()
    receiver = Receiver(new.public_key(), verify_batches=True)  # the collector has the new key
    async with serving(receiver) as url, running_agent(site(url, tmp_path)) as agent:
        assert agent.forwarder is not None
        await commit(agent, drafts(3, at=datetime.now(UTC)))
        await eventually(
            lambda: "refused batch 1..3" in receiver.log, what="the old-key batch refused"
        )
        replacement = tmp_path / "gateway.key.new"
        replacement.write_bytes(private_key_pem(new))
        replacement.chmod(0o600)
        replacement.replace(tmp_path / "gateway.key")
        # Another task (the heartbeat, here the test) rereads the file before the retry does.
        assert agent.forwarder.current_key() is not old
        await eventually(lambda: receiver.batches == [(1, 3)], what="the batch, re-signed")
        await eventually(lambda: len(receiver.heartbeats) >= 1, what="a new-key heartbeat")


# --- against the real collector ------------------------------------------------------------------


async def test_the_real_collector_takes_the_agents_heartbeats(db_url: str, tmp_path: Path) -> None:
    """The real agent and the real collector (uvicorn on loopback, a migrated database on both
    backends): its batches are stored, its heartbeats verified and kept on the gateway twin, and
    the unreachable panel's health copied into its device twin."""
    key = gateway_key(tmp_path)
    port = free_port()
    async with running_app(Settings(db_url=db_url), key) as app:
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        serve = asyncio.create_task(server.serve())
        try:
            await eventually(lambda: server.started, what="the collector to start")
            config = site(f"http://127.0.0.1:{port}", tmp_path, gateway=COLLECTOR_GATEWAY)
            async with (
                running_agent(config) as agent,
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=READER) as reader,
            ):
                await commit(agent, drafts(4, at=datetime.now(UTC)))

                async def reported() -> bool:
                    view = (await reader.get(f"/v1/gateways/{COLLECTOR_GATEWAY}")).json()
                    beat = view.get("heartbeat") or {}
                    return (
                        view.get("last_seq") == 4
                        and beat.get("outbox", {}).get("backlog_events") == 0
                        and beat.get("cloud_link", {}).get("last_success_at") is not None
                        and bool(beat.get("devices"))
                        and beat["devices"][0]["consecutive_failures"] > 0
                    )

                await eventually(reported, what="a heartbeat after the batch, kept on the twin")
                gateway = (await reader.get(f"/v1/gateways/{COLLECTOR_GATEWAY}")).json()
                panel = (await reader.get("/v1/devices/panel-1/twin")).json()
                assert agent.heartbeat is not None
                health = agent.heartbeat.health
        finally:
            server.should_exit = True
            await serve

    assert gateway["status"] == "online" and gateway["last_heartbeat_at"] is not None
    assert gateway["heartbeat"]["gateway_id"] == COLLECTOR_GATEWAY
    assert gateway["heartbeat"]["boot_id"] == health.boot_id
    assert panel["health"]["state"] == "failing"
    assert health.failed == 0 and health.sent >= 1
