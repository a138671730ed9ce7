"""What every router shares: request dependencies and the documented error body.

The dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in a worker
thread, a thread hop per request for a dictionary lookup.
"""

from typing import Annotated, Any

from fastapi import Depends, Path, Request
from pydantic import BaseModel

from cloud.auth.access import Access, Principal, Public
from cloud.auth.roles import Rule
from cloud.db import Database
from cloud.settings import Settings


class ErrorInfo(BaseModel):
    """What was wrong and where; `id` is also in the collector's log line for this answer."""

    id: str
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


# The access rule of every route: one of these in its signature (or PUBLIC in `dependencies=`).
PUBLIC = Depends(Public())
PublicDep = Annotated[Principal, PUBLIC]
ReadDep = Annotated[Principal, Depends(Access(Rule.READ))]
BillingDep = Annotated[Principal, Depends(Access(Rule.BILLING))]
AdminDep = Annotated[Principal, Depends(Access(Rule.ADMIN))]
IngestDep = Annotated[Principal, Depends(Access(Rule.INGEST))]
ImportDep = Annotated[Principal, Depends(Access(Rule.IMPORT))]
GatewayDep = Annotated[Principal, Depends(Access(Rule.GATEWAY))]
ShareDep = Annotated[Principal, Depends(Access(Rule.SHARE))]

# Database ids are signed 64-bit: a larger path id is a 422, not an overflow in the driver.
MAX_ROW_ID = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
LineNumber = Annotated[int, Path(ge=1, le=1_000_000)]
