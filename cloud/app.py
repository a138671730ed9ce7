"""The collector's HTTP application: routers, the database lifespan and one error mapping.

Services raise `CollectorError`s; the handlers here are the only place that turns errors into
HTTP answers, always with the body `{"error": {"code", "message", "detail"}}`.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.exceptions import HTTPException

from cloud.analytics.router import router as analytics_router
from cloud.api import DatabaseDep
from cloud.catalog.router import router as catalog_router
from cloud.db import Database
from cloud.direct.router import router as direct_router
from cloud.errors import CollectorError, InvalidParameters, error_locations
from cloud.gateways.router import enrollments as enrollments_router
from cloud.gateways.router import router as gateways_router
from cloud.ingest.router import router as ingest_router
from cloud.invoices.evidence_router import router as evidence_router
from cloud.invoices.router import router as invoices_router
from cloud.sessions.router import router as sessions_router
from cloud.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """A collector app; its lifespan opens the database named by `settings`."""
    settings = settings or Settings.load()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Database(settings.db_url) as db:
            app.state.db = db
            yield

    app = FastAPI(
        title="Tollgate collector",
        summary="Receives signed, hash-chained usage batches from Tollgate gateways.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(ingest_router)
    app.include_router(direct_router)
    app.include_router(gateways_router)
    app.include_router(enrollments_router)
    # Specific paths before catch-alls: the catalog's /v1/devices/{id:path} would swallow
    # /v1/devices/{id}/sessions, and /v1/invoices/{id} would swallow /v1/invoices/{id}.html.
    app.include_router(sessions_router)
    app.include_router(analytics_router)
    app.include_router(catalog_router)
    app.include_router(evidence_router)
    app.include_router(invoices_router)
    app.add_api_route("/healthz", healthz, methods=["GET"], tags=["health"])
    install_error_handlers(app)
    return app


async def healthz(db: DatabaseDep) -> dict[str, str]:
    """`{"status": "ok"}` once the database answers `SELECT 1`."""
    async with db.transaction() as session:
        await session.execute(text("SELECT 1"))
    return {"status": "ok"}


def install_error_handlers(app: FastAPI) -> None:
    """Map our errors, request validation errors and plain HTTP errors to the error body."""
    app.add_exception_handler(CollectorError, _collector_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)


async def _collector_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CollectorError)
    return JSONResponse(exc.to_body(), status_code=exc.status)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = error_locations(exc.errors())
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(map(str, first["loc"]))
    error = InvalidParameters(f"{where}: {first['msg']}", detail={"errors": errors})
    return await _collector_error(request, error)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    body = {"error": {"code": f"http_{exc.status_code}", "message": str(exc.detail), "detail": {}}}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
