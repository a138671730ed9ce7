"""Unbilled usage: events no binding covers at their `occurred_at`, per device.

Such events are never dropped: they stay in `events` and are listed here (a device not yet in the
catalog, a gap between two bindings, usage before the first binding), so someone can bind the
device and the next invoice run bills them.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog.checks import check_aware
from cloud.catalog.models import Binding, Device
from cloud.errors import InvalidBillingInput
from cloud.ingest.models import StoredEvent


@dataclass(frozen=True, slots=True)
class UnbilledDevice:
    """One device's events without a binding: how many, when, which names; `known` is false for a
    device id that is not in the catalog."""

    device_id: str
    known: bool
    event_count: int
    first_at: datetime
    last_at: datetime
    names: tuple[str, ...]


async def unbilled_usage(
    *, session: AsyncSession, start: datetime | None = None, end: datetime | None = None
) -> list[UnbilledDevice]:
    """Per device (by id), the events in [start, end) that no binding covers (one query)."""
    start = None if start is None else check_aware(start, field="start")
    end = None if end is None else check_aware(end, field="end")
    if start is not None and end is not None and end <= start:
        raise InvalidBillingInput("end must be after start", detail={"field": "end"})
    groups = await session.execute(_query(start, end))
    by_device: dict[str, UnbilledDevice] = {}
    for device_id, known, name, count, first_at, last_at in groups:
        by_device[device_id] = _merged(
            by_device.get(device_id), device_id, known, name, count, first_at, last_at
        )
    return [by_device[device_id] for device_id in sorted(by_device)]


def _query(
    start: datetime | None, end: datetime | None
) -> Select[str, bool, str, int, datetime, datetime]:
    event = StoredEvent
    covered = exists().where(
        Binding.device_id == event.device_id,
        Binding.valid_from <= event.occurred_at,
        or_(Binding.valid_to.is_(None), Binding.valid_to > event.occurred_at),
    )
    query = (
        select(
            event.device_id,
            Device.id.is_not(None),
            event.name,
            func.count(),
            func.min(event.occurred_at),
            func.max(event.occurred_at),
        )
        .outerjoin(Device, Device.id == event.device_id)
        .where(~covered)
        .group_by(event.device_id, Device.id, event.name)
    )
    if start is not None:
        query = query.where(event.occurred_at >= start)
    if end is not None:
        query = query.where(event.occurred_at < end)
    return query


def _merged(
    seen: UnbilledDevice | None,
    device_id: str,
    known: bool,
    name: str,
    count: int,
    first_at: datetime,
    last_at: datetime,
) -> UnbilledDevice:
    if seen is None:
        return UnbilledDevice(device_id, bool(known), count, first_at, last_at, (name,))
    return UnbilledDevice(
        device_id=device_id,
        known=seen.known,
        event_count=seen.event_count + count,
        first_at=min(seen.first_at, first_at),
        last_at=max(seen.last_at, last_at),
        names=tuple(sorted({*seen.names, name})),
    )
