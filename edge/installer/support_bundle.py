"""What support needs to see a gateway, and none of its secrets: both support bundles.

`bundle_members` builds the members both bundles hold, from facts gathered by `gather_facts`:

- `config.json`: the loaded site config with the value of every key named like password,
  secret or token replaced by "***" (file paths such as `password_file` stay: they say where,
  not what; `edge.redaction` decides);
- `status.json`: the agent's status (devices, outbox, cloud link, alarms), when there is one;
- `outbox.json`: counts, chain position and dead-letter reasons, read through a read-only
  SQLite connection (the agent may be running; the events themselves are not included);
- `quarantine.json`: names and sizes of quarantined outbox files;
- `logs/<file>`: the tails of `data_dir/logs/*.log` and their rotated `*.log.N`, newest first,
  `LOG_TAIL_BYTES` in all, each starting at a whole line (`edge.logs` writes agent.log there);
- `versions.json` and `manifest.json` (what is inside, when, from which gateway, made by whom).

The two bundles differ only where they must:

- `tollgate-edge support-bundle` (this module, a tar.gz) adds `site.toml`, the config file's own
  text redacted line by line (its comments help support), and its `status.json` is the file the
  agent last published, absent when no agent ever ran;
- the page's bundle (`edge.diagnostics.bundle`, a zip) has the live status and adds
  `recent-events.json` (the live tail); the running agent was handed a loaded config, not a
  file, so it has no `site.toml`; when there is no log file (the file log is off) it carries the
  agent's last log lines from memory as `logs/in-memory.log` instead.

Private keys, the technician password hash and the MQTT password file are never read: the
builder opens only the files named above, and in `logs/` only regular files named `*.log` or
`*.log.N` (no symlink is followed), so a secret cannot slip in by being in data_dir.
"""

import io
import os
import platform
import re
import sqlite3
import stat
import tarfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from edge.config import SiteConfig, load_config
from edge.errors import ConfigError, GatewayError
from edge.logs import LOG_DIR
from edge.redaction import is_secret_key
from edge.status import STATUS_FILE

REDACTED = "***"
LOG_TAIL_BYTES = 10 * 1024 * 1024  # in all: two full log files (edge.logs.LOG_FILE_BYTES)
LOG_NAME = re.compile(r"^[\w.-]+\.log(\.\d+)?$")
_KEY = re.compile(r"^\s*#?\s*([\w-]+)\s*=")
_LIBRARIES = (
    "tollgate",
    "pydantic",
    "cryptography",
    "pymodbus",
    "pyserial",
    "pyserial-asyncio-fast",
    "bleak",
    "bumble",
    "aiomqtt",
    "paho-mqtt",
    "httpx",
    "tenacity",
    "starlette",
    "uvicorn",
)


@dataclass(frozen=True)
class BundleFacts:
    """What both bundles report, gathered from the gateway (`gather_facts`)."""

    gateway_id: str | None
    config: dict[str, Any]  # redacted
    status: bytes | None
    outbox: dict[str, Any]
    quarantine: list[dict[str, Any]]
    versions: dict[str, Any]
    logs: dict[str, bytes]  # file name in logs/ -> its tail


def gather_facts(
    config: SiteConfig, *, status: bytes | None, log_bytes: int = LOG_TAIL_BYTES
) -> BundleFacts:
    """Read what the bundles report (blocking: outbox, log files); `status` as the caller has it."""
    gateway = config.gateway
    return BundleFacts(
        gateway_id=_gateway_id(config),
        config=redacted_config(config),
        status=status,
        outbox=outbox_summary(gateway.outbox_path),
        quarantine=_quarantined(gateway.outbox_path),
        versions=_versions(),
        logs=log_tails(gateway.data_dir / LOG_DIR, limit=log_bytes),
    )


def bundle_members(
    facts: BundleFacts, *, extra: Mapping[str, bytes], made_by: str, made_at: datetime
) -> dict[str, bytes]:
    """The members of a bundle: the common ones, the bundle's own `extra`, the manifest (pure)."""
    members: dict[str, bytes] = {
        "config.json": _json(facts.config),
        "outbox.json": _json(facts.outbox),
        "quarantine.json": _json(facts.quarantine),
        "versions.json": _json(facts.versions),
    }
    if facts.status is not None:
        members["status.json"] = facts.status
    members.update({f"{LOG_DIR}/{name}": tail for name, tail in facts.logs.items()})
    members.update(extra)
    members["manifest.json"] = _json(
        {
            "gateway_id": facts.gateway_id,
            "created_at": made_at.isoformat(),
            "made_by": made_by,
            "files": sorted(members),
        }
    )
    return members


def build_support_bundle(config_path: Path, out: Path) -> Path:
    """Write the bundle for the gateway configured in `config_path` to `out`; return `out`."""
    config = load_config(config_path, require_id=False)  # a bundle helps before enrollment too
    status = config.gateway.data_dir / STATUS_FILE
    facts = gather_facts(config, status=status.read_bytes() if status.is_file() else None)
    site = redact_config(config_path.read_text(encoding="utf-8")).encode()
    members = bundle_members(
        facts,
        extra={"site.toml": site},
        made_by=f"tollgate-edge support-bundle --config {config_path}",
        made_at=datetime.now(UTC),
    )
    _write_tar(out, members)
    return out


