"""Keyset-paged listings of the catalog objects that had none: sites and bindings.

Each page is at most `limit` rows (1 to 1000, `check_limit`) in key order after `after`, so a
listing of any size costs one bounded query per page.
"""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog.checks import check_limit
from cloud.catalog.models import Binding
from cloud.gateways.models import Site


async def list_sites(
    *, session: AsyncSession, limit: int = 100, after: str | None = None
) -> list[Site]:
    """Up to `limit` sites in id order, after the id `after`."""
    query = select(Site).order_by(Site.id).limit(check_limit(limit))
    if after is not None:
        query = query.where(Site.id > after)
    return list(await session.scalars(query))


async def list_bindings(
    *,
    session: AsyncSession,
    limit: int = 100,
    after: int | None = None,
    account_id: str | None = None,
    device_id: str | None = None,
) -> list[Binding]:
    """Up to `limit` bindings in id order after the id `after`, optionally of one account or
    device."""
    query = select(Binding).order_by(Binding.id).limit(check_limit(limit))
    if after is not None:
        query = query.where(Binding.id > after)
    if account_id is not None:
        query = query.where(Binding.account_id == account_id)
    if device_id is not None:
        query = query.where(Binding.device_id == device_id)
    return list(await session.scalars(query))
