"""IT-100 panel on a pseudo-terminal -> `tollgate-edge run` -> `tollgate-cloud serve`, with a
cable pull and replug in the middle, and agent restarts while a partition stays armed, on SQLite
and PostgreSQL."""

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from cloud.domain import BillableEvent, CloseReason, SessionRule
from cloud.sessions.sessionizer import sessionize
from firmware_sims.it100_panel import Alarm, Arm, BadChecksum, Disarm, It100Panel, Step
from firmware_sims.processes import BIN, AgentProcess, fetch_events, run_command
from firmware_sims.site import SimulatedIt100, Timing, render_site_config
from tests.e2e.conftest import (
    running_site,
)
from tests.support.waiting import eventually

GATEWAY_ID = "site-serial-gw1"
FAST = Timing(
    batch_max_wait="100ms",
    retry_initial="100ms",
    retry_max="500ms",
    reconnect_initial="100ms",
    reconnect_max="500ms",
)


# What the steps must become in the cloud, (kind, name, channel) in order: one event per arming
# or disarming (652+700, 655+750 merged), two per alarm (601 zone alarm, 654 partition alarm).
BEFORE = [
    ("activation", "armed", "1"),
    ("activity", "alarm", "1"),
    ("activity", "alarm", "1"),
    ("deactivation", "disarmed", "1"),
    ("activation", "armed", "2"),
]
AFTER = [("deactivation", "disarmed", "2"), ("activity", "alarm", "1"), ("activity", "alarm", "1")]


