"""The change feed of stored events: what ingest tells its consumers about each stored batch.

Ingest stores a batch and then, in the same write transaction, publishes it here; sessions,
device twins and data-quality detection consume it. So ingest imports none of them (they sit
above it), and a consumer's rows (session work, a twin, an incident) commit or roll back with
the events they describe: none is lost, none describes events that were never stored.

Consumers are subscribed by the composition root (`cloud.wiring.connect`). Publishing with no
consumer subscribed is a bug of the process's start (sessions would never be computed), so it
raises instead of storing silently.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from shared.events import UsageEvent


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """One stored batch: the events this transaction inserted, in seq order.

    A batch whose events were all stored already is published too, with no events and no
    batch row (`batch_id` None): the gateway that re-sent it is alive (its twin counts the
    report), though nothing new was stored.
    """

    gateway_id: str
    batch_id: int | None  # the `batches` row of the new events; None when there were none
    received_at: datetime
    events: Sequence[UsageEvent]
    duplicates: int  # events of the batch that were already stored


FeedConsumer = Callable[[Session, StoredBatch], None]

_consumers: dict[str, FeedConsumer] = {}


def subscribe(name: str, consumer: FeedConsumer) -> None:
    """Call `consumer` for every stored batch from now on (the same `name` again replaces it)."""
    _consumers[name] = consumer


def unsubscribe(name: str) -> None:
    """Stop calling the consumer `name` (benches measure ingest without some consumers)."""
    _consumers.pop(name, None)


def subscribers() -> tuple[str, ...]:
    """The names of the subscribed consumers, in the order they are called."""
    return tuple(_consumers)


def publish(session: Session, stored: StoredBatch) -> None:
    """Hand `stored` to every consumer, in subscription order, inside the caller's transaction."""
    if not _consumers:
        raise RuntimeError("the change feed has no consumers: call cloud.wiring.connect() first")
    for consumer in tuple(_consumers.values()):
        consumer(session, stored)
