"""Structured logs: one JSON object per line on stderr (journald and log shippers read them) and,
for `tollgate-edge run`, the same lines in `data_dir/logs/agent.log`.

The file rotates (`LOG_FILE_BYTES` per file, `LOG_FILES` files: agent.log, agent.log.1, ...), so
a support bundle carries the logs on a gateway whose journal is volatile or unreachable. When
the file cannot be opened, or a write or rotation fails later (disk full), the agent keeps
running on stderr alone and says so once, on stderr: a log is never worth stopping billing for.
"""

import contextlib
import logging
import sys
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path

import orjson

LOG_DIR = "logs"
AGENT_LOG = "agent.log"
LOG_FILE_BYTES = 5 * 1024 * 1024
LOG_FILES = 5  # agent.log and four rotated ones: at most 25 MiB on disk
_NOISY = ("httpx", "httpcore", "pymodbus")

log = logging.getLogger(__name__)


class JsonFormatter(logging.Formatter):
    """Formats a record as JSON with the fields passed in `extra={"fields": {...}}`."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line."""
        document = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        document.update(getattr(record, "fields", {}))
        if record.exc_info:
            document["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(document, default=str).decode()


class AgentLogFile(RotatingFileHandler):
    """The rotating JSON-lines file; a write that fails turns it off, said once on stderr."""

    def __init__(self, path: Path, *, max_bytes: int, files: int) -> None:
        super().__init__(path, maxBytes=max_bytes, backupCount=files - 1, encoding="utf-8")
        self.setFormatter(JsonFormatter())
        self.off = False

    def emit(self, record: logging.LogRecord) -> None:
        """Write the line unless the file is off."""
        if not self.off:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        """Turn the file off and say why, once, instead of a traceback per line."""
        if self.off:
            return
        self.off = True
        error = sys.exc_info()[1]
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        _say_file_log_off(f"{self.baseFilename}: {reason}")
        self.close()


def configure_logging(
    level: str = "info",
    *,
    log_dir: Path | None = None,
    max_bytes: int = LOG_FILE_BYTES,
    files: int = LOG_FILES,
) -> Path | None:
    """Send JSON lines to stderr at `level` and, with `log_dir`, to `log_dir/agent.log` too.

    Returns the log file's path, or None when there is none (not asked for, or it could not be
    opened: then one warning on stderr says why).
    """
    if files < 1 or max_bytes < 1:
        raise ValueError("a rotating log needs at least one file of at least one byte")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for replaced in root.handlers:
        if isinstance(replaced, AgentLogFile):
            replaced.close()  # configured again: one file handler, not two
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if log_dir is None:
        return None
    path = log_dir / AGENT_LOG
    try:
        _make_dir(log_dir)
        root.addHandler(AgentLogFile(path, max_bytes=max_bytes, files=files))
    except OSError as exc:
        _say_file_log_off(f"{path}: {exc.strerror or exc}")
        return None
    return path


def _make_dir(log_dir: Path) -> None:
    # A file in its place: opening the log then names the problem ("Not a directory").
    with contextlib.suppress(FileExistsError):
        log_dir.mkdir(mode=0o750, parents=True, exist_ok=True)


def _say_file_log_off(reason: str) -> None:
    # Only the stderr handler is left to hear it (the file's handler is not attached or off).
    log.warning(
        f"file log off: {reason}; logging to stderr only (the journal under systemd)",
        extra={"fields": {"file_log": "off"}},
    )
