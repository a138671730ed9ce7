"""Device profiles (how a kind of device's events form sessions) and the devices themselves.

A device's id is the `device_id` its events carry. Whenever what decides a device's sessions
changes (it is registered, it changes profile, its profile's rule changes), the device is queued
for sessionization (`enqueue_device`), so its sessions are recomputed from its events.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog.checks import check_device_id, check_labels, check_limit, check_name, check_slug
from cloud.catalog.combined_rules import CombinedSessionRule
from cloud.catalog.models import Device, DeviceProfile
from cloud.catalog.schemas import MAX_TIMEOUT_SECONDS
from cloud.catalog.session_rules import check_rule
from cloud.catalog.store import get_row, insert_new
from cloud.errors import DeviceNotFound, InvalidBillingInput, ProfileNotFound, SiteNotFound
from cloud.gateways.models import Site
from cloud.session_work import enqueue_device


async def create_profile(
    *,
    session: AsyncSession,
    profile_id: str,
    name: str,
    start_on: Sequence[str] = (),
    end_on: Sequence[str] = (),
    timeout_seconds: int | None = None,
    expected_interval_seconds: int | None = None,
) -> DeviceProfile:
    """Create a profile; its rule is checked (no `start_on`: its devices have no sessions).

    `expected_interval_seconds`: how often its devices report at least (the fleet's silence
    sweep); None: no silence check.
    """
    starts, ends = _checked_rule(start_on, end_on, timeout_seconds)
    profile = DeviceProfile(
        id=check_slug("profile", profile_id),
        name=check_name(name),
        start_on=starts,
        end_on=ends,
        timeout_seconds=timeout_seconds,
        expected_interval_seconds=check_expected_interval(expected_interval_seconds),
        created_at=datetime.now(UTC),
    )
    return await insert_new(session, profile, what="profile", key=profile.id)


def check_expected_interval(seconds: int | None) -> int | None:
    """A positive number of seconds (at most 366 days) or None; `InvalidBillingInput` otherwise."""
    if seconds is not None and (
        isinstance(seconds, bool) or not 0 < seconds <= MAX_TIMEOUT_SECONDS
    ):
        raise InvalidBillingInput(
            f"expected_interval_seconds must be 1..{MAX_TIMEOUT_SECONDS} seconds, got {seconds}",
            detail={"expected_interval_seconds": seconds},
        )
    return seconds


async def get_profile(*, session: AsyncSession, profile_id: str) -> DeviceProfile:
    """The profile; `ProfileNotFound` otherwise."""
    return await get_row(
        session, DeviceProfile, profile_id, missing=ProfileNotFound, what="profile"
    )


async def list_profiles(*, session: AsyncSession) -> list[DeviceProfile]:
    """Every profile, in id order."""
    return list(await session.scalars(select(DeviceProfile).order_by(DeviceProfile.id)))


async def set_profile_rule(
    *,
    session: AsyncSession,
    profile_id: str,
    start_on: Sequence[str],
    end_on: Sequence[str],
    timeout_seconds: int | None,
) -> DeviceProfile:
    """Change a profile's session rule and queue each of its devices for recomputation; the
    profile of a combined rule is refused (its sessions are combined from its members')."""
    if await session.get(CombinedSessionRule, profile_id) is not None:
        raise InvalidBillingInput(
            f"profile {profile_id!r} is combined rule {profile_id!r}: its sessions are combined "
            "from its members' sessions, it takes no session rule (create a new profile)",
            detail={"profile_id": profile_id, "combined_rule": profile_id},
        )
    starts, ends = _checked_rule(start_on, end_on, timeout_seconds)
    profile = await get_row(
        session, DeviceProfile, profile_id, missing=ProfileNotFound, what="profile", for_update=True
    )
    profile.start_on, profile.end_on, profile.timeout_seconds = starts, ends, timeout_seconds
    await session.flush()
    device_ids = await session.scalars(select(Device.id).where(Device.profile_id == profile_id))
    for device_id in device_ids:
        await enqueue_device(session=session, device_id=device_id)
    return profile


def _checked_rule(
    start_on: Sequence[str], end_on: Sequence[str], timeout_seconds: int | None
) -> tuple[list[str], list[str]]:
    starts = check_labels(start_on, field="start_on")
    ends = check_labels(end_on, field="end_on")
    check_rule(starts, ends, timeout_seconds)
    return starts, ends


async def create_device(
    *,
    session: AsyncSession,
    device_id: str,
    name: str,
    profile_id: str,
    site_id: str | None = None,
) -> Device:
    """Register a device under a profile (and a site); its sessions are queued for computing."""
    device = Device(
        id=check_device_id(device_id),
        name=check_name(name),
        profile_id=(await get_profile(session=session, profile_id=profile_id)).id,
        site_id=await _site(session, site_id),
        created_at=datetime.now(UTC),
    )
    await insert_new(session, device, what="device", key=device.id)
    await enqueue_device(session=session, device_id=device.id)
    return device


async def get_device(*, session: AsyncSession, device_id: str) -> Device:
    """The device; `DeviceNotFound` otherwise."""
    return await get_row(session, Device, device_id, missing=DeviceNotFound, what="device")


async def list_devices(
    *,
    session: AsyncSession,
    site_id: str | None = None,
    profile_id: str | None = None,
    limit: int = 100,
    after: str | None = None,
) -> list[Device]:
    """Up to `limit` devices in id order after `after`, optionally of one site and/or profile."""
    query = select(Device).order_by(Device.id).limit(check_limit(limit))
    if site_id is not None:
        query = query.where(Device.site_id == site_id)
    if profile_id is not None:
        query = query.where(Device.profile_id == profile_id)
    if after is not None:
        query = query.where(Device.id > after)
    return list(await session.scalars(query))


async def update_device(
    *,
    session: AsyncSession,
    device_id: str,
    name: str | None = None,
    profile_id: str | None = None,
) -> Device:
    """Rename a device and/or move it to another profile (its sessions are then recomputed)."""
    device = await get_device(session=session, device_id=device_id)
    if name is not None:
        device.name = check_name(name)
    if profile_id is not None and profile_id != device.profile_id:
        device.profile_id = (await get_profile(session=session, profile_id=profile_id)).id
        await enqueue_device(session=session, device_id=device.id)
    await session.flush()
    return device


async def set_device_site(*, session: AsyncSession, device_id: str, site_id: str | None) -> Device:
    """Move a device to another site (None: no site). Sites do not affect billing."""
    device = await get_device(session=session, device_id=device_id)
    device.site_id = await _site(session, site_id)
    await session.flush()
    return device


async def _site(session: AsyncSession, site_id: str | None) -> str | None:
    if site_id is None:
        return None
    return (await get_row(session, Site, site_id, missing=SiteNotFound, what="site")).id
