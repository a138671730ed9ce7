"""Waiting for a running system in tests: free ports and correctness waits (never speed checks)."""

import asyncio
import socket
from collections.abc import Awaitable, Callable

WAIT_SECONDS = 90.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], *, what: str, limit: float = WAIT_SECONDS
) -> None:
    """Wait until `check()` (plain or awaitable) holds; a generous limit, not a speed assertion."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"gave up after {limit}s waiting for {what}")
        await asyncio.sleep(0.02)
