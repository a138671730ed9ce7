"""What every router shares: request dependencies and the documented error body.

The dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in a worker
thread, a thread hop per request for a dictionary lookup.
"""

from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel

from cloud.auth.models import ApiKey
from cloud.auth.service import ADMIN_SCOPE, authenticate
from cloud.db import Database
from cloud.settings import Settings


class ErrorInfo(BaseModel):
    """What was wrong and where."""

    code: str
    message: str
    detail: dict[str, Any]


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: ErrorInfo


async def request_database(request: Request) -> Database:
    """The database opened by the app's lifespan."""
    database: Database = request.app.state.db
    return database


async def request_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting our error body for these statuses."""
    return {status: {"model": ErrorBody} for status in statuses}


DatabaseDep = Annotated[Database, Depends(request_database)]
SettingsDep = Annotated[Settings, Depends(request_settings)]


def bearer_token(request: Request) -> str | None:
    """The key of an `Authorization: Bearer KEY` header, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def require_admin(request: Request) -> ApiKey:
    """The request's admin API key (401 without a valid one, 403 with another scope)."""
    database: Database = request.app.state.db
    async with database.transaction() as session:
        return await authenticate(session=session, secret=bearer_token(request), scope=ADMIN_SCOPE)


AdminDep = Annotated[ApiKey, Depends(require_admin)]
