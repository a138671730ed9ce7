"""The live tail of committed events for the diagnostics page (server-sent events).

The agent's writer publishes each committed group here. Every subscriber (one per open page)
gets its own bounded queue; a slow browser loses its oldest events rather than growing memory or
ever slowing the writer, which must not wait on a web client.
"""

import asyncio
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

SUBSCRIBER_QUEUE = 200
RECENT = 50


class EventTail:
    """Fans committed events out to subscribers; keeps the last few for a page that just opened."""

    def __init__(self, *, queue_size: int = SUBSCRIBER_QUEUE, recent: int = RECENT) -> None:
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self.recent: deque[dict[str, Any]] = deque(maxlen=recent)
        self.last_by_device: dict[str, dict[str, Any]] = {}
        self.committed: Counter[str] = Counter()
        """Events committed per device since the start (`tollgate_edge_events_total`)."""
        self.dropped = 0

    def publish(self, events: Iterable[dict[str, Any]]) -> None:
        """Hand committed events to every subscriber without ever blocking the caller."""
        for event in events:
            self.recent.append(event)
            self.last_by_device[event["device_id"]] = event
            self.committed[event["device_id"]] += 1
            for queue in self._subscribers:
                self.dropped += _put_dropping_oldest(queue, event)

    def close(self) -> None:
        """End every subscription (the server is stopping)."""
        for queue in self._subscribers:
            _put_dropping_oldest(queue, None)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator["asyncio.Queue[dict[str, Any] | None]"]:
        """A queue of events committed from now on; None in it means the tail closed."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    @property
    def subscribers(self) -> int:
        """How many pages are listening (tests wait for their subscription to exist)."""
        return len(self._subscribers)


def _put_dropping_oldest(queue: "asyncio.Queue[dict[str, Any] | None]", item: Any) -> int:
    """Put `item`, dropping the oldest entries to make room; return how many were dropped."""
    dropped = 0
    while queue.full():
        queue.get_nowait()
        dropped += 1
    queue.put_nowait(item)
    return dropped
