"""The agent's log file and what both support bundles carry of it.

`tollgate-edge run` runs as a child process against a simulated Modbus panel, exactly as the
service runs it; the page's bundle comes over HTTP from its real diagnostics server. The file
handler's rotation and its failures are driven in this process with a small `max_bytes`, and a
rotation that fails is made real by a directory where the rotated file must go. Nothing is
mocked.
"""

import asyncio
import io
import logging
import os
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from edge.cli import main
from edge.diagnostics.bundle import MEMORY_LOG
from edge.diagnostics.password import load_password_hash, store_password
from edge.installer.support_bundle import log_tails
from edge.logs import AGENT_LOG, configure_logging
from firmware_sims.modbus_panel import ModbusPanel, Scenario
from firmware_sims.processes import AgentProcess
from firmware_sims.site import SimulatedPanel, render_site_config
from tests.support.diagnostics import COUNTERS, DEVICE_ID, PASSWORD, SLOW, diagnostics_site
from tests.support.waiting import eventually, free_port

CLI_ONLY = {"site.toml"}
PAGE_ONLY = {"recent-events.json"}


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging replaces the root handlers (pytest's included): put them back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    noisy = {name: logging.getLogger(name).level for name in ("httpx", "httpcore", "pymodbus")}
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, was in noisy.items():
        logging.getLogger(name).setLevel(was)


def _site_config(tmp_path: Path, panel_port: int, page_port: int) -> Path:
    data_dir = tmp_path / "state"
    store_password(data_dir, PASSWORD)
    config = tmp_path / "site.toml"
    text = render_site_config(
        gateway_id="gw-logs",
        cloud_url="http://127.0.0.1:9",  # nothing listens: the link logs its failures
        data_dir=data_dir,
        panels=[SimulatedPanel(DEVICE_ID, panel_port, COUNTERS)],
        timing=SLOW,
    )
    config.write_text(text + f'\n[diagnostics]\nlisten = "127.0.0.1:{page_port}"\n')
    return config


def _json_lines(data: bytes) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in data.splitlines()]


def _logged(path: Path, message: str) -> bool:
    try:
        return any(line["msg"] == message for line in _json_lines(path.read_bytes()))
    except (OSError, orjson.JSONDecodeError):  # not there yet, or a line half written
        return False


