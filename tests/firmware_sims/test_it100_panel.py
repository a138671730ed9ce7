"""It100Panel, LinesPanel and `it100-panel`, checked through a real serial port on the pty."""

import argparse
import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.codecs.it100 import Frame, decode_frame, encode_bad_frame, encode_frame
from edge.config import It100DeviceConfig, SerialPortConfig
from edge.drivers.it100 import It100Driver
from edge.drivers.serial_line import SerialLine
from edge.health import DeviceHealth
from firmware_sims.it100_panel import (
    Alarm,
    Arm,
    BadChecksum,
    Disarm,
    It100Panel,
    LinesPanel,
    Pause,
    Replug,
    Step,
    UnknownCommand,
    Unplug,
    default_scenario,
    frames_of,
)
from firmware_sims.serial_cli import add_it100_arguments, run_it100_panel
from shared.events import ClockState


@pytest.fixture
async def panel(tmp_path: Path) -> AsyncIterator[It100Panel]:
    async with It100Panel(link_path=tmp_path / "ttyIT100") as running:
        yield running


@pytest.fixture
async def port(panel: It100Panel) -> AsyncIterator[SerialLine]:
    async with SerialLine(SerialPortConfig(port=str(panel.link_path))) as line:
        yield line


async def read_frames(port: SerialLine, count: int) -> list[Frame]:
    return [decode_frame(await port.read_line()) for _ in range(count)]


async def test_steps_write_frames_with_good_checksums(panel: It100Panel, port: SerialLine) -> None:
    steps: list[Step] = [
        Arm(1, "1234", mode=3),
        Alarm(2, zone=17),
        Disarm(1, "1234"),
        Pause(),
        UnknownCommand(),
    ]
    await panel.play(steps)
    expected = [frame for step in steps for frame in frames_of(step)]
    assert expected == [
        Frame("652", "13"),
        Frame("700", "11234"),
        Frame("601", "2017"),
        Frame("654", "2"),
        Frame("655", "1"),
        Frame("750", "11234"),
        Frame("999", "1"),
    ]
    assert await read_frames(port, len(expected)) == expected
    assert panel.emitted == expected
    assert panel.partitions[1] is None


async def test_bad_checksum_step(panel: It100Panel, port: SerialLine) -> None:
    await panel.play([BadChecksum("652", "10"), Arm(1)])
    assert await port.read_line() == encode_bad_frame("652", "10")
    assert await read_frames(port, 1) == [Frame("652", "10")]
    assert panel.corrupted == [encode_bad_frame("652", "10")]


async def test_answers_poll_status_and_bad_frames(panel: It100Panel, port: SerialLine) -> None:
    panel.apply(Arm(2, mode=1))
    await read_frames(port, 2)
    await port.write(encode_frame("000"))
    assert await read_frames(port, 1) == [Frame("500", "000")]
    await port.write(encode_frame("001"))
    assert await read_frames(port, 5) == [
        Frame("500", "001"),
        Frame("650", "1"),
        Frame("652", "21"),
        Frame("841", "1"),  # trouble LEDs off
        Frame("841", "2"),
    ]
    await port.write(encode_bad_frame("000"))
    assert await read_frames(port, 1) == [Frame("501")]
    assert panel.received == [Frame("000"), Frame("001")]
    assert panel.rejected == [encode_bad_frame("000")]


async def test_crlf_passes_unchanged(panel: It100Panel, port: SerialLine) -> None:
    panel.link.write(b"a\rb\r\n")
    assert await port.read_line() == b"a\rb\r\n"


async def test_unplug_and_replug_repoint_the_link(panel: It100Panel) -> None:
    first = os.readlink(panel.link_path)
    assert first == panel.link.slave_name
    panel.unplug()
    assert not panel.link_path.exists()
    panel.replug()
    assert os.readlink(panel.link_path) == panel.link.slave_name
    async with SerialLine(SerialPortConfig(port=str(panel.link_path))) as port:
        await panel.play([Disarm(1)])
        assert (await read_frames(port, 1))[0] == Frame("655", "1")


async def test_lines_panel(tmp_path: Path) -> None:
    printer = LinesPanel(link_path=tmp_path / "ttyPRN", tick=0.001)
    async with printer, SerialLine(SerialPortConfig(port=str(printer.link_path))) as port:
        runner = asyncio.ensure_future(printer.run_forever())
        try:
            lines = [await port.read_line() for _ in range(len(printer.lines) + 1)]
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
    assert lines == [text.encode() + b"\r\n" for text in (*printer.lines, printer.lines[0])]


def test_default_scenario_has_arm_disarm_cycles_and_an_alarm() -> None:
    steps = default_scenario(tick=0.1).steps
    assert sum(isinstance(s, Arm) for s in steps) == sum(isinstance(s, Disarm) for s in steps) >= 2
    assert any(isinstance(s, Alarm) for s in steps)


def test_bad_checksum_every_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        It100Panel(link_path=tmp_path / "tty", bad_checksum_every=0)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_it100_arguments(parser)
    return parser.parse_args(argv)


def test_cli_arguments() -> None:
    args = parse()
    assert (args.link, args.tick, args.duration) == (Path("ttyIT100"), 0.5, None)
    with pytest.raises(SystemExit):
        parse("--tick", "0")


async def test_run_it100_panel_serves_a_driver(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = tmp_path / "ttyIT100"
    args = parse("--link", str(link), "--tick", "0.01", "--duration", "5")
    runner = asyncio.ensure_future(run_it100_panel(args))
    try:
        # The CLI offers no readiness hook but its symlink: wait for it to appear.
        while not link.exists():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        config = It100DeviceConfig(id="panel-1", driver="it100", port=str(link))
        health = DeviceHealth(config.id, "it100", config.port)
        async with (
            It100Driver(config, health=health, clock=lambda: ClockState.SYNCED) as it100,
            contextlib.aclosing(it100.events()) as events,
        ):
            names = {(await anext(events)).name for _ in range(6)}
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    assert names <= {"armed", "disarmed", "alarm"} and len(names) >= 2
    assert capsys.readouterr().out == f"it100-panel on {link}\n"
    assert not link.exists()


async def test_run_it100_panel_stops_after_duration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = tmp_path / "ttyIT100"
    assert (
        await run_it100_panel(parse("--link", str(link), "--tick", "0.01", "--duration", "0.1"))
        == 0
    )
    assert f"it100-panel on {link}" in capsys.readouterr().out
    assert not link.exists()


async def test_scenario_cable_pull_removes_and_restores_the_port(tmp_path: Path) -> None:
    async with It100Panel(link_path=tmp_path / "tty") as panel:
        panel.apply(Unplug())
        assert not panel.link_path.exists()
        panel.apply(Replug())
        assert panel.link_path.exists() and panel.link.plugged
