"""The real `tollgate-cloud` and `tollgate-edge` commands as child processes.

The demo and the end-to-end tests run the deployables exactly as an operator would, so a crash
test can `kill -9` the agent and an outage test can stop the collector.
"""

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Self

import httpx

BIN = Path(sys.executable).parent
STARTUP_TIMEOUT = 30.0


class ProcessFailed(RuntimeError):
    """A child command failed; the message carries the tail of its log."""


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


async def run_command(*args: str, log_path: Path, env: Mapping[str, str] | None = None) -> str:
    """Run a command to completion (with `env` added to this process's environment); return its
    stdout, raise `ProcessFailed` on failure."""
    process = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_environment(env),
    )
    stdout, stderr = await process.communicate()
    with log_path.open("ab") as log:
        log.write(b"$ " + " ".join(args).encode() + b"\n" + stdout + stderr)
    if process.returncode != 0:
        raise ProcessFailed(
            f"{' '.join(args)} exited {process.returncode}: {stderr.decode(errors='replace')}"
        )
    return stdout.decode()


def _environment(extra: Mapping[str, str] | None) -> dict[str, str] | None:
    """This process's environment plus `extra` (None: inherit it unchanged)."""
    return None if not extra else {**os.environ, **extra}


class _Child:
    """A long-running child process whose output goes to a log file."""

    def __init__(
        self, args: list[str], *, log_path: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.args = args
        self.log_path = log_path
        self.env = dict(env or {})  # added to the environment of the process
        self.process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    async def spawn(self) -> None:
        """Start the process (appending to its log)."""
        if self.process is not None and self.process.returncode is None:
            raise RuntimeError(f"{self.args[0]} is already running")
        self._log = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            *self.args,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
            env=_environment(self.env),
        )

    async def terminate(self, grace: float = 15.0) -> int:
        """SIGTERM and wait (SIGKILL after `grace` seconds); return the exit code."""
        if self.process is None:
            return 0
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), grace)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self._reap()

    async def kill(self) -> None:
        """SIGKILL: no cleanup, no flush, like a power cut."""
        if self.process is not None and self.process.returncode is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()
        self._reap()

    def _reap(self) -> int:
        code = 0 if self.process is None else (self.process.returncode or 0)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.returncode is None


class CollectorProcess(_Child):
    """`tollgate-cloud serve` on a loopback port. `env` (e.g. TOLLGATE_SELLER,
    TOLLGATE_PUBLIC_URL) is the collector's settings, given to `serve` and every admin command
    alike, since a CLI finalization or export reads the same settings."""

    def __init__(
        self, *, db_url: str, port: int, log_path: Path, env: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(
            [
                str(BIN / "tollgate-cloud"),
                "serve",
                "--db",
                db_url,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            log_path=log_path,
            env=env,
        )
        self.db_url = db_url
        self.url = f"http://127.0.0.1:{port}"
        self.reader_key: str | None = None

    async def migrate(self) -> None:
        """Create or upgrade the schema, and make a viewer key for reading what is stored."""
        await self.admin("migrate")
        if self.reader_key is None:
            created = await self.admin("apikey", "create", "--name", "reader", "--role", "viewer")
            self.reader_key = created.strip()

    def reader_headers(self) -> dict[str, str]:
        """The `Authorization` header of the viewer key `migrate` made."""
        if self.reader_key is None:
            raise ProcessFailed("migrate the collector before reading from it")
        return {"Authorization": f"Bearer {self.reader_key}"}

    async def add_gateway(self, gateway_id: str, public_key: Path) -> None:
        """Register a gateway's public key."""
        await self.admin("gateway", "add", "--id", gateway_id, "--public-key", str(public_key))

    async def admin(self, *args: str) -> str:
        """Run `tollgate-cloud ARGS --db URL` (an admin command on this collector's database);
        its stdout."""
        command = (str(BIN / "tollgate-cloud"), *args, "--db", self.db_url)
        return await run_command(*command, log_path=self.log_path, env=self.env)

    async def start(self) -> None:
        """Serve, and wait until /healthz answers."""
        await self.spawn()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT
        async with httpx.AsyncClient(base_url=self.url) as client:
            while loop.time() < deadline:
                if not self.running:
                    raise ProcessFailed(f"collector exited:\n{_tail(self.log_path)}")
                try:
                    if (await client.get("/healthz", timeout=1)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        await self.terminate()
        raise ProcessFailed(f"collector did not become healthy:\n{_tail(self.log_path)}")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.terminate()


class AgentProcess(_Child):
    """`tollgate-edge run --config FILE`."""

    def __init__(self, *, config_path: Path, log_path: Path) -> None:
        super().__init__(
            [str(BIN / "tollgate-edge"), "run", "--config", str(config_path)], log_path=log_path
        )
        self.config_path = config_path

    async def keygen(self) -> str:
        """Make the gateway key if missing; return its public key PEM."""
        return await run_command(
            str(BIN / "tollgate-edge"),
            "keygen",
            "--config",
            str(self.config_path),
            log_path=self.log_path,
        )

    async def __aenter__(self) -> Self:
        await self.spawn()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.terminate()


async def fetch_events(client: httpx.AsyncClient, **filters: Any) -> list[dict[str, Any]]:
    """Every event the collector holds that matches `filters`, following the cursor."""
    events: list[dict[str, Any]] = []
    params: dict[str, Any] = {**filters, "limit": 1000}
    while True:
        response = await client.get("/v1/events", params=params)
        response.raise_for_status()
        page = response.json()
        events.extend(page["events"])
        if not page.get("next_cursor"):
            return events
        params["cursor"] = page["next_cursor"]


def committed_counters(outbox_path: Path) -> dict[tuple[str, str], int]:
    """The counter values a running agent has committed, read-only (empty if none yet)."""
    if not outbox_path.exists():
        return {}
    db = sqlite3.connect(f"file:{outbox_path}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute("SELECT device_id, point, value FROM counters").fetchall()
    except sqlite3.DatabaseError:  # not created yet, or a damaged file the agent will quarantine
        return {}
    finally:
        db.close()
    return {(device, point): int(value) for device, point, value in rows}


class BleLockSimProcess(_Child):
    """`tollgate-sim ble-lock --once`: locks on a virtual air whose HCI port the agent opens."""

    def __init__(self, *, locks: int, tick: float, report_path: Path, log_path: Path) -> None:
        super().__init__(
            [
                str(BIN / "tollgate-sim"),
                "ble-lock",
                "--locks",
                str(locks),
                "--tick",
                str(tick),
                "--once",
                "--report",
                str(report_path),
            ],
            log_path=log_path,
        )
        self.report_path = report_path

    async def start(self) -> str:
        """Start the locks; return the `[ble] backend` that reaches their air."""
        await self.spawn()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT
        while loop.time() < deadline:
            if not self.running:
                raise ProcessFailed(f"ble-lock simulator exited:\n{_tail(self.log_path)}")
            for line in self.log_path.read_text(errors="replace").splitlines():
                if "backend = " in line:
                    return line.split("backend = ", 1)[1].strip()
            await asyncio.sleep(0.05)
        await self.terminate()
        raise ProcessFailed(f"ble-lock simulator did not start:\n{_tail(self.log_path)}")