def stored_usage(events: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    """Cloud events minus the status reports a (re)connect asks for."""
    return [(e["kind"], e["name"], e["channel"]) for e in events if not e["attrs"].get("report")]


@pytest.fixture
async def serial_site(
    db_url: str, tmp_path: Path
) -> AsyncIterator[tuple[It100Panel, AgentProcess, httpx.AsyncClient]]:
    async with It100Panel(link_path=tmp_path / "ttyIT100") as panel:
        devices = render_site_config(
            gateway_id=GATEWAY_ID,
            cloud_url="http://unused",
            data_dir=tmp_path,
            panels=[SimulatedIt100("dsc-1", panel.link_path)],
            timing=FAST,
        )
        devices = devices[devices.index("[[device]]") :]
        async with running_site(
            db_url=db_url, tmp_path=tmp_path, gateway_id=GATEWAY_ID, devices=devices
        ) as (agent, client):
            yield panel, agent, client


async def test_arming_and_alarms_survive_a_cable_pull(
    serial_site: tuple[It100Panel, AgentProcess, httpx.AsyncClient],
) -> None:
    panel, agent, client = serial_site
    await panel.wait_for_command("001")  # the agent connected and asked for status
    before: list[Step] = [
        Arm(partition=1, user_code="0040"),
        Alarm(partition=1, zone=4),
        Disarm(partition=1, user_code="0040"),
        Arm(partition=2, mode=1),
    ]
    await panel.play(before, tick=0.05)

    async def arrived(count: int) -> bool:
        return len(stored_usage(await fetch_events(client, gateway_id=GATEWAY_ID))) >= count

    await eventually(lambda: arrived(len(BEFORE)), what="events before the pull")
    panel.unplug()
    await eventually(lambda: _log_has(agent, "DeviceUnreachable"), what="the agent to see the pull")
    panel.replug()
    await panel.wait_for_command("001", count=2)  # reconnected, asked for status again
    after: list[Step] = [
        BadChecksum(),
        Disarm(partition=2, user_code="0007"),
        Alarm(partition=1, zone=9),
    ]
    await panel.play(after, tick=0.05)
    expected = BEFORE + AFTER
    await eventually(lambda: arrived(len(expected)), what="events after the replug")

    events = await fetch_events(client, gateway_id=GATEWAY_ID)
    assert stored_usage(events) == expected  # in order, none lost, none twice
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    armed = [e for e in events if e["name"] == "armed" and not e["attrs"].get("report")]
    assert [(e["attrs"]["user_code"], e["attrs"]["arm_mode"]) for e in armed] == [
        ("0040", "away"),
        ("0040", "stay"),
    ]
    # After the replug the agent asks for status; partition 2 was armed, so a report says so.
    reports = [e for e in events if e["attrs"].get("report")]
    assert [(e["name"], e["channel"]) for e in reports] == [("armed", "2")]


async def _log_has(agent: AgentProcess, text: str) -> bool:
    return text in agent.log_path.read_text()


async def test_agent_status_shows_device_health(
    serial_site: tuple[It100Panel, AgentProcess, httpx.AsyncClient],
) -> None:
    panel, agent, _ = serial_site
    await panel.wait_for_command("001")
    await panel.play([BadChecksum(), Arm(partition=1)], tick=0.05)
    panel.unplug()
    await eventually(lambda: _log_has(agent, "DeviceUnreachable"), what="the agent to see the pull")
    panel.replug()
    await panel.wait_for_command("001", count=2)
    status_file = agent.config_path.parent / "edge" / "status.json"

    async def reported() -> bool:
        if not status_file.exists():
            return False
        status = orjson.loads(status_file.read_bytes())
        (device,) = status["devices"]
        return bool(
            device["protocol"].get("bad_checksum") == 1
            and device["state"] == "ok"
            and device["errors"].get("DeviceUnreachable", 0) >= 1
            and status["outbox"]["backlog"] == 0
        )

    await eventually(reported, what="the status file to show the device's health")
    shown = await run_command(
        str(BIN / "tollgate-edge"),
        "status",
        "--config",
        str(agent.config_path),
        log_path=agent.log_path,
    )
    assert "gateway site-serial-gw1: running" in shown
    assert "dsc-1" in shown and "bad_checksum 1" in shown and "DeviceUnreachable" in shown
    assert await agent.terminate() == 0
    final = orjson.loads(status_file.read_bytes())
    assert final["state"] == "stopped"


ALARM_RULE = SessionRule(frozenset({"armed"}), frozenset({"disarmed"}))


def sessions_in_cloud(events: list[dict[str, Any]], channel: str) -> list[tuple[CloseReason, int]]:
    """The cloud's sessionizer over the stored events of one partition: (reason, events)."""
    billable = [
        BillableEvent(
            e["gateway_id"],
            e["seq"],
            e["device_id"],
            e["channel"],
            e["name"],
            e["kind"],
            None,
            None,
            datetime.fromisoformat(e["occurred_at"]),
            e["attrs"].get("report"),
        )
        for e in events
        if e["channel"] == channel
    ]
    as_of = max(e.occurred_at for e in billable)
    return [(s.close_reason, len(s.events)) for s in sessionize(billable, ALARM_RULE, as_of=as_of)]


RESTARTS = 3


async def test_agent_restarts_while_armed_never_start_a_second_session(
    serial_site: tuple[It100Panel, AgentProcess, httpx.AsyncClient],
) -> None:
    panel, agent, client = serial_site
    await panel.wait_for_command("001")
    await panel.play([Arm(partition=1, user_code="0040")], tick=0.05)

    def stored(count: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return len(await fetch_events(client, gateway_id=GATEWAY_ID)) >= count

        return check

    # The first dump (partition 1 ready) made no event; the arming is event 1.
    await eventually(stored(1), what="the arming")
    for restart in range(1, RESTARTS + 1):
        assert await agent.terminate() == 0
        await agent.spawn()  # a new process: nothing of the last one's memory
        await panel.wait_for_command("001", count=1 + restart)
        await eventually(stored(1 + restart), what=f"the status report of start {restart}")
    await panel.play([Arm(partition=2, user_code="0041")], tick=0.05)  # a real arming, billed
    await eventually(stored(2 + RESTARTS), what="the arming of partition 2")

    events = await fetch_events(client, gateway_id=GATEWAY_ID)
    assert [(e["channel"], e["attrs"]["command"], e["attrs"].get("report")) for e in events] == [
        ("1", "652+700", None),
        *[("1", "652", "status")] * RESTARTS,
        ("2", "652+700", None),
    ]
    assert sessions_in_cloud(events, "1") == [(CloseReason.STILL_OPEN, 1 + RESTARTS)]
    assert sessions_in_cloud(events, "2") == [(CloseReason.STILL_OPEN, 1)]
