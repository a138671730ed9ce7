"""A running collector to fuzz: a fresh database with known ids, one key per role, and
`tollgate-cloud serve` on a free loopback port, all torn down on exit."""

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.auth.service import create_api_key
from cloud.db import Database

REPO = Path(__file__).resolve().parents[1]
CATALOG = REPO / "firmware_sims" / "demo_catalog.toml"
SOURCE_MAPPING = REPO / "firmware_sims" / "demo_source.toml"
SOURCE_ID = "yard-bins"
SITE_ID = "fuzz-site"
GATEWAY_ID = "fuzz-gw"
POSTGRES_ADMIN_DSN = os.environ.get(
    "TOLLGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)
START_TIMEOUT_S = 60.0


class CollectorFailed(Exception):
    """A setup step or the server itself failed; the message says which and shows its output."""


@dataclass(frozen=True)
class Collector:
    """A served collector: its base URL and a secret API key per role."""

    backend: str
    base_url: str
    keys: dict[str, str]
    log: Path


def cli(name: str) -> str:
    """A console script of this environment (`tollgate-cloud`, `st`)."""
    return str(Path(sys.executable).parent / name)


def run_cloud(*args: str, db_url: str) -> None:
    """`tollgate-cloud ARGS --db URL`; `CollectorFailed` with its output if it fails."""
    command = [cli("tollgate-cloud"), *args, "--db", db_url]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CollectorFailed(f"{' '.join(args)} failed: {result.stderr.strip()}")


def postgres_reachable() -> bool:
    """Whether the machine's PostgreSQL answers on `TOLLGATE_TEST_PG`."""
    import asyncpg

    async def probe() -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=3)
        await connection.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True


async def _admin_execute(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def fresh_database(backend: str, workdir: Path) -> Iterator[str]:
    """The URL of a new empty database (a SQLite file, or a PostgreSQL database dropped after)."""
    name = f"tollgate_fuzz_{uuid.uuid4().hex[:12]}"
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir}/{name}.sqlite"
        return
    asyncio.run(_admin_execute(f'CREATE DATABASE "{name}"'))
    try:
        base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0]
        yield f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        asyncio.run(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def load_fixtures(db_url: str, workdir: Path) -> None:
    """Migrate, then the demo catalog, the demo's direct source, one gateway and this month's
    draft invoices, so that ids exist (fuzz/schemathesis.toml names them)."""
    run_cloud("migrate", db_url=db_url)
    run_cloud("catalog", "load", str(CATALOG), db_url=db_url)
    run_cloud("source", "add", SOURCE_ID, "--mapping", str(SOURCE_MAPPING), db_url=db_url)
    run_cloud("site", "add", "--id", SITE_ID, "--name", "Fuzz site", db_url=db_url)
    public_key = workdir / "gateway.pub.pem"
    public_key.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    run_cloud("gateway", "add", "--id", GATEWAY_ID, "--public-key", str(public_key), db_url=db_url)
    # Draft invoices for this month (base fees), so that invoice ids and their lines exist.
    run_cloud("invoice", "run", "--period", datetime.now(UTC).strftime("%Y-%m"), db_url=db_url)


def create_keys(db_url: str, roles: Sequence[str]) -> dict[str, str]:
    """One API key per role through the auth service; the secrets by role."""

    async def run() -> dict[str, str]:
        async with Database(db_url) as db, db.transaction(write=True) as session:
            issued = [
                await create_api_key(session=session, name=f"fuzz {role}", scope=role)
                for role in roles
            ]
        return {key.scope: key.secret for key in issued}

    return asyncio.run(run())


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(base_url: str, server: "subprocess.Popen[bytes]", log: Path) -> None:
    """Return once /healthz answers 200; `CollectorFailed` if the server exits or never does."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise CollectorFailed(f"the collector exited ({server.returncode}):\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise CollectorFailed(f"the collector did not answer /healthz in {START_TIMEOUT_S:.0f} s")


@contextmanager
def serve(db_url: str, log: Path) -> Iterator[str]:
    """`tollgate-cloud serve` on a free port until exit; its base URL."""
    port = free_port()
    command = [cli("tollgate-cloud"), "serve", "--db", db_url, "--host", "127.0.0.1"]
    with serving([*command, "--port", str(port)], port=port, log=log) as base_url:
        yield base_url


@contextmanager
def serving(
    command: Sequence[str | Path],
    *,
    port: int,
    log: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """A collector command serving on `port` until the block ends; its base URL once /healthz
    answers (its output goes to `log`)."""
    with log.open("wb") as output:
        server = subprocess.Popen(
            [str(part) for part in command], cwd=cwd, env=env, stdout=output, stderr=output
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_healthy(base_url, server, log)
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@contextmanager
def running_collector(backend: str, roles: Sequence[str], workdir: Path) -> Iterator[Collector]:
    """A collector on a fresh `backend` database with fixtures and keys, served until exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    with fresh_database(backend, workdir) as db_url:
        load_fixtures(db_url, workdir)
        keys = create_keys(db_url, roles)
        log = workdir / "collector.log"
        with serve(db_url, log) as base_url:
            yield Collector(backend=backend, base_url=base_url, keys=keys, log=log)
