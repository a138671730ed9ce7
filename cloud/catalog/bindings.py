"""Bindings: which account a device is billed to, over [valid_from, valid_to).

A device has at most one binding at any instant. An event is billed to the binding covering its
`occurred_at`; one no binding covers is unbilled (see `cloud.catalog.unbilled`). A device moving
household mid-month is two bindings: the old one ends where the new one starts (`move=True` does
both in one transaction).
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog.accounts import get_account
from cloud.catalog.checks import check_aware
from cloud.catalog.models import Binding, Device
from cloud.catalog.store import get_row
from cloud.errors import BindingNotFound, BindingOverlap, DeviceNotFound, InvalidBillingInput


@dataclass(frozen=True, slots=True)
class BindingView:
    """A device billed to an account over [valid_from, valid_to) (None: still bound)."""

    device_id: str
    account_id: str
    valid_from: datetime
    valid_to: datetime | None


async def create_binding(
    *,
    session: AsyncSession,
    device_id: str,
    account_id: str,
    valid_from: datetime,
    valid_to: datetime | None = None,
    move: bool = False,
) -> Binding:
    """Bind a device to an account; `BindingOverlap` if another binding covers part of it.

    With `move=True`, an overlap with exactly the device's open-ended binding that started
    before `valid_from` is resolved by ending that binding at `valid_from`.
    """
    start, end = _checked_interval(valid_from, valid_to)
    await _lock_device(session, device_id)
    await get_account(session=session, account_id=account_id)
    overlapping = await _overlapping(session, device_id=device_id, start=start, end=end)
    if overlapping and move and _movable(overlapping, start):
        overlapping[0].valid_to = start
        overlapping[0].changed_at = datetime.now(UTC)
        await session.flush()
    elif overlapping:
        raise _overlap_error(device_id, start, end, overlapping, move=move)
    binding = Binding(
        device_id=device_id,
        account_id=account_id,
        valid_from=start,
        valid_to=end,
        created_at=datetime.now(UTC),
    )
    session.add(binding)
    await session.flush()
    return binding


async def end_binding(
    *, session: AsyncSession, binding_id: int, valid_to: datetime | None
) -> Binding:
    """Change when a binding ends (None: open-ended); it may not come to overlap another."""
    binding = await get_binding(session=session, binding_id=binding_id)
    await _lock_device(session, binding.device_id)
    start, end = _checked_interval(binding.valid_from, valid_to)
    others = await _overlapping(
        session, device_id=binding.device_id, start=start, end=end, exclude=binding.id
    )
    if others:
        raise _overlap_error(binding.device_id, start, end, others, move=False)
    binding.valid_to = end
    binding.changed_at = datetime.now(UTC)
    await session.flush()
    return binding


async def get_binding(*, session: AsyncSession, binding_id: int) -> Binding:
    """The binding; `BindingNotFound` otherwise."""
    return await get_row(session, Binding, binding_id, missing=BindingNotFound, what="binding")


async def device_bindings(*, session: AsyncSession, device_id: str) -> list[Binding]:
    """A device's bindings in time order (`DeviceNotFound` for an unknown device)."""
    await get_row(session, Device, device_id, missing=DeviceNotFound, what="device")
    query = select(Binding).where(Binding.device_id == device_id)
    return list(await session.scalars(query.order_by(Binding.valid_from)))


async def account_bindings(*, session: AsyncSession, account_id: str) -> list[Binding]:
    """An account's bindings by device, then time (`AccountNotFound` for an unknown account)."""
    await get_account(session=session, account_id=account_id)
    query = select(Binding).where(Binding.account_id == account_id)
    return list(await session.scalars(query.order_by(Binding.device_id, Binding.valid_from)))


async def bindings_overlapping(
    *,
    session: AsyncSession,
    start: datetime,
    end: datetime,
    account_id: str | None = None,
) -> list[BindingView]:
    """Every binding covering part of [start, end), of one account or all, by account, device
    and time."""
    query = select(Binding).where(
        Binding.valid_from < end, or_(Binding.valid_to.is_(None), Binding.valid_to > start)
    )
    if account_id is not None:
        query = query.where(Binding.account_id == account_id)
    query = query.order_by(Binding.account_id, Binding.device_id, Binding.valid_from)
    return [
        BindingView(
            device_id=row.device_id,
            account_id=row.account_id,
            valid_from=row.valid_from,
            valid_to=row.valid_to,
        )
        for row in await session.scalars(query)
    ]


def _checked_interval(
    valid_from: datetime, valid_to: datetime | None
) -> tuple[datetime, datetime | None]:
    start = check_aware(valid_from, field="valid_from")
    end = None if valid_to is None else check_aware(valid_to, field="valid_to")
    if end is not None and end <= start:
        raise InvalidBillingInput(
            f"valid_to ({end.isoformat()}) must be after valid_from ({start.isoformat()})",
            detail={"field": "valid_to"},
        )
    return start, end


async def _lock_device(session: AsyncSession, device_id: str) -> Device:
    """The device row, locked on PostgreSQL so that two binding changes of one device serialize
    (SQLite's write transactions already do)."""
    return await get_row(
        session, Device, device_id, missing=DeviceNotFound, what="device", for_update=True
    )


async def _overlapping(
    session: AsyncSession,
    *,
    device_id: str,
    start: datetime,
    end: datetime | None,
    exclude: int | None = None,
) -> list[Binding]:
    query = select(Binding).where(
        Binding.device_id == device_id,
        or_(Binding.valid_to.is_(None), Binding.valid_to > start),
    )
    if end is not None:
        query = query.where(Binding.valid_from < end)
    if exclude is not None:
        query = query.where(Binding.id != exclude)
    return list(await session.scalars(query.order_by(Binding.valid_from)))


def _movable(overlapping: list[Binding], start: datetime) -> bool:
    """A move ends exactly one binding: the open-ended one that started before the new one."""
    if len(overlapping) != 1:
        return False
    current = overlapping[0]
    return current.valid_to is None and current.valid_from < start


def _overlap_error(
    device_id: str,
    start: datetime,
    end: datetime | None,
    overlapping: list[Binding],
    *,
    move: bool,
) -> BindingOverlap:
    first = overlapping[0]
    until = "open-ended" if first.valid_to is None else f"until {first.valid_to.isoformat()}"
    hint = (
        ""
        if move
        else "; to move the device, pass move=true (ends its open binding at valid_from)"
        if first.valid_to is None and first.valid_from < start
        else ""
    )
    return BindingOverlap(
        f"device {device_id!r} is already bound to account {first.account_id!r} by binding "
        f"{first.id} from {first.valid_from.isoformat()} {until}{hint}",
        detail={
            "device_id": device_id,
            "valid_from": start.isoformat(),
            "valid_to": None if end is None else end.isoformat(),
            "overlapping": [_described(binding) for binding in overlapping],
        },
    )


def _described(binding: Binding) -> dict[str, object]:
    return {
        "id": binding.id,
        "account_id": binding.account_id,
        "valid_from": binding.valid_from.isoformat(),
        "valid_to": None if binding.valid_to is None else binding.valid_to.isoformat(),
    }
