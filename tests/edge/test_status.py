"""The status file: atomic replaces, and a cancelled publisher never outlives its task."""

import asyncio
from pathlib import Path
from typing import Any

import orjson

from edge.status import publish_forever, write_status


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
