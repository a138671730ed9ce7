"""The status file: atomic replaces, a cancelled publisher never outlives its task, and
`tollgate-edge status` text: alarms first, sizes in MB, times as ages, the collector URL whole."""

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from edge.alarms import MB
from edge.forwarder import LinkHealth
from edge.health import DeviceHealth
from edge.outbox import OutboxStats
from edge.status import format_status, publish_forever, read_status, status_document, write_status


async def test_a_cancelled_publisher_has_finished_writing_when_its_task_ends(
    tmp_path: Path,
) -> None:
    path = tmp_path / "status.json"
    snapshots = 0

    async def snapshot() -> dict[str, Any]:
        nonlocal snapshots
        snapshots += 1
        return {"state": "running", "payload": "x" * 2_000_000}  # a write that takes a while

    for _ in range(20):
        task = asyncio.create_task(publish_forever(path, snapshot))
        while not snapshots:  # noqa: ASYNC110 (until the first write is under way)
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        # What the agent does next: the final status. No write may land after it.
        write_status(path, {"state": "stopped"})
        await asyncio.sleep(0.05)
        assert orjson.loads(path.read_bytes()) == {"state": "stopped"}
        assert list(tmp_path.glob("*.tmp")) == []  # noqa: ASYNC240 (a tiny test dir)
        snapshots = 0


def link_down_document(tmp_path: Path) -> dict[str, Any]:
    """A status with the collector down, a device with recent errors and an unsynced clock,
    through the status file as `tollgate-edge status` reads it."""
    now = datetime.now(UTC)
    link = LinkHealth(
        last_success=now - timedelta(minutes=14),
        last_error="ConnectError: [Errno 111] Connection refused",
        last_error_at=now - timedelta(seconds=20),
        consecutive_failures=7,
        failing_since=now - timedelta(minutes=12),
    )
    panel = DeviceHealth(device_id="it100-1", driver="it100", address="/dev/ttyUSB0", state="ok")
    panel.errors = Counter({"DeviceUnreachable": 114})
    panel.protocol = Counter({"bad_checksum": 95})
    panel.last_protocol_error, panel.last_protocol_error_at = "bad_checksum", now
    outbox = OutboxStats(
        last_seq=40,
        acked_seq=3,
        backlog=37,
        oldest_unsent=(now - timedelta(minutes=13)).isoformat(),
        used_bytes=int(3.2 * MB),
        file_bytes=int(3.2 * MB),
        budget_bytes=64 * MB,
        synced=True,
        dead_letters=0,
    )
    document = status_document(
        gateway_id="gw-1",
        state="running",
        outbox=outbox,
        outbox_full=False,
        link=link,
        devices={"it100-1": panel},
        clock="unsynced",
        identity={"cloud_url": "https://collector.eu-west.tollgate.example:8443"},
    )
    write_status(tmp_path / "status.json", document)
    return read_status(tmp_path / "status.json")


def test_status_prints_each_alarm_first_and_counts_them_in_the_state_line(
    tmp_path: Path,
) -> None:
    document = link_down_document(tmp_path)
    shown = format_status(document).splitlines()
    assert shown[0].startswith("gateway gw-1: running, 3 alarms (as of ")
    assert shown[1].startswith("ALARM: Cloud link down for 12 min: 7 batch attempts failed")
    assert "last error 20 s ago: ConnectError: [Errno 111] Connection refused" in shown[1]
    assert shown[2].startswith("WARNING: Device it100-1: answers, but counted errors")
    assert shown[3].startswith("WARNING: Clock not synchronized")
    assert shown[4] == (
        "outbox: seq 40, 37 unsent (oldest 13 min ago), 3.2 MB of 64.0 MB budget, 0 dead letters"
    )
    assert shown[5] == (
        "cloud: https://collector.eu-west.tollgate.example:8443, last success 14 min ago, "
        "last error 20 s ago: ConnectError: [Errno 111] Connection refused"
    )
    [row] = [line for line in shown if line.startswith("it100-1")]
    assert "ok, recent errors" in row and "DeviceUnreachable 114, bad_checksum 95" in row


def test_status_without_alarms_says_running_and_a_stale_file_says_so(tmp_path: Path) -> None:
    document = link_down_document(tmp_path)
    document["alarms"] = []
    written = datetime.fromisoformat(document["written_at"])
    assert format_status(document, now=written).splitlines()[0] == (
        "gateway gw-1: running (as of 0 s ago)"
    )
    later = format_status(document, now=written + timedelta(minutes=5)).splitlines()[0]
    assert later == (
        "gateway gw-1: running (as of 5 min ago: not rewritten since; is the agent still running?)"
    )


def test_a_status_file_of_an_older_agent_with_bare_alarm_codes_still_reads(
    tmp_path: Path,
) -> None:
    document = link_down_document(tmp_path)
    document["alarms"] = ["outbox_full"]
    shown = format_status(document).splitlines()
    assert shown[0].startswith("gateway gw-1: running, 1 alarm (as of ")
    assert shown[1] == "ALARM: outbox_full"
