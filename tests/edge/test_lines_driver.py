"""LinesDriver against the simulated printer-port panel over a real pseudo-terminal."""

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.config import LinesDeviceConfig
from edge.drivers.lines import LinesDriver
from edge.errors import ConfigError, DeviceUnreachable
from edge.health import DeviceHealth
from firmware_sims.it100_panel import LinesPanel
from shared.events import ClockState, EventDraft, EventKind

PATTERN = (
    r"^(?P<ts>\S+ \S+) (?P<name>ALARM|ARMED|DISARMED) "
    r"(?:ZONE (?P<zone>\d+) )?PARTITION (?P<channel>\d+)"
)


def device(link: Path, **extra: object) -> LinesDeviceConfig:
    return LinesDeviceConfig.model_validate(
        {"id": "printer-1", "driver": "lines", "port": str(link), "pattern": PATTERN, **extra}
    )


def driver(config: LinesDeviceConfig, health: DeviceHealth | None = None) -> LinesDriver:
    health = health or DeviceHealth(config.id, "lines", config.port)
    return LinesDriver(config, health=health, clock=lambda: ClockState.UNSYNCED)


async def take(events: AsyncIterator[EventDraft], count: int) -> list[EventDraft]:
    return [await anext(events) for _ in range(count)]


@pytest.fixture
async def panel(tmp_path: Path) -> AsyncIterator[LinesPanel]:
    async with LinesPanel(link_path=tmp_path / "ttyPRN") as running:
        yield running


async def test_lines_become_drafts(panel: LinesPanel) -> None:
    config = device(panel.link_path)
    health = DeviceHealth(config.id, "lines", config.port)
    async with driver(config, health) as lines, contextlib.aclosing(lines.events()) as events:
        for text in panel.lines:
            panel.write_line(text)
        drafts = await take(events, 3)
    assert [(d.name, d.channel, d.attrs.get("zone")) for d in drafts] == [
        ("ARMED", "1", None),
        ("ALARM", "1", "004"),
        ("DISARMED", "1", None),
    ]
    assert drafts[1].attrs["ts"] == "2026-11-21 10:05:12"
    assert all(d.kind is EventKind.ACTIVITY and d.clock is ClockState.UNSYNCED for d in drafts)


async def test_bad_lines_are_counted_and_skipped(panel: LinesPanel) -> None:
    config = device(panel.link_path)
    health = DeviceHealth(config.id, "lines", config.port)
    async with driver(config, health) as lines, contextlib.aclosing(lines.events()) as events:
        panel.write_line("2026-11-21 10:07:00 AC POWER OK")  # unmatched
        panel.write_raw(b"2026-11-21 10:07:00 ALARM \xff PARTITION 1\r\n")  # not ASCII
        panel.write_line("")  # blank lines are ignored
        panel.write_line("2026-11-21 10:08:00 ALARM ZONE 002 PARTITION 3")
        (draft,) = await take(events, 1)
    assert (draft.name, draft.channel) == ("ALARM", "3")
    assert health.protocol == {"unmatched": 1, "undecodable": 1}


async def test_configured_encoding(panel: LinesPanel) -> None:
    config = device(panel.link_path, pattern=r"(?P<name>\w+) (?P<who>.+)", encoding="latin-1")
    async with driver(config) as lines, contextlib.aclosing(lines.events()) as events:
        panel.write_line("opened Jürgen", encoding="latin-1")
        (draft,) = await take(events, 1)
    assert draft.attrs == {"who": "Jürgen"}


async def test_invalid_event_is_counted_by_reason(panel: LinesPanel) -> None:
    config = device(panel.link_path, pattern=r"(?P<name>\w+) (?P<quantity>\S+)")
    health = DeviceHealth(config.id, "lines", config.port)
    async with driver(config, health) as lines, contextlib.aclosing(lines.events()) as events:
        panel.write_line("pour lots")
        panel.write_line("pour 2.5")
        (draft,) = await take(events, 1)
    assert str(draft.quantity) == "2.5"
    assert health.protocol == {"bad_quantity": 1}


async def test_unplug_then_replug(panel: LinesPanel) -> None:
    config = device(panel.link_path)
    async with driver(config) as lines, contextlib.aclosing(lines.events()) as events:
        panel.unplug()
        with pytest.raises(DeviceUnreachable):
            await anext(events)
    panel.replug()
    async with driver(config) as lines, contextlib.aclosing(lines.events()) as events:
        panel.write_line("2026-11-21 10:08:00 ARMED PARTITION 2")
        (draft,) = await take(events, 1)
    assert draft.channel == "2"


async def test_unknown_encoding_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        driver(device(tmp_path / "tty", encoding="no-such-codec"))


async def test_entering_twice_is_an_error(panel: LinesPanel) -> None:
    lines = driver(device(panel.link_path))
    async with lines:
        with pytest.raises(RuntimeError):
            await lines.__aenter__()
