"""What every router shares: request dependencies and the documented error body.

The dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in a worker
thread, a thread hop per request for a dictionary lookup.
"""

from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel

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
