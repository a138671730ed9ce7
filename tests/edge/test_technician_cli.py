"""`tollgate-edge technician set-password`, the no-password notice of `init`, and a reader that
goes away (`tollgate-edge status | head -1`): real files, real subprocesses and real pipes.

The diagnostics test runs the real agent with its page (tests.support.diagnostics) and changes
the password with the real command while it runs. Nothing is mocked.
"""

import os
import pty
import select
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.cli import EXIT_BROKEN_PIPE, main
from edge.diagnostics.auth import CSRF_HEADER
from edge.diagnostics.password import (
    PASSWORD_FILE,
    load_password_hash,
    store_password,
    verify_password,
)
from edge.forwarder import LinkHealth
from edge.health import DeviceHealth
from edge.installer.technician_cli import NO_PASSWORD_NOTICE
from edge.outbox import OutboxStats
from edge.status import STATUS_FILE, status_document, write_status
from tests.support.diagnostics import PASSWORD, diagnostics_site

ROOT = Path(__file__).resolve().parents[2]
NEW_PASSWORD = "a brand new one 77"


def write_config(tmp_path: Path, *, gateway_id: str = "") -> Path:
    """A site config without devices whose data_dir is tmp_path/data."""
    path = tmp_path / "site.toml"
    line = f'id = "{gateway_id}"\n' if gateway_id else ""
    path.write_text(
        f'[gateway]\n{line}cloud_url = "http://127.0.0.1:9"\ndata_dir = "{tmp_path / "data"}"\n'
    )
    return path


def set_password(config: Path, secret: Path) -> list[str]:
    """The command line of `set-password --config --file`."""
    return ["technician", "set-password", "--config", str(config), "--file", str(secret)]


def edge_process(*args: str, **options: Any) -> "subprocess.Popen[bytes]":
    """`python -m edge.cli ARGS` from the repository root, as the installed script runs it."""
    return subprocess.Popen([sys.executable, "-m", "edge.cli", *args], cwd=ROOT, **options)


