"""Delivery: events from a source that keeps them until the gateway says they are safe.

A BLE lock keeps its log until the gateway acknowledges a lock seq; an MQTT broker redelivers a
QoS 1 message until the gateway sends PUBACK. Such a source must learn that its events are
durable *after* the outbox commit, never before. It puts a `Delivery` on the writer's queue and
awaits `committed`:

- resolved with the number of drafts newly stored, once the transaction holding them has
  committed; drafts whose `key` the outbox already holds are skipped (a redelivery after a
  crash between commit and acknowledge is stored once);
- failed with `OutboxFull` when the outbox is over its budget: nothing was written, the source
  must not acknowledge and keeps the events in its own log until there is room.

`marks` are counter values stored in the same transaction (a lock's highest committed seq), so
the source can tell after a restart where it stands.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from edge.outbox import CounterValue
from edge.readings import Reading
from shared.events import EventDraft


@dataclass(frozen=True, eq=False)
class Delivery:
    """Drafts, one dedupe key each, and marks to commit together before the source is told."""

    drafts: tuple[EventDraft, ...]
    keys: tuple[str, ...]
    marks: tuple[CounterValue, ...] = ()
    committed: "asyncio.Future[int]" = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def __post_init__(self) -> None:
        if len(self.keys) != len(self.drafts):
            raise ValueError(f"{len(self.drafts)} drafts need as many keys, got {len(self.keys)}")
        if len(set(self.keys)) != len(self.keys):
            raise ValueError("dedupe keys within one delivery must be distinct")


Item = Reading | EventDraft | Delivery
"""What goes on the writer's queue: a polled reading, a streamed event, or a delivery."""


async def deliver(
    sink: "asyncio.Queue[Item | None]",
    drafts: Sequence[EventDraft],
    keys: Sequence[str],
    marks: Sequence[CounterValue] = (),
) -> int:
    """Queue drafts for the writer and wait until they are durable; return how many were new.

    Raises `OutboxFull` when the outbox refused them: the caller must not acknowledge.
    """
    delivery = Delivery(tuple(drafts), tuple(keys), tuple(marks))
    await sink.put(delivery)
    return await delivery.committed
