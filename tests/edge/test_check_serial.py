"""`tollgate-edge check` and `SerialLine` on a serial port that will not open: held by another
process (the running agent or anyone else), no such device, permission denied. Each is a real
pseudo-terminal (`firmware_sims.it100_panel`); the holders are real processes (the agent's
`tollgate-edge run`, a second Python holding a `SerialLine`); nothing is mocked.
"""

import asyncio
import contextlib
import grp
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.cli import main
from edge.codecs.it100 import Frame, decode_frame
from edge.config import SerialPortConfig
from edge.drivers.serial_line import SerialLine
from edge.errors import DeviceUnreachable, PortHeld
from edge.installer.check import _held_reason
from firmware_sims.it100_panel import It100Panel, ZoneOpen
from firmware_sims.processes import AgentProcess
from firmware_sims.site import SimulatedIt100, render_site_config
from tests.support.waiting import eventually, free_port

REPO = Path(__file__).resolve().parents[2]
# A second process holding the port the way the agent does (SerialLine opens it exclusively).
HOLD = """
import asyncio, sys
from edge.config import SerialPortConfig
from edge.drivers.serial_line import SerialLine

async def hold():
    async with SerialLine(SerialPortConfig(port=sys.argv[1])):
        print("holding", flush=True)
        await asyncio.to_thread(sys.stdin.read)

asyncio.run(hold())
"""
# Become user nobody (the interpreter and modules loaded first: nobody may not read them from
# root's home), open the port and print why it failed.
OPEN_AS_NOBODY = """
import asyncio, concurrent.futures.thread, os, sys
from edge.config import SerialPortConfig
from edge.drivers.serial_line import SerialLine

os.setgroups([])
os.setgid(65534)
os.setuid(65534)

async def try_open():
    try:
        async with SerialLine(SerialPortConfig(port=sys.argv[1])):
            print("opened")
    except Exception as exc:
        print(type(exc).__name__, exc)

asyncio.run(try_open())
"""


@pytest.fixture
async def panel(tmp_path: Path) -> AsyncIterator[It100Panel]:
    async with It100Panel(link_path=tmp_path / "ttyIT100") as running:
        yield running


def _it100_config(tmp_path: Path, port: Path) -> Path:
    config = tmp_path / "site.toml"
    text = render_site_config(
        gateway_id="gw-held",
        cloud_url=f"http://127.0.0.1:{free_port()}",
        data_dir=tmp_path / "state",
        panels=[SimulatedIt100("alarm", port)],
    )
    # No diagnostics page: the default 127.0.0.1:8080 may be another test's.
    config.write_text(text + "\n[diagnostics]\nenabled = false\n")
    return config


async def _check_row(config: Path, device: str, capsys: pytest.CaptureFixture[str]) -> str:
    code = await asyncio.to_thread(main, ["check", "--config", str(config), "--timeout", "2s"])
    out = capsys.readouterr().out
    assert code == 1, out  # the collector is not there either
    return next(line for line in out.splitlines() if line.startswith(device))


async def test_a_second_open_of_a_held_port_is_refused_and_the_holder_keeps_reading(
    panel: It100Panel,
) -> None:
    port = str(panel.link_path)
    async with SerialLine(SerialPortConfig(port=port)) as holder:
        with pytest.raises(PortHeld) as caught:
            async with SerialLine(SerialPortConfig(port=port)):
                pass
        assert caught.value.holder == os.getpid()  # from /proc/locks
        assert (
            str(caught.value) == f"serial port {port}: held by another process (pid {os.getpid()})"
        )
        await panel.play([ZoneOpen(zone=3)])
        assert decode_frame(await holder.read_line()) == Frame("609", "003")


async def test_check_while_the_agent_runs_says_the_agent_holds_the_port(
    tmp_path: Path, panel: It100Panel, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _it100_config(tmp_path, panel.link_path)
    agent = AgentProcess(config_path=config, log_path=tmp_path / "agent.log")
    await agent.keygen()
    status = tmp_path / "state" / "status.json"
    async with agent:
        await panel.wait_for_command("001")  # the agent has the port open
        await eventually(status.exists, what="the agent's status.json")
        row = await _check_row(config, "alarm", capsys)
        assert agent.process is not None
        pid = agent.process.pid
        assert row.endswith(
            f"✗ serial port {panel.link_path}: held by another process, the running agent "
            f"(pid {pid}); `tollgate-edge status` shows its reads"
        )
    assert "device failed" not in agent.log_path.read_text()  # the check took nothing from it
    assert sum(frame.command == "001" for frame in panel.received) == 1  # it never reconnected


async def test_check_names_another_holder_by_its_pid(
    tmp_path: Path, panel: It100Panel, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _it100_config(tmp_path, panel.link_path)  # no agent ran: no status.json
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLD,
        str(panel.link_path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert await holder.stdout.readline() == b"holding\n"
        row = await _check_row(config, "alarm", capsys)
    finally:
        with contextlib.suppress(ProcessLookupError):
            holder.kill()
        await holder.wait()
    assert row.endswith(
        f"✗ serial port {panel.link_path}: held by another process (pid {holder.pid})"
    )


@pytest.mark.parametrize(
    ("holder", "agent", "said"),
    [
        (None, None, "held by another process (the running agent?)"),
        (None, 812, "held by another process (the running agent, pid 812?)"),
        (77, 812, "held by another process (pid 77)"),
    ],
)
def test_a_holder_not_found_in_proc_locks_is_guessed_plainly(
    holder: int | None, agent: int | None, said: str
) -> None:
    """When /proc/locks does not name the holder (a TIOCEXCL tty answers EBUSY, another pid
    namespace shows pid 0): the one case here that is not produced for real, because root
    opens a TIOCEXCL tty anyway."""
    assert (
        _held_reason(PortHeld("/dev/ttyS0", holder=holder), agent)
        == f"serial port /dev/ttyS0: {said}"
    )


async def test_check_says_a_missing_port_is_no_such_device(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "ttyUSB9"
    row = await _check_row(_it100_config(tmp_path, missing), "alarm", capsys)
    assert row.endswith(f"✗ serial port {missing}: no such device (unplugged? another name?)")


async def test_a_port_this_user_may_not_open_says_permission_denied(panel: It100Panel) -> None:
    """The pty's slave, mode 0060: its owner may not open it. Run as root (who may open
    anything), the open is tried by a child process as user nobody."""
    slave = panel.link.slave_name
    os.chmod(slave, 0o060)
    try:
        group = grp.getgrgid(os.stat(slave).st_gid).gr_name
    except KeyError:
        group = None
    if os.geteuid() == 0:
        said = await _open_as_nobody(slave)
    else:
        with pytest.raises(DeviceUnreachable) as caught:
            async with SerialLine(SerialPortConfig(port=slave)):
                pass
        said = f"DeviceUnreachable {caught.value}"
    hint = f" (group {group} may open it: run as a member of {group})" if group else ""
    assert said == f"DeviceUnreachable serial port {slave}: permission denied{hint}"


async def _open_as_nobody(port: str) -> str:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        OPEN_AS_NOBODY,
        port,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    out, _ = await child.communicate()
    return out.decode().strip()
