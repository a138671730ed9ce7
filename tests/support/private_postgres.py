"""A private PostgreSQL server for one test, which the test may stop and start at will.

The machine's shared server (127.0.0.1:5432) must never be stopped: other tests use it. This one
is initialised with initdb in its own directory, listens on a free loopback port with trust
authentication, and is driven with pg_ctl. PostgreSQL refuses to run as root, so when we are root
every command runs as the `postgres` OS user (`runuser -u postgres --`) and the directory is
made theirs. Blocking calls are plain functions: an async test calls them through
`asyncio.to_thread`.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.support.waiting import free_port

PG_BIN = Path(os.environ.get("TOLLGATE_PG_BIN", "/usr/lib/postgresql/15/bin"))
OS_USER = "postgres"


class PostgresFailed(RuntimeError):
    """initdb or pg_ctl failed; the message carries their output and the server log's tail."""


def postgres_binaries() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None when this machine has none."""
    if all(os.access(PG_BIN / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
        return PG_BIN
    return None


class PrivatePostgres:
    """initdb + pg_ctl on a free port in a fresh directory; removed on exit."""

    def __init__(self, *, database: str = "tollgate") -> None:
        binaries = postgres_binaries()
        if binaries is None:
            raise PostgresFailed(f"no initdb/pg_ctl/postgres in {PG_BIN}")
        self.bin = binaries
        self.port = free_port()
        self.database = database
        self.root = Path(tempfile.mkdtemp(prefix="tollgate-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "server.log"
        self._as_root = os.geteuid() == 0
        self._entered = False

    @property
    def admin_dsn(self) -> str:
        """asyncpg/libpq DSN of the `postgres` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def dsn(self) -> str:
        """asyncpg/libpq DSN of the test database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the test database (what `--db` takes)."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{self.database}"

    def init(self) -> None:
        """initdb (trust, UTF8), start, and create the test database."""
        if self._as_root:
            shutil.chown(self.root, user=OS_USER)
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "--encoding=UTF8", "--no-sync",
        )  # fmt: skip
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\n"
                # A test server: crash safety of the OS is not what is tested here.
                "fsync = off\n"
                "max_connections = 60\n"
                "shared_buffers = 64MB\n"
            )
        self.start()
        self._run(
            str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
            "-U", "postgres", self.database,
        )  # fmt: skip

    def start(self) -> None:
        """pg_ctl start, waiting until it accepts connections."""
        self._run(
            str(self.bin / "pg_ctl"), "start", "-D", str(self.data), "-l", str(self.log_path),
            "-w", "-t", "60",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop (`fast`: sessions cut, clean shutdown; `immediate`: like a crash)."""
        self._run(str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", mode, "-w")

    @property
    def running(self) -> bool:
        """Whether the server is up (pg_ctl status)."""
        status = subprocess.run(
            self._command(str(self.bin / "pg_ctl"), "status", "-D", str(self.data)),
            capture_output=True,
            check=False,
        )
        return status.returncode == 0

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _command(self, *args: str) -> list[str]:
        return ["runuser", "-u", OS_USER, "--", *args] if self._as_root else list(args)

    def _run(self, *args: str) -> None:
        done = subprocess.run(self._command(*args), capture_output=True, check=False)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")
            raise PostgresFailed(
                f"{' '.join(args)} exited {done.returncode}:\n{output}\n{self.log_tail()}"
            )

    def __enter__(self) -> Self:
        if self._entered:
            raise PostgresFailed("a PrivatePostgres is entered once")
        self._entered = True
        try:
            self.init()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.data.exists() and self.running:
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
