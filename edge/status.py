"""The running agent's status: outbox, cloud link and per-device health, as one JSON document.

The agent rewrites `data_dir/status.json` every few seconds (write to a temporary file, then
atomic rename), so `tollgate-edge status` and the diagnostics page can read a consistent
snapshot without talking to the agent process.
"""

import asyncio
import dataclasses
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from edge.errors import GatewayError
from edge.forwarder import LinkHealth
from edge.health import DeviceHealth
from edge.heartbeat import HeartbeatHealth
from edge.outbox import OutboxStats

STATUS_FILE = "status.json"
PUBLISH_EVERY = 2.0


def status_document(
    *,
    gateway_id: str,
    state: str,
    outbox: OutboxStats,
    outbox_full: bool,
    link: LinkHealth,
    devices: dict[str, DeviceHealth],
    clock: str | None = None,
    identity: dict[str, Any] | None = None,
    heartbeat: HeartbeatHealth | None = None,
) -> dict[str, Any]:
    """One snapshot of everything a technician needs first."""
    return {
        "gateway_id": gateway_id,
        "state": state,
        "written_at": datetime.now(UTC).isoformat(),
        "pid": os.getpid(),
        "clock": clock,
        "identity": identity or {},
        "alarms": ["outbox_full"] if outbox_full else [],
        "outbox": dataclasses.asdict(outbox),
        # HTTP statuses as text keys: orjson (status.json) refuses int keys.
        "cloud_link": {
            **dataclasses.asdict(link),
            "refusals": {str(status): count for status, count in link.refusals.items()},
        },
        "heartbeat": None if heartbeat is None else dataclasses.asdict(heartbeat),
        "devices": [health.as_dict() for health in devices.values()],
    }


def write_status(path: Path, document: dict[str, Any]) -> None:
    """Replace the status file atomically (a temporary name of this thread's own)."""
    temporary = path.with_name(f"{path.name}.{threading.get_ident()}.tmp")
    temporary.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    os.replace(temporary, path)


def read_status(path: Path) -> dict[str, Any]:
    """The last status the agent published."""
    try:
        document = orjson.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise GatewayError(f"{path}: no status yet; is the agent running?") from exc
    except (OSError, orjson.JSONDecodeError) as exc:
        raise GatewayError(f"{path}: unreadable status: {exc}") from exc
    if not isinstance(document, dict):
        raise GatewayError(f"{path}: status is not a JSON object")
    return document


async def publish_forever(path: Path, snapshot: Any) -> None:
    """Write `await snapshot()` to `path` every few seconds (until cancelled)."""
    while True:
        document = await snapshot()
        write = asyncio.ensure_future(asyncio.to_thread(write_status, path, document))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            # The thread goes on regardless: let it finish, so that it cannot overwrite the
            # final "stopped" status the agent writes once this task is done.
            await write
            raise
        await asyncio.sleep(PUBLISH_EVERY)


def format_status(document: dict[str, Any]) -> str:
    """The status as a technician reads it in a terminal."""
    outbox, link = document["outbox"], document["cloud_link"]
    lines = [
        f"gateway {document['gateway_id']}: {document['state']} (as of {document['written_at']})",
        f"alarms: {', '.join(document['alarms']) or 'none'}",
        f"outbox: seq {outbox['last_seq']}, {outbox['backlog']} unsent "
        f"(oldest {outbox['oldest_unsent'] or '-'}), {outbox['used_bytes']} of "
        f"{outbox['budget_bytes']} budget bytes, {outbox['dead_letters']} dead letters",
        f"cloud: last success {link['last_success'] or 'never'}, "
        f"last error {link['last_error'] or 'none'}",
    ]
    beats = document.get("heartbeat")
    if beats:
        lines.append(
            f"heartbeat: {beats['sent']} sent, {beats['failed']} failed, last sent "
            f"{beats['last_sent_at'] or 'never'}, last error {beats['last_error'] or 'none'}"
        )
    if outbox["dead_letters"]:
        last = link.get("last_dead_letter") or "before this start"
        lines.append(
            f"dead letters: {outbox['dead_letters']} batches the collector refused, "
            f"kept in the outbox with its answer (last: {last})"
        )
    if link.get("sink_refusals"):
        lines.append(
            f"refused when stored: {link['sink_refusals']} earlier batches the collector queued "
            f"and then refused (last: {link['last_sink_refusal']}); see the cloud's incidents"
        )
    lines += [
        f"{'device':16} {'driver':7} {'state':22} {'failures':>8}  errors / protocol",
    ]
    for device in document["devices"]:
        counts = {**device["errors"], **device["protocol"]}
        shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-"
        lines.append(
            f"{device['device_id']:16} {device['driver']:7} {device['state']:22} "
            f"{device['consecutive_failures']:>8}  {shown}"
        )
        if device.get("bad_readings"):
            lines.append(f"{'':16} last bad reading: {device['last_bad_reading']}")
    return "\n".join(lines)
