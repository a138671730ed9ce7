"""The support bundle a technician downloads from the page and mails to support.

A zip of what support asks for first: the status document (health of devices, outbox and cloud
link), the site config with every secret replaced by "***", the recent log lines and the last
events. Secrets are removed by key name (`edge.redaction`), so a new secret field is redacted
without anyone remembering to list it here.
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
from edge.logs import JsonFormatter
from edge.redaction import is_secret_key

REDACTED = "***"
LOG_LINES = 1000


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


def build_bundle(
    *,
    config: SiteConfig,
    status: dict[str, Any],
    logs: Iterable[str],
    events: Iterable[dict[str, Any]],
) -> bytes:
    """The zip file's bytes."""
    made = datetime.now(UTC).isoformat()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", f"Tollgate support bundle of {config.gateway.id}, {made}\n")
        archive.writestr("status.json", _json(status))
        archive.writestr("config.json", _json(redacted_config(config)))
        archive.writestr("recent-events.json", _json(list(events)))
        archive.writestr("agent.log", "".join(line + "\n" for line in logs))
    return buffer.getvalue()


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str)
