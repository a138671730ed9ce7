"""It100Panel, LinesPanel and `it100-panel`, checked through a real serial port on the pty."""

import argparse
import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from edge.codecs.it100 import Frame, It100FrameError, decode_frame, encode_bad_frame, encode_frame
from edge.codecs.it100_mapping import is_known
from edge.config import It100DeviceConfig, SerialPortConfig
from edge.drivers.it100 import It100Driver
from edge.drivers.serial_line import SerialLine
from edge.errors import DeviceUnreachable
from edge.health import DeviceHealth
from firmware_sims.it100_panel import (
    Alarm,
    Arm,
    BadChecksum,
    Disarm,
    InjectedFault,
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
from tests.support.waiting import WAIT_SECONDS


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
    first, *faults = capsys.readouterr().out.splitlines()
    assert first == f"it100-panel on {link} (faults: checksum,unknown,drop)"
    assert all(line.startswith("fault: ") for line in faults)
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


# -- faults: which the panel injects, and each one said as it happens ----------------------------

DISARM_2 = Frame("655", "2")  # each scenario loop sends it once, after its checksum and unknown


def said_of(observed: list[bytes | None], link: Path) -> list[str]:
    """The fault lines a reader's observations call for: a bad checksum or an unknown command
    it read (None: the port dropped; the next None: it opened again)."""
    said: list[str] = []
    dropped = False
    for line in observed:
        if line is None:
            what = "link drop over: {} plugged in again" if dropped else "link drop: {} unplugged"
            said.append("fault: " + what.format(link))
            dropped = not dropped
            continue
        shown = line.rstrip(b"\r\n").decode()
        try:
            frame = decode_frame(line)
        except It100FrameError:
            command, data = shown[:3], shown[3:-2]
            right = encode_frame(command, data).rstrip(b"\r\n").decode()
            said.append(f"fault: bad checksum on {command} {data}: sent {shown} instead of {right}")
            continue
        if not is_known(frame.command):
            said.append(f"fault: unknown command {frame.command}: sent {shown}")
    return said


async def observe(
    link: Path, *, enough: Callable[[list[bytes | None]], bool]
) -> list[bytes | None]:
    """Read the port as a driver would, reopening it after a drop, until `enough` (lines, and
    None for each drop and each reopen after it)."""
    observed: list[bytes | None] = []
    async with asyncio.timeout(WAIT_SECONDS):  # a hang guard, not a speed check
        while not enough(observed):
            try:
                async with SerialLine(SerialPortConfig(port=str(link))) as port:
                    if observed:  # opened again after a drop
                        observed.append(None)
                    while not enough(observed):
                        observed.append(await port.read_line())
            except DeviceUnreachable:
                if observed and observed[-1] is not None:
                    observed.append(None)  # the drop
                await asyncio.sleep(0.005)  # the symlink is back after the replug step
    return observed


def disarms(observed: list[bytes | None]) -> int:
    return sum(line == encode_frame(DISARM_2.command, DISARM_2.data) for line in observed)


async def test_faults_none_injects_nothing_over_whole_scenario_loops(tmp_path: Path) -> None:
    printed: list[InjectedFault] = []
    panel = It100Panel(
        link_path=tmp_path / "tty",
        scenario=default_scenario(tick=0.01),
        bad_checksum_every=2,  # governed by the checksum fault too
        faults=frozenset(),
        on_fault=printed.append,
    )
    async with panel:
        player = asyncio.create_task(panel.run_forever())
        try:
            # Between two DISARM_2 lie a whole loop's bad checksum, unknown command and drop.
            observed = await observe(panel.link_path, enough=lambda seen: disarms(seen) >= 2)
        finally:
            player.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await player
    assert None not in observed  # the port never dropped
    assert said_of(observed, panel.link_path) == []  # every line a known, good frame
    assert printed == panel.injected == [] and panel.corrupted == []
    assert any(frame.command == "601" for frame in panel.emitted)  # the rest still played


async def test_each_fault_said_is_one_the_reader_saw(tmp_path: Path) -> None:
    """Step by step (no clock): after each step the reader takes what it wrote, so every
    line the panel said is matched against what really arrived, in order."""
    said: list[str] = []
    link = tmp_path / "tty"
    config = SerialPortConfig(port=str(link))
    steps = default_scenario().steps
    cut, back = steps.index(Unplug()), steps.index(Replug())
    observed: list[bytes | None] = []
    async with It100Panel(
        link_path=link, bad_checksum_every=7, on_fault=lambda fault: said.append(str(fault))
    ) as panel:
        async with SerialLine(config) as port:
            for step in steps[:cut]:
                panel.apply(step)
                observed += [await port.read_line() for _ in frames_of(step)]
            panel.apply(steps[cut])
            with pytest.raises(DeviceUnreachable):
                await port.read_line()
            observed.append(None)
        for step in steps[cut + 1 : back]:  # the pause of the pull
            panel.apply(step)
        panel.apply(steps[back])
        async with SerialLine(config) as port:
            observed.append(None)
            for step in steps[back + 1 :]:
                panel.apply(step)
                observed += [await port.read_line() for _ in frames_of(step)]
    assert said == said_of(observed, link)
    # 609 005 and 750 20041 (every 7th frame), the BadChecksum step, UnknownCommand, the pull
    kinds = ["checksum", "checksum", "unknown", "checksum", "drop", "drop"]
    assert [fault.kind for fault in panel.injected] == kinds
    assert [str(fault) for fault in panel.injected] == said


@pytest.mark.parametrize("faults", [None, "none", "checksum,drop"])
async def test_cli_faults_are_printed_as_they_happen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], faults: str | None
) -> None:
    link = tmp_path / "ttyIT100"
    argv = ["--link", str(link), "--tick", "0.01"]
    args = parse(*argv, *([] if faults is None else ["--faults", faults]))
    kinds: frozenset[str] = args.faults

    def enough(seen: list[bytes | None]) -> bool:
        """Two whole loops, and every kind that is on seen at least once (a drop: and over)."""
        said = said_of(seen, link)
        over = "drop" not in kinds or any("link drop over" in line for line in said)
        return disarms(seen) >= 2 and {_kind(line) for line in said} >= kinds and over

    runner = asyncio.ensure_future(run_it100_panel(args))
    try:
        observed = await observe(link, enough=enough)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    first, *printed = capsys.readouterr().out.splitlines()
    shown = ",".join(kind for kind in ("checksum", "unknown", "drop") if kind in kinds) or "none"
    assert first == f"it100-panel on {link} (faults: {shown})"
    # Every line printed is a fault the reader saw, and every fault it saw was printed (the
    # loops repeat the same faults, so lines printed before the reader opened match later ones).
    assert set(printed) == set(said_of(observed, link))
    assert {_kind(line) for line in printed} == kinds


def _kind(said: str) -> str:
    return {"bad": "checksum", "unknown": "unknown", "link": "drop"}[said.split()[1]]


def test_cli_faults_argument() -> None:
    assert parse().faults == {"checksum", "unknown", "drop"}
    assert parse("--faults", "none").faults == frozenset()
    assert parse("--faults", "unknown, drop").faults == {"unknown", "drop"}


@pytest.mark.parametrize("value", ["noise", "none,drop", ""])
def test_cli_faults_argument_names_the_kinds(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse("--faults", value)
    assert "give none or a comma list of checksum,unknown,drop" in capsys.readouterr().err


def test_unknown_fault_kinds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        It100Panel(link_path=tmp_path / "tty", faults={"checksum", "smoke"})
