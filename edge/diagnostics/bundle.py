"""The support bundle a technician downloads from the page and mails to support.

A zip with the members of `tollgate-edge support-bundle`
(`edge.installer.support_bundle.bundle_members`: redacted config, status, outbox summary,
quarantined files, log tails, versions, manifest), so support reads one layout whichever way the
bundle came. Where it must differ: the status is the live one, `recent-events.json` holds the last
committed events, there is no `site.toml` (the agent was handed a loaded config, not its file), and
when there is no log file (the file log is off) the agent's last log lines from memory come as
`logs/in-memory.log`.
"""

import io
import logging
import zipfile
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from edge.config import SiteConfig
from edge.installer.support_bundle import (
    LOG_TAIL_BYTES,
    bundle_members,
    gather_facts,
    redact,
    redacted_config,
)
from edge.logs import LOG_DIR, JsonFormatter

__all__ = ["LOG_LINES", "MEMORY_LOG", "RecentLogs", "build_bundle", "redact", "redacted_config"]

LOG_LINES = 1000
MEMORY_LOG = f"{LOG_DIR}/in-memory.log"


class RecentLogs(logging.Handler):
    """Keeps the last log lines in memory (as JSON) for the support bundle."""

    def __init__(self, size: int = LOG_LINES) -> None:
        super().__init__()
        self.lines: deque[str] = deque(maxlen=size)
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        """Remember one formatted line."""
        try:
            self.lines.append(self.format(record))
        except Exception:  # a broken record must never break the agent
            self.handleError(record)


def build_bundle(
    *,
    config: SiteConfig,
    status: dict[str, Any],
    logs: Iterable[str],
    events: Iterable[dict[str, Any]],
    log_bytes: int = LOG_TAIL_BYTES,
) -> bytes:
    """The zip file's bytes (blocking: reads the outbox and the log files)."""
    facts = gather_facts(config, status=_json(status), log_bytes=log_bytes)
    extra = {"recent-events.json": _json(list(events))}
    if not facts.logs:
        extra[MEMORY_LOG] = "".join(line + "\n" for line in logs).encode()
    members = bundle_members(
        facts, extra=extra, made_by="the diagnostics page", made_at=datetime.now(UTC)
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str)
