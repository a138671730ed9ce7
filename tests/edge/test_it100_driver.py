"""It100Driver against the simulated panel over a real pseudo-terminal."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloud.domain import BillableEvent, CloseReason, SessionRule
from cloud.sessions.sessionizer import sessionize
from edge.codecs.it100 import Frame, encode_frame
from edge.config import It100DeviceConfig
from edge.drivers.it100 import It100Driver
from edge.drivers.serial_line import SerialLine
from edge.errors import DeviceTimeout, DeviceUnreachable
from edge.health import DeviceHealth
from firmware_sims.it100_panel import (
    Alarm,
    Arm,
    AutoArm,
    BadChecksum,
    Disarm,
    It100Panel,
    PtyLink,
    TimeBroadcast,
    UnknownCommand,
    ZoneOpen,
    ZoneRestore,
)
from shared.events import ClockState, EventDraft, EventKind


def device(link: Path, **extra: object) -> It100DeviceConfig:
    return It100DeviceConfig.model_validate(
        {"id": "panel-1", "driver": "it100", "port": str(link), **extra}
    )


def driver(config: It100DeviceConfig, health: DeviceHealth | None = None) -> It100Driver:
    health = health or DeviceHealth(config.id, "it100", config.port)
    return It100Driver(config, health=health, clock=lambda: ClockState.SYNCED)


async def take(events: AsyncIterator[EventDraft], count: int) -> list[EventDraft]:
    return [await anext(events) for _ in range(count)]


@pytest.fixture
async def panel(tmp_path: Path) -> AsyncIterator[It100Panel]:
    async with It100Panel(link_path=tmp_path / "ttyIT100") as running:
        yield running


def summary(draft: EventDraft) -> tuple[str, EventKind, str | None, str]:
    return draft.name, draft.kind, draft.channel, str(draft.attrs["command"])


async def test_arm_alarm_disarm(panel: It100Panel) -> None:
    config = device(panel.link_path)
    async with driver(config) as it100, contextlib.aclosing(it100.events()) as events:
        await panel.wait_for_command("001")
        await panel.play([Arm(1, "0040", mode=1), Alarm(1, zone=4), Disarm(1, "0040")])
        drafts = await take(events, 4)
    # One arming is two frames (652 mode, 700 user) and ONE event; likewise one disarming.
    assert [summary(d) for d in drafts] == [
        ("armed", EventKind.ACTIVATION, "1", "652+700"),
        ("alarm", EventKind.ACTIVITY, "1", "601"),
        ("alarm", EventKind.ACTIVITY, "1", "654"),
        ("disarmed", EventKind.DEACTIVATION, "1", "655+750"),
    ]
    assert drafts[0].attrs["arm_mode"] == "stay" and drafts[0].attrs["user_code"] == "0040"
    assert "report" not in drafts[0].attrs
    assert drafts[1].attrs == {
        "command": "601",
        "zone": "004",
        "partition": "1",
        "alarm_type": "zone",
    }
    assert drafts[3].attrs["user_code"] == "0040"
    assert all(d.device_id == "panel-1" and d.clock is ClockState.SYNCED for d in drafts)
    assert panel.received[0] == Frame("001")


async def test_status_on_connect_reports_current_state(panel: It100Panel) -> None:
    panel.apply(Arm(1, mode=0))  # armed before the driver connects: those frames are lost
    async with (
        driver(device(panel.link_path)) as it100,
        contextlib.aclosing(it100.events()) as events,
    ):
        (draft,) = await take(events, 1)
    assert summary(draft) == ("armed", EventKind.ACTIVATION, "1", "652")
    assert draft.attrs["report"] == "status"
    assert it100.acknowledged["001"] == 1


async def test_no_status_request_when_disabled(panel: It100Panel) -> None:
    config = device(panel.link_path, status_on_connect=False)
    async with driver(config) as it100, contextlib.aclosing(it100.events()) as events:
        await panel.play([Disarm(2, "0041")])
        drafts = await take(events, 1)
    assert [(d.channel, d.attrs["user_code"]) for d in drafts] == [("2", "0041")]
    assert "report" not in drafts[0].attrs
    assert panel.received == []


async def test_bad_lines_are_counted_and_skipped(panel: It100Panel) -> None:
    config = device(panel.link_path)
    health = DeviceHealth(config.id, "it100", config.port)
    async with driver(config, health) as it100, contextlib.aclosing(it100.events()) as events:
        await panel.wait_for_command("001")
        await panel.play([BadChecksum(), UnknownCommand(), ZoneOpen(), Arm(1)])
        panel.link.write(b"65\r\n")  # truncated
        panel.link.write(b"6X210FE\r\n")  # malformed
        panel.link.write(b"\xff\xfe\r\n")  # not ASCII
        await panel.play([Disarm(1)])
        drafts = await take(events, 2)
    assert [summary(d)[:1] + summary(d)[3:] for d in drafts] == [
        ("armed", "652+700"),
        ("disarmed", "655+750"),
    ]
    assert health.protocol == {
        "bad_checksum": 1,
        "unknown_command": 1,
        "truncated": 1,
        "malformed": 2,
        "ignored_frames": 3,  # the dump's 650 and 841, the 609 (zone events are off)
    }
    assert len(panel.corrupted) == 1


async def test_zone_events_when_enabled(panel: It100Panel) -> None:
    config = device(panel.link_path, zone_events=True, status_on_connect=False)
    async with driver(config) as it100, contextlib.aclosing(it100.events()) as events:
        await panel.play([ZoneOpen(7), ZoneRestore(7)])
        drafts = await take(events, 2)
    assert [(d.name, d.attrs["zone"]) for d in drafts] == [
        ("zone_open", "007"),
        ("zone_restore", "007"),
    ]


async def test_bad_checksum_every(tmp_path: Path) -> None:
    async with It100Panel(link_path=tmp_path / "tty", bad_checksum_every=2) as panel:
        config = device(panel.link_path, status_on_connect=False)
        health = DeviceHealth(config.id, "it100", config.port)
        async with driver(config, health) as it100, contextlib.aclosing(it100.events()) as events:
            await panel.play([Arm(1), Disarm(1)])  # frames 2 and 4 go out corrupted
            drafts = await take(events, 2)
    assert [d.attrs["command"] for d in drafts] == ["652", "655"]
    # 655 waits for its partner 750, which arrives corrupted (frame 4), so both are counted.
    assert health.protocol["bad_checksum"] == 2
    assert len(panel.corrupted) == 2


async def test_poll_is_acknowledged(panel: It100Panel) -> None:
    config = device(panel.link_path, poll_interval="20ms")
    health = DeviceHealth(config.id, "it100", config.port)
    async with driver(config, health) as it100, contextlib.aclosing(it100.events()) as events:
        pending = asyncio.ensure_future(anext(events))
        await panel.wait_for_command("000", count=2)
        await panel.play([Arm(1)])
        draft = await pending
    assert draft.attrs["command"] == "652+700"
    # The first poll's 500 was written before the second poll arrived, so before the arm frames.
    assert it100.acknowledged["000"] >= 1
    assert health.protocol["missing_ack"] == 0


async def test_command_error_resends_once(panel: It100Panel) -> None:
    config = device(panel.link_path)
    health = DeviceHealth(config.id, "it100", config.port)
    panel.reject_next_commands(1)
    async with driver(config, health) as it100, contextlib.aclosing(it100.events()) as events:
        pending = asyncio.ensure_future(anext(events))
        await panel.wait_for_command("001")  # the resent status request
        await panel.play([Arm(2)])
        draft = await pending
    assert draft.channel == "2"
    assert panel.rejected == [b"00191\r\n"]
    assert health.protocol["command_error"] == 1 and health.protocol["resent"] == 1
    assert it100.acknowledged["001"] == 1


async def test_command_error_twice_is_counted_not_resent_again(panel: It100Panel) -> None:
    config = device(panel.link_path)
    health = DeviceHealth(config.id, "it100", config.port)
    panel.reject_next_commands(2)
    async with driver(config, health) as it100, contextlib.aclosing(it100.events()) as events:
        pending = asyncio.ensure_future(anext(events))
        await panel.wait_for_rejected(2)
        await panel.play([Arm(3)])
        draft = await pending
    assert draft.channel == "3"
    assert health.protocol["command_error"] == 2
    assert health.protocol["resent"] == 1
    assert health.protocol["command_rejected"] == 1
    assert panel.received == []


async def test_unplug_then_replug(panel: It100Panel) -> None:
    config = device(panel.link_path)
    async with driver(config) as it100, contextlib.aclosing(it100.events()) as events:
        await panel.wait_for_command("001")
        panel.unplug()
        with pytest.raises(DeviceUnreachable):
            await anext(events)
    with pytest.raises(DeviceUnreachable):  # the port is gone while unplugged
        async with driver(config):
            pass
    panel.replug()
    async with driver(config) as it100, contextlib.aclosing(it100.events()) as events:
        await panel.wait_for_command("001", count=2)
        await panel.play([Arm(1)])
        drafts = await take(events, 1)
    assert [d.attrs["command"] for d in drafts] == ["652+700"]


async def test_silent_panel_times_out(tmp_path: Path) -> None:
    link = PtyLink(tmp_path / "tty")  # a cable with nothing answering
    link.plug()
    try:
        async with driver(device(link.link_path, poll_interval="20ms")) as it100:
            with pytest.raises(DeviceTimeout):
                async for _ in it100.events():
                    pass
    finally:
        link.unplug()
    assert (await link.read_line()) == b"00191\r\n"


async def test_entering_twice_is_an_error(panel: It100Panel) -> None:
    it100 = driver(device(panel.link_path))
    async with it100:
        with pytest.raises(RuntimeError):
            await it100.__aenter__()
    line = SerialLine(device(panel.link_path))
    async with line:
        with pytest.raises(RuntimeError):
            await line.__aenter__()


async def test_missing_port_is_unreachable(tmp_path: Path) -> None:
    with pytest.raises(DeviceUnreachable) as caught:
        async with driver(device(tmp_path / "nothing-here")):
            pass
    assert caught.value.__cause__ is not None


# -- status reports: the dump answering 001, and what billing makes of it ------------------------

ALARM_RULE = SessionRule(frozenset({"armed"}), frozenset({"disarmed"}))


def sessions_of(drafts: list[EventDraft]) -> list[tuple[str, CloseReason, list[str]]]:
    """The cloud's pure sessionizer over the drafts (seq in order, `attrs["report"]` kept):
    (channel, close reason, commands) of each session."""
    events = [
        BillableEvent(
            "gw",
            seq,
            d.device_id,
            d.channel,
            d.name,
            d.kind.value,
            None,
            None,
            d.occurred_at,
            d.attrs.get("report"),  # type: ignore[arg-type]
        )
        for seq, d in enumerate(drafts, start=1)
    ]
    commands = {seq: str(d.attrs["command"]) for seq, d in enumerate(drafts, start=1)}
    as_of = max(d.occurred_at for d in drafts)
    found = []
    for channel in sorted({e.channel for e in events if e.channel is not None}):
        pair = [e for e in events if e.channel == channel]
        for s in sessionize(pair, ALARM_RULE, as_of=as_of):
            found.append((channel, s.close_reason, [commands[seq] for _, seq in s.events]))
    return found


async def test_restarts_while_armed_make_one_session(panel: It100Panel) -> None:
    # Each driver is a fresh one (an agent restart: no memory), the panel stays armed.
    config = device(panel.link_path)
    drafts: list[EventDraft] = []
    async with driver(config) as it100, contextlib.aclosing(it100.events()) as events:
        await panel.wait_for_command("001")
        await panel.play([Arm(1, "0040")])
        drafts += await take(events, 1)
    for start in range(2, 7):
        async with driver(config) as it100, contextlib.aclosing(it100.events()) as events:
            drafts += await take(events, 1)  # the dump's 652 for partition 1
        assert panel.received.count(Frame("001")) == start
    assert [d.attrs.get("report") for d in drafts] == [None] + ["status"] * 5
    assert sessions_of(drafts) == [("1", CloseReason.STILL_OPEN, ["652+700"] + ["652"] * 5)]


async def test_a_real_arming_right_after_a_reconnect_is_billed(panel: It100Panel) -> None:
    config = device(panel.link_path)
    panel.apply(Arm(1))  # armed before the gateway came up: the first dump opens the session
    drafts: list[EventDraft] = []
    async with driver(config) as it100, contextlib.aclosing(it100.events()) as events:
        drafts += await take(events, 1)
    async with driver(config) as it100, contextlib.aclosing(it100.events()) as events:
        await panel.wait_for_command("001", count=2)
        # Right after the reconnect: disarm and re-arm 1, auto-arm 2 (652 + 701 special closing).
        await panel.play([Disarm(1), Arm(1, "0007"), AutoArm(2)])
        drafts += await take(events, 4)
    assert [(summary(d)[3], d.attrs.get("report")) for d in drafts] == [
        ("652", "status"),
        ("652", "status"),
        ("655+750", None),
        ("652+700", None),
        ("652+701", None),
    ]
    assert sessions_of(drafts) == [
        ("1", CloseReason.DEACTIVATED, ["652", "652", "655+750"]),
        ("1", CloseReason.STILL_OPEN, ["652+700"]),
        ("2", CloseReason.STILL_OPEN, ["652+701"]),
    ]


async def test_the_dump_ends_at_the_ack_of_the_poll_sent_after_it(panel: It100Panel) -> None:
    panel.apply(Arm(1))
    async with (
        driver(device(panel.link_path)) as it100,
        contextlib.aclosing(it100.events()) as events,
    ):
        (report,) = await take(events, 1)
        await panel.wait_for_command("000")  # the poll that follows the 500 "001", answered
        panel.send(Frame("652", "21"))  # partition 2 armed, its closing frame lost
        (armed,) = await take(events, 1)
    assert report.attrs["report"] == "status"
    assert (armed.channel, armed.attrs["command"]) == ("2", "652")
    assert "report" not in armed.attrs  # outside the dump: a real arming
    assert [f.command for f in panel.received] == ["001", "000"]


def scripted(link: PtyLink, *frames: tuple[str, str]) -> None:
    """Write frames to the driver as a panel would."""
    for command, data in frames:
        link.write(encode_frame(command, data))


async def test_the_dump_ends_at_a_live_frame_or_a_partition_reported_twice(
    tmp_path: Path,
) -> None:
    link = PtyLink(tmp_path / "tty")  # a scripted panel: no ack of the follow-up poll at all
    link.plug()
    try:
        async with driver(device(link.link_path)) as it100:
            events = it100.events()
            assert await link.read_line() == encode_frame("001")
            scripted(link, ("500", "001"), ("652", "10"), ("841", "1"), ("652", "20"))
            scripted(link, ("601", "1004"), ("652", "30"))  # an alarm: live, the dump is over
            first = await take(events, 4)
            scripted(link, ("500", "001"), ("652", "10"), ("652", "11"))  # 1 again: live
            second = await take(events, 2)
            await events.aclose()
    finally:
        link.unplug()
    assert [(summary(d)[2:], d.attrs.get("report")) for d in first + second] == [
        (("1", "652"), "status"),
        (("2", "652"), "status"),
        (("1", "601"), None),
        (("3", "652"), None),
        (("1", "652"), "status"),
        (("1", "652"), None),
    ]


async def test_traffic_without_usage_is_counted_apart_without_logs(
    panel: It100Panel, caplog: pytest.LogCaptureFixture
) -> None:
    config = device(panel.link_path, status_on_connect=False)
    health = DeviceHealth(config.id, "it100", config.port)
    async with driver(config, health) as it100, contextlib.aclosing(it100.events()) as events:
        await panel.play([TimeBroadcast()])
        for command, data in [("510", "81"), ("511", "00"), ("903", "21"), ("901", "00016Ready")]:
            panel.send(Frame(command, data))
        await panel.play([UnknownCommand(), Disarm(1)])
        with caplog.at_level(logging.INFO, logger="edge.drivers.it100"):
            (draft,) = await take(events, 1)
    assert draft.attrs["command"] == "655+750"
    assert health.protocol == {"ignored_frames": 5, "unknown_command": 1}
    skipped = [r for r in caplog.records if r.getMessage() == "it100 line skipped"]
    assert len(skipped) == 1  # the unknown command only
