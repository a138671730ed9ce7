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

from edge.alarms import derive_alarms, format_age, format_mb
from edge.errors import GatewayError
from edge.forwarder import LinkHealth
from edge.health import DeviceHealth
from edge.heartbeat import HeartbeatHealth
from edge.outbox import OutboxStats

STATUS_FILE = "status.json"
PUBLISH_EVERY = 2.0
_LABELS = {"alarm": "ALARM", "warn": "WARNING"}
STALE_AFTER = 30.0  # seconds: a status this old was not rewritten by a running agent


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
    """One snapshot of everything a technician needs first, its alarms derived from it."""
    now = datetime.now(UTC)
    alarms = derive_alarms(
        now=now,
        outbox=outbox,
        outbox_full=outbox_full,
        link=link,
        heartbeat=heartbeat,
        devices=devices.values(),
        clock=clock,
    )
    return {
        "gateway_id": gateway_id,
        "state": state,
        "written_at": now.isoformat(),
        "pid": os.getpid(),
        "clock": clock,
        "identity": identity or {},
        "alarms": [alarm.as_dict() for alarm in alarms],
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


def format_status(document: dict[str, Any], *, now: datetime | None = None) -> str:
    """The status as a technician reads it in a terminal: the alarms first, sizes in MB, times
    as ages (from `now`, the reader's clock)."""
    now = now or datetime.now(UTC)
    outbox, link = document["outbox"], document["cloud_link"]
    alarms = [_alarm(alarm) for alarm in document.get("alarms") or []]
    oldest = outbox["oldest_unsent"]
    lines = [
        f"gateway {document['gateway_id']}: {state_line(document)} (as of {_as_of(document, now)})",
        *(f"{_LABELS.get(alarm['severity'], 'ALARM')}: {alarm['message']}" for alarm in alarms),
        f"outbox: seq {outbox['last_seq']}, {outbox['backlog']} unsent "
        f"(oldest {format_age(now, oldest) if oldest else '-'}), {format_mb(outbox['used_bytes'])} "
        f"of {format_mb(outbox['budget_bytes'])} budget, {outbox['dead_letters']} dead letters",
        f"cloud: {(document.get('identity') or {}).get('cloud_url') or '-'}, last success "
        f"{format_age(now, link['last_success'])}, last error {_error(now, link)}",
    ]
    beats = document.get("heartbeat")
    if beats:
        lines.append(
            f"heartbeat: {beats['sent']} sent, {beats['failed']} failed, last sent "
            f"{format_age(now, beats['last_sent_at'])}, last error {_error(now, beats)}"
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
    troubled = {alarm.get("device_id") for alarm in alarms if alarm["code"] == "device_errors"}
    for device in document["devices"]:
        counts = {**device["errors"], **device["protocol"]}
        shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-"
        state = device["state"]
        if state == "ok" and device["device_id"] in troubled:
            state = "ok, recent errors"
        lines.append(
            f"{device['device_id']:16} {device['driver']:7} {state:22} "
            f"{device['consecutive_failures']:>8}  {shown}"
        )
        if device.get("bad_readings"):
            lines.append(f"{'':16} last bad reading: {device['last_bad_reading']}")
    return "\n".join(lines)


def state_line(document: dict[str, Any]) -> str:
    """The agent's state, with the number of alarms when there are any: "running, 2 alarms"."""
    count = len(document.get("alarms") or [])
    if not count:
        return str(document["state"])
    return f"{document['state']}, {count} alarm{'s' if count > 1 else ''}"


def _alarm(alarm: dict[str, Any] | str) -> dict[str, Any]:
    # A status.json written before alarms were records held bare codes ("outbox_full").
    if isinstance(alarm, str):
        return {"code": alarm, "severity": "alarm", "message": alarm, "device_id": None}
    return alarm


def _as_of(document: dict[str, Any], now: datetime) -> str:
    written = datetime.fromisoformat(document["written_at"])
    age = format_age(now, written)
    if document["state"] == "running" and (now - written).total_seconds() > STALE_AFTER:
        return f"{age}: not rewritten since; is the agent still running?"
    return age


def _error(now: datetime, health: dict[str, Any]) -> str:
    if not health.get("last_error"):
        return "none"
    return f"{format_age(now, health.get('last_error_at'))}: {health['last_error']}"