async def _page_bundle(url: str) -> dict[str, bytes]:
    async with httpx.AsyncClient(base_url=url) as client:

        async def up() -> bool:
            try:
                return (await client.get("/login")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(up, what="the diagnostics page")
        assert (await client.post("/login", json={"password": PASSWORD})).status_code == 200
        response = await client.get("/api/support-bundle")
    assert response.status_code == 200, response.text
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    return {name: archive.read(name) for name in archive.namelist()}


def _cli_bundle(config: Path, out: Path) -> dict[str, bytes]:
    assert main(["support-bundle", "--config", str(config), "--out", str(out)]) == 0
    with tarfile.open(out) as tar:
        return {
            member.name.removeprefix("support-bundle/"): tar.extractfile(member).read()  # type: ignore[union-attr]
            for member in tar.getmembers()
        }


async def test_run_writes_a_json_log_that_both_bundles_carry(tmp_path: Path) -> None:
    async with ModbusPanel(port=0, scenario=Scenario(counters=COUNTERS, tick=0)) as panel:
        page_port = free_port()
        config = _site_config(tmp_path, panel.port, page_port)
        log_file = tmp_path / "state" / "logs" / AGENT_LOG
        async with AgentProcess(config_path=config, log_path=tmp_path / "agent.out"):
            await eventually(lambda: _logged(log_file, "agent started"), what="agent.log")
            page = await _page_bundle(f"http://127.0.0.1:{page_port}")
            cli = await asyncio.to_thread(_cli_bundle, config, tmp_path / "bundle.tar.gz")
    lines = _json_lines(log_file.read_bytes())
    assert {"ts", "level", "logger", "msg"} <= set(lines[0])
    assert set(cli) - CLI_ONLY == set(page) - PAGE_ONLY
    assert f"logs/{AGENT_LOG}" in page and MEMORY_LOG not in page
    page_log, cli_log = page[f"logs/{AGENT_LOG}"], cli[f"logs/{AGENT_LOG}"]
    assert cli_log.startswith(page_log)  # the CLI's came later: the same file, grown
    assert log_file.read_bytes().startswith(cli_log)
    assert any(line["msg"] == "agent started" for line in _json_lines(page_log))


async def test_run_with_an_unwritable_logs_dir_runs_and_says_why_once(tmp_path: Path) -> None:
    async with ModbusPanel(port=0, scenario=Scenario(counters=COUNTERS, tick=0)) as panel:
        config = _site_config(tmp_path, panel.port, free_port())
        (tmp_path / "state" / "logs").write_text("a file where the directory should be\n")
        agent = AgentProcess(config_path=config, log_path=tmp_path / "agent.out")
        status = tmp_path / "state" / "status.json"
        async with agent:
            await eventually(status.exists, what="the agent's status.json")
        assert agent.process is not None and agent.process.returncode == 0
    out = _json_lines(agent.log_path.read_bytes())
    off = [line["msg"] for line in out if str(line["msg"]).startswith("file log off")]
    assert off == [
        f"file log off: {tmp_path / 'state' / 'logs' / AGENT_LOG}: Not a directory; "
        "logging to stderr only (the journal under systemd)"
    ]
    assert any(line["msg"] == "agent started" for line in out)  # stderr still has the log


def test_rotation_keeps_at_most_the_configured_files(tmp_path: Path, restore_logging: None) -> None:
    path = configure_logging("info", log_dir=tmp_path / "logs", max_bytes=300, files=3)
    assert path == tmp_path / "logs" / AGENT_LOG
    for n in range(60):
        logging.getLogger("edge.test").info(f"line {n}", extra={"fields": {"n": n}})
    assert sorted(os.listdir(tmp_path / "logs")) == ["agent.log", "agent.log.1", "agent.log.2"]
    newest = _json_lines((tmp_path / "logs" / "agent.log").read_bytes())
    assert newest[-1]["msg"] == "line 59" and newest[-1]["n"] == 59
    for name in ("agent.log.1", "agent.log.2"):
        assert all(line["msg"] for line in _json_lines((tmp_path / "logs" / name).read_bytes()))


def test_a_log_file_that_cannot_rotate_is_turned_off_once(
    tmp_path: Path, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = tmp_path / "logs"
    (logs / "agent.log.1").mkdir(parents=True)  # where the rotated file must go: rename fails
    configure_logging("info", log_dir=logs, max_bytes=200, files=2)
    for n in range(20):
        logging.getLogger("edge.test").info(f"line {n}")
    err = capsys.readouterr().err
    off = [line["msg"] for line in _json_lines(err.encode()) if "file log off" in line["msg"]]
    assert off == [
        f"file log off: {logs / AGENT_LOG}: Is a directory; "
        "logging to stderr only (the journal under systemd)"
    ]
    assert '"msg":"line 19"' in err  # stderr keeps every line


def test_log_tails_take_rotated_files_newest_first_up_to_the_limit(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for age, name in enumerate(["agent.log", "agent.log.1", "agent.log.2"]):
        (logs / name).write_bytes(b"".join(b"%s line %d\n" % (name.encode(), n) for n in range(10)))
        os.utime(logs / name, (1_000_000 - age, 1_000_000 - age))
    whole = (logs / "agent.log").stat().st_size
    tails = log_tails(logs, limit=whole + 30)
    assert list(tails) == ["agent.log", "agent.log.1"]
    assert tails["agent.log"] == (logs / "agent.log").read_bytes()
    cut = tails["agent.log.1"]
    assert len(cut) <= 30 and cut.startswith(b"agent.log.1 line ")  # starts at a whole line
    assert (logs / "agent.log.1").read_bytes().endswith(cut)
    assert log_tails(tmp_path / "absent", limit=100) == {}


def _plant_lures(data_dir: Path) -> None:
    """Files in logs/ a careless bundle would take: a symlink to the technician password named
    like a log, a copy of it under its own name, a directory named like a log."""
    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)
    (logs / AGENT_LOG).write_text('{"msg": "hello"}\n')
    (logs / "evil.log").symlink_to(data_dir / "technician.password")
    (logs / "technician.password").write_bytes((data_dir / "technician.password").read_bytes())
    (logs / "old.log.d").mkdir()
    (logs / "sub.log").mkdir()


def _assert_only_the_log(members: dict[str, bytes], data_dir: Path) -> None:
    assert sorted(name for name in members if name.startswith("logs/")) == [f"logs/{AGENT_LOG}"]
    password_hash = load_password_hash(data_dir)
    assert password_hash is not None
    everything = b"".join(members.values())
    assert password_hash.encode() not in everything and PASSWORD.encode() not in everything


def test_the_cli_bundle_reads_only_log_files_under_logs(tmp_path: Path) -> None:
    config = _site_config(tmp_path, 1502, free_port())
    _plant_lures(tmp_path / "state")
    _assert_only_the_log(_cli_bundle(config, tmp_path / "b.tar.gz"), tmp_path / "state")


async def test_the_page_bundle_reads_only_log_files_under_logs(tmp_path: Path) -> None:
    async with diagnostics_site(tmp_path) as site:
        _plant_lures(site.data_dir)
        members = await _page_bundle(site.url)
    _assert_only_the_log(members, site.data_dir)
    assert MEMORY_LOG not in members  # a log file is there: no copy from memory
