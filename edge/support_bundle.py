"""`tollgate-edge support-bundle`: what support needs to see a gateway, and none of its secrets.

The bundle is a tar.gz of:

- `site.toml`: the config with the value of every key named like password, secret or token
  replaced by "<redacted>" (file paths such as `password_file` stay: they say where, not what);
- `status.json`: the running agent's last published status, if any;
- `outbox.json`: counts, chain position and dead-letter reasons, read through a read-only
  SQLite connection (the agent may be running; the events themselves are not included);
- `quarantine.json`: names and sizes of quarantined outbox files;
- `logs/`: the tail of each `*.log` file in `data_dir/logs` (the agent logs to stderr, i.e.
  journald, unless the service redirects it there);
- `versions.json` and `manifest.json` (what is inside, when, from which gateway).

Private keys, the technician password hash and the MQTT password file are never read: the
builder only opens the files listed above, so a secret cannot slip in by being in data_dir.
"""

import io
import platform
import re
import sqlite3
import tarfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from edge.config import SiteConfig, load_config
from edge.errors import ConfigError, GatewayError
from edge.redaction import is_secret_key
from edge.status import STATUS_FILE

REDACTED = "<redacted>"
LOG_TAIL_BYTES = 5 * 1024 * 1024
LOG_DIR = "logs"
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
)


def build_support_bundle(config_path: Path, out: Path) -> Path:
    """Write the bundle for the gateway configured in `config_path` to `out`; return `out`."""
    config = load_config(config_path, require_id=False)  # a bundle helps before enrollment too
    data_dir = config.gateway.data_dir
    members: dict[str, bytes] = {
        "site.toml": redact_config(config_path.read_text(encoding="utf-8")).encode(),
        "outbox.json": _json(outbox_summary(config.gateway.outbox_path)),
        "quarantine.json": _json(_quarantined(config.gateway.outbox_path)),
        "versions.json": _json(_versions()),
    }
    status = data_dir / STATUS_FILE
    if status.is_file():
        members["status.json"] = status.read_bytes()
    for log in sorted((data_dir / LOG_DIR).glob("*.log")):
        members[f"logs/{log.name}"] = _tail(log, LOG_TAIL_BYTES)
    members["manifest.json"] = _json(
        {
            "gateway_id": _gateway_id(config),
            "created_at": datetime.now(UTC).isoformat(),
            "config": str(config_path),
            "files": sorted(members),
        }
    )
    _write_tar(out, members)
    return out


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


def _tail(path: Path, limit: int) -> bytes:
    with path.open("rb") as handle:
        size = handle.seek(0, io.SEEK_END)
        handle.seek(max(0, size - limit))
        return handle.read()


def _json(document: object) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2)


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