def test_set_password_from_a_file_stores_its_first_line_hashed_with_mode_0600(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    secret = tmp_path / "pw"
    secret.write_text("correct horse battery\nnot part of it\n")

    assert main(set_password(config, secret)) == 0

    path = tmp_path / "data" / PASSWORD_FILE
    assert f"technician password set in {path}" in capsys.readouterr().out
    stored = load_password_hash(tmp_path / "data")
    assert stored is not None and verify_password(stored, "correct horse battery")
    assert "correct horse" not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_set_password_names_the_site_by_data_dir_before_a_config_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "pw"
    secret.write_text(NEW_PASSWORD)  # no newline at all
    args = ["technician", "set-password", "--data-dir", str(tmp_path / "d"), "--file", str(secret)]

    assert main(args) == 0

    stored = load_password_hash(tmp_path / "d")
    assert stored is not None and verify_password(stored, NEW_PASSWORD)


@pytest.mark.parametrize("before", [None, PASSWORD], ids=["none", "existing"])
def test_a_short_password_is_refused_with_the_rule_and_nothing_is_written(
    tmp_path: Path, before: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    if before is not None:
        store_password(tmp_path / "data", before)
    old = load_password_hash(tmp_path / "data")
    secret = tmp_path / "pw"
    secret.write_text("short\n")

    assert main(set_password(config, secret)) == 2

    err = capsys.readouterr().err
    assert "technician password must be at least 10 characters (got 5)" in err
    assert "nothing was written" in err
    assert load_password_hash(tmp_path / "data") == old


def test_an_unreadable_file_is_named_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)

    assert main(set_password(config, tmp_path / "missing")) == 2

    assert f"--file {tmp_path / 'missing'}: No such file or directory" in capsys.readouterr().err
    assert not (tmp_path / "data" / PASSWORD_FILE).exists()


def test_without_a_terminal_or_a_file_it_says_to_use_file_and_exits_2(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    process = edge_process(
        "technician",
        "set-password",
        "--config",
        str(config),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = process.communicate(timeout=60)

    assert process.returncode == 2, err
    assert b"not on a terminal" in err and b"--file F" in err and b"nothing was written" in err
    assert out == b"" and b"Traceback" not in err
    assert not (tmp_path / "data").exists()


def test_set_password_replaces_an_existing_one_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    store_password(tmp_path / "data", PASSWORD)
    secret = tmp_path / "pw"
    secret.write_text(NEW_PASSWORD + "\r\n")

    assert main(set_password(config, secret)) == 0

    assert "technician password replaced in" in capsys.readouterr().out
    stored = load_password_hash(tmp_path / "data")
    assert stored is not None and verify_password(stored, NEW_PASSWORD)
    assert not verify_password(stored, PASSWORD)
    assert stat.S_IMODE((tmp_path / "data" / PASSWORD_FILE).stat().st_mode) == 0o600


async def test_a_running_agent_takes_the_new_password_and_logs_out_the_old_sessions(
    tmp_path: Path,
) -> None:
    async with (
        diagnostics_site(tmp_path) as site,
        httpx.AsyncClient(base_url=site.url) as old_session,
        httpx.AsyncClient(base_url=site.url) as anyone,
    ):
        assert (await old_session.post("/login", json={"password": PASSWORD})).status_code == 200
        assert (await old_session.get("/api/status")).status_code == 200
        secret = tmp_path / "pw"
        secret.write_text(NEW_PASSWORD)
        args = ["technician", "set-password", "--data-dir", str(site.data_dir)]

        assert main([*args, "--file", str(secret)]) == 0

        assert (await old_session.get("/api/status")).status_code == 401
        assert (await anyone.post("/login", json={"password": PASSWORD})).status_code == 401
        assert (await anyone.post("/login", json={"password": NEW_PASSWORD})).status_code == 200
        assert (await anyone.get("/api/status")).status_code == 200
        assert (await anyone.post("/logout", headers={CSRF_HEADER: "1"})).status_code == 200


def init_args(tmp_path: Path) -> list[str]:
    """`init` of a Modbus starter whose data_dir is tmp_path/data."""
    out = tmp_path / "site.toml"
    return ["init", "--drivers", "modbus", "--out", str(out), "--data-dir", str(tmp_path / "data")]


def test_init_without_a_password_says_the_page_stays_locked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(init_args(tmp_path)) == 0  # pytest's stdin is no terminal: nothing is asked

    out = capsys.readouterr().out.splitlines()
    assert out[-1] == NO_PASSWORD_NOTICE
    assert "locked (503)" in out[-1] and "tollgate-edge technician set-password" in out[-1]


def test_init_says_nothing_about_a_password_given_now_or_set_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "pw"
    secret.write_text(NEW_PASSWORD)
    assert main([*init_args(tmp_path), "--technician-password-file", str(secret)]) == 0
    assert "technician password stored in" in capsys.readouterr().out

    assert main([*init_args(tmp_path), "--force"]) == 0  # the one stored above is still there

    assert NO_PASSWORD_NOTICE not in capsys.readouterr().out


class Terminal:
    """`tollgate-edge ARGS` with a pseudo-terminal as stdin and stdout, as an installer types it."""

    def __init__(self, *args: str) -> None:
        self.primary, secondary = pty.openpty()
        self.process = edge_process(*args, stdin=secondary, stdout=secondary, stderr=secondary)
        os.close(secondary)
        self.output = ""

    def read_until(self, text: str, *, limit: float = 60) -> None:
        """Read what the command prints until `text` shows (or it exits, or `limit` seconds)."""
        deadline = time.monotonic() + limit
        while text not in self.output and time.monotonic() < deadline:
            if select.select([self.primary], [], [], 0.1)[0]:
                try:
                    chunk = os.read(self.primary, 65536)
                except OSError:  # the command exited and closed the terminal
                    return
                self.output += chunk.decode(errors="replace")

    def type_line(self, line: str) -> None:
        os.write(self.primary, line.encode() + b"\n")

    def finish(self) -> int:
        """Its exit code, after reading the rest of what it printed (killed if it waits)."""
        self.read_until("\0", limit=60 if self.process.poll() is None else 1)
        try:
            code = self.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        os.close(self.primary)
        return code


PROMPT = "technician password (for the diagnostics page): "


def test_on_a_terminal_a_password_set_before_is_kept_without_asking(tmp_path: Path) -> None:
    """A pasted walkthrough (`init` with a password file, then `init --force` or `enroll`
    without one) goes on instead of stopping at a prompt that would swallow the next line."""
    secret = tmp_path / "pw"
    secret.write_text(NEW_PASSWORD)
    assert main([*init_args(tmp_path), "--technician-password-file", str(secret)]) == 0
    stored = (tmp_path / "data" / PASSWORD_FILE).read_bytes()

    terminal = Terminal(*init_args(tmp_path), "--force")
    code = terminal.finish()

    assert code == 0, terminal.output
    assert PROMPT not in terminal.output
    assert "technician password already set in" in terminal.output
    assert "tollgate-edge technician set-password` replaces it" in terminal.output
    assert (tmp_path / "data" / PASSWORD_FILE).read_bytes() == stored


def test_on_a_terminal_without_a_password_init_asks_for_one(tmp_path: Path) -> None:
    """The other side of the test above: with nothing stored, the terminal is asked twice."""
    terminal = Terminal(*init_args(tmp_path))
    terminal.read_until(PROMPT)
    terminal.type_line(NEW_PASSWORD)
    terminal.read_until("again: ")
    terminal.type_line(NEW_PASSWORD)

    assert terminal.finish() == 0, terminal.output
    assert verify_password(load_password_hash(tmp_path / "data") or "", NEW_PASSWORD)


def write_big_status(data_dir: Path, gateway_id: str, devices: int) -> None:
    """status.json as the agent writes it, with enough devices to fill any pipe buffer."""
    health = {
        f"meter-{n}": DeviceHealth(
            device_id=f"meter-{n}", driver="modbus", address=f"tcp://10.0.0.{n % 250}:502"
        )
        for n in range(devices)
    }
    outbox = OutboxStats(
        last_seq=0,
        acked_seq=0,
        backlog=0,
        oldest_unsent=None,
        used_bytes=4096,
        file_bytes=4096,
        budget_bytes=10**8,
        synced=True,
        dead_letters=0,
    )
    document = status_document(
        gateway_id=gateway_id,
        state="running",
        outbox=outbox,
        outbox_full=False,
        link=LinkHealth(),
        devices=health,
    )
    data_dir.mkdir(parents=True)
    write_status(data_dir / STATUS_FILE, document)


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_status_into_a_reader_that_stops_after_one_line_ends_without_a_traceback(
    tmp_path: Path, as_json: bool
) -> None:
    config = write_config(tmp_path, gateway_id="gw-pipe")
    write_big_status(tmp_path / "data", "gw-pipe", 30_000)
    flags = ["--json"] if as_json else []
    with edge_process(
        "status", "--config", str(config), *flags, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()  # `| head -1`: one line, then the reader is gone
        process.stdout.close()
        err = process.stderr.read()
        process.wait(timeout=60)

    assert first.startswith(b"{") if as_json else b"gw-pipe" in first
    assert b"Traceback" not in err and b"BrokenPipeError" not in err, err.decode()
    assert err == b""
    assert process.returncode == EXIT_BROKEN_PIPE == 141


def test_a_reader_gone_before_the_first_write_ends_without_a_message(tmp_path: Path) -> None:
    """Small output stays in Python's buffer until exit: the broken pipe shows at that flush."""
    config = write_config(tmp_path)
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read
    try:
        process = edge_process(
            "check-config", "--config", str(config), stdout=write_end, stderr=subprocess.PIPE
        )
    finally:
        os.close(write_end)
    _out, err = process.communicate(timeout=60)

    assert err == b"", err.decode()
    assert process.returncode == EXIT_BROKEN_PIPE


def test_a_broken_pipe_that_is_not_stdouts_is_not_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A BrokenPipeError from a socket (made here by raising it: a peer closing mid-write cannot
    be staged on the status command) is an unexpected failure, not a reader that went away."""
    config = write_config(tmp_path, gateway_id="gw-pipe")

    def broken(_path: Path) -> dict[str, object]:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("edge.status.read_status", broken)  # imported by the command
    with pytest.raises(BrokenPipeError):
        main(["status", "--config", str(config)])
