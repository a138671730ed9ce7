"""Reading device twins: one device (with its open incidents), or a filtered keyset page.

The account a device is bound to is read from `bindings` at request time (the binding valid
now), never copied into the twin: a device moved to another account shows the new one at once.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog.models import Binding, Device
from cloud.errors import DeviceTwinNotFound
from cloud.fleet.models import DeviceTwin
from cloud.fleet.schemas import MAX_OPEN_INCIDENTS, DeviceTwinOut, OpenIncident, TwinPage
from cloud.incidents.models import ACTIVE_STATES, Incident


@dataclass(frozen=True, slots=True)
class TwinFilter:
    """The list's filters (None: not filtered on)."""

    silent: bool | None = None
    low_battery: bool | None = None
    state: str | None = None
    site: str | None = None
    account: str | None = None
    gateway: str | None = None


async def device_twin(
    *, session: AsyncSession, device_id: str, now: datetime, low_battery: int
) -> DeviceTwinOut:
    """The device's twin and open incidents; `DeviceTwinNotFound` if never heard nor catalogued."""
    row = (await session.execute(_joined(now).where(DeviceTwin.device_id == device_id))).first()
    if row is None:
        catalogued = (
            await session.execute(_catalog_only(now).where(Device.id == device_id))
        ).first()
        if catalogued is None:
            raise DeviceTwinNotFound(
                f"nothing was heard of device {device_id!r} and it is not in the catalog",
                detail={"device_id": device_id},
            )
        row = catalogued
    twin = _view(row, low_battery=low_battery)
    incidents = await session.scalars(
        select(Incident)
        .where(Incident.device_id == device_id, Incident.state.in_(ACTIVE_STATES))
        .order_by(Incident.last_seen.desc(), Incident.id.desc())
        .limit(MAX_OPEN_INCIDENTS)
    )
    twin.open_incidents = [OpenIncident.model_validate(i, from_attributes=True) for i in incidents]
    return twin


async def list_twins(
    *,
    session: AsyncSession,
    where: TwinFilter,
    now: datetime,
    low_battery: int,
    limit: int,
    after: str | None,
) -> TwinPage:
    """Heard devices' twins in device id order, filtered, after the cursor `after`."""
    query = _joined(now)
    for clause in _clauses(where, low_battery):
        query = query.where(clause)
    if after is not None:
        query = query.where(DeviceTwin.device_id > after)
    rows = (await session.execute(query.order_by(DeviceTwin.device_id).limit(limit + 1))).all()
    items = [_view(row, low_battery=low_battery) for row in rows[:limit]]
    next_cursor = items[-1].device_id if len(rows) > limit else None
    return TwinPage(items=items, next_cursor=next_cursor)


def _clauses(where: TwinFilter, low_battery: int) -> list[Any]:
    clauses: list[Any] = []
    if where.silent is not None:
        silent = DeviceTwin.silent_since.is_not(None)
        clauses.append(silent if where.silent else DeviceTwin.silent_since.is_(None))
    if where.low_battery is not None:
        low = DeviceTwin.battery < low_battery
        clauses.append(low if where.low_battery else or_(DeviceTwin.battery.is_(None), ~low))
    if where.state is not None:
        clauses.append(DeviceTwin.state == where.state)
    if where.site is not None:
        clauses.append(Device.site_id == where.site)
    if where.account is not None:
        clauses.append(Binding.account_id == where.account)
    if where.gateway is not None:
        clauses.append(DeviceTwin.gateway_id == where.gateway)
    return clauses


def _bound_now(now: datetime) -> Any:
    return and_(
        Binding.device_id == Device.id,
        Binding.valid_from <= now,
        or_(Binding.valid_to.is_(None), Binding.valid_to > now),
    )


def _joined(now: datetime) -> Any:
    """Twins with their catalog device and the binding valid now (both optional)."""
    return (
        select(DeviceTwin, Device.profile_id, Device.site_id, Binding.account_id)
        .outerjoin(Device, Device.id == DeviceTwin.device_id)
        .outerjoin(Binding, _bound_now(now))
    )


def _catalog_only(now: datetime) -> Any:
    """A catalog device with no twin (never heard), with its binding valid now."""
    return select(Device, Device.profile_id, Device.site_id, Binding.account_id).outerjoin(
        Binding, _bound_now(now)
    )


def _view(row: Any, *, low_battery: int) -> DeviceTwinOut:
    found, profile_id, site_id, account_id = row
    if not isinstance(found, DeviceTwin):
        return DeviceTwinOut(
            device_id=found.id,
            heard=False,
            gateway_id=None,
            profile_id=profile_id,
            site_id=site_id,
            account_id=account_id,
            last_occurred_at=None,
            last_received_at=None,
            last_seq=None,
            state=None,
            channels={},
            points={},
            counter=None,
            battery=None,
            firmware=None,
            clock_offset_ms=None,
            health=None,
            health_at=None,
            silent=False,
            silent_since=None,
            low_battery=False,
            updated_at=None,
        )
    twin: DeviceTwin = found
    return DeviceTwinOut(
        device_id=twin.device_id,
        heard=True,
        gateway_id=twin.gateway_id,
        profile_id=profile_id,
        site_id=site_id,
        account_id=account_id,
        last_occurred_at=twin.last_occurred_at,
        last_received_at=twin.last_received_at,
        last_seq=twin.last_seq,
        state=twin.state,  # type: ignore[arg-type]
        channels=twin.channels or {},
        points=twin.points or {},
        counter=twin.counter,
        battery=twin.battery,
        firmware=twin.firmware,
        clock_offset_ms=twin.clock_offset_ms,
        health=twin.health,
        health_at=twin.health_at,
        silent=twin.silent_since is not None,
        silent_since=twin.silent_since,
        low_battery=twin.battery is not None and twin.battery < low_battery,
        updated_at=twin.updated_at,
    )
