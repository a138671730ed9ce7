"""Row helpers of the catalog services: insert a row once, fetch one or name what is missing."""

from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.db import Base
from cloud.errors import AlreadyExists, CollectorError

RowT = TypeVar("RowT", bound=Base)


async def insert_new(session: AsyncSession, row: RowT, *, what: str, key: object) -> RowT:
    """Insert `row`; `AlreadyExists` naming `what` and `key` if its primary key is taken."""
    if await session.get(type(row), key) is not None:
        raise AlreadyExists(f"{what} {key!r} already exists", detail={"id": _jsonable(key)})
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent insert of the same id won the race
        raise AlreadyExists(
            f"{what} {key!r} already exists", detail={"id": _jsonable(key)}
        ) from exc
    return row


async def get_row(
    session: AsyncSession,
    model: type[RowT],
    key: object,
    *,
    missing: type[CollectorError],
    what: str,
    for_update: bool = False,
) -> RowT:
    """The row of `model` with primary key `key`; `missing(...)` naming it otherwise."""
    row = await session.get(model, key, with_for_update=for_update)
    if row is None:
        raise missing(f"no {what} {key!r}", detail={"id": _jsonable(key)})
    return row


def _jsonable(key: object) -> object:
    return list(key) if isinstance(key, tuple) else key