def redact(value: Any) -> Any:
    """A copy of `value` with the values of secret-looking keys replaced by "***"."""
    if isinstance(value, dict):
        return {
            key: REDACTED if is_secret_key(str(key)) and item is not None else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


def redacted_config(config: SiteConfig) -> dict[str, Any]:
    """The site config as JSON with secrets removed."""
    document = orjson.loads(orjson.dumps(config.model_dump(mode="json"), default=str))
    return dict(redact(document))


def redact_config(text: str) -> str:
    """The config text with the values of secret-named keys replaced (paths to them kept)."""
    lines = []
    for line in text.splitlines():
        match = _KEY.match(line)
        if match and is_secret_key(match.group(1)):
            line = f'{line[: match.end()]} "{REDACTED}"'
        lines.append(line)
    return "\n".join(lines) + "\n"


def outbox_summary(path: Path) -> dict[str, Any]:
    """Counts, chain position and dead-letter reasons, read-only; the error if unreadable."""
    if not path.exists():
        return {"present": False}
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        return {"present": True, "error": str(exc)}
    try:
        return {"present": True, **_outbox_rows(db)}
    except sqlite3.Error as exc:
        return {"present": True, "error": str(exc)}
    finally:
        db.close()


def log_tails(log_dir: Path, *, limit: int) -> dict[str, bytes]:
    """The tails of the log files in `log_dir`, newest file first, `limit` bytes in all.

    Only regular files named `*.log` or `*.log.N` are read, never through a symlink. A tail cut
    short starts after its first newline, so every member begins with a whole line.
    """
    tails: dict[str, bytes] = {}
    left = limit
    for name in _log_files(log_dir):
        if left <= 0:
            break
        tail = _tail(log_dir / name, left)
        if tail is not None:
            tails[name], whole = tail
            left = left - len(tails[name]) if whole else 0  # cut short: the limit is reached
    return tails


def _log_files(log_dir: Path) -> list[str]:
    """Names of the log files, newest first (agent.log before agent.log.1 on a tie)."""
    try:
        entries = list(os.scandir(log_dir))
    except OSError:  # no logs directory (the file log off, or never on): no logs
        return []
    found = []
    for entry in entries:
        if LOG_NAME.match(entry.name) and entry.is_file(follow_symlinks=False):
            found.append((-entry.stat(follow_symlinks=False).st_mtime_ns, _rotation(entry.name)))
    return [name for _, (_, name) in sorted(found)]


def _rotation(name: str) -> tuple[int, str]:
    suffix = name.rsplit(".", 1)[-1]
    return (int(suffix) if suffix.isdigit() else 0, name)


def _tail(path: Path, limit: int) -> tuple[bytes, bool] | None:
    """The last `limit` bytes of `path` from a line start, and whether that is the whole file;
    None if it is not a readable plain file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with open(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        size = handle.seek(0, io.SEEK_END)
        start = max(0, size - limit)
        handle.seek(start)
        data = handle.read(limit)
    if start > 0:
        cut = data.find(b"\n")
        data = data[cut + 1 :] if cut >= 0 else b""
    return data, start == 0


def _outbox_rows(db: sqlite3.Connection) -> dict[str, Any]:
    chain = db.execute("SELECT last_seq, acked_seq, synced FROM chain WHERE id = 1").fetchone()
    dead = db.execute(
        "SELECT first_seq, last_seq, status, reason, created_at FROM dead_letters ORDER BY id"
    ).fetchall()
    return {
        "unsent_events": int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0]),
        "last_seq": chain[0] if chain else None,
        "acked_seq": chain[1] if chain else None,
        "synced": bool(chain[2]) if chain else None,
        "dead_letters": [
            dict(zip(("first_seq", "last_seq", "status", "reason", "created_at"), row, strict=True))
            for row in dead
        ],
    }


def _quarantined(outbox: Path) -> list[dict[str, Any]]:
    files = sorted(outbox.parent.glob(f"{outbox.name}.corrupt-*"))
    return [{"name": f.name, "bytes": f.stat().st_size} for f in files if f.is_file()]


def _versions() -> dict[str, Any]:
    libraries: dict[str, str | None] = {}
    for name in _LIBRARIES:
        try:
            libraries[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            libraries[name] = None
    return {"python": platform.python_version(), "platform": platform.platform(), **libraries}


def _json(document: object) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2, default=str)


def _write_tar(out: Path, members: dict[str, bytes]) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(out, "w:gz") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(f"support-bundle/{name}")
                info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
                tar.addfile(info, io.BytesIO(data))
    except OSError as exc:
        raise GatewayError(f"{out}: cannot write the support bundle: {exc.strerror}") from exc


def _gateway_id(config: SiteConfig) -> str | None:
    """The gateway id, or None before enrollment (a bundle helps then too)."""
    try:
        return config.gateway.id
    except ConfigError:
        return None
