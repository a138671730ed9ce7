"""The collector's HTTP application: routers, the database lifespan and one error mapping.

Services raise `CollectorError`s; `cloud.answers` is the only place that turns errors into HTTP
answers, always with the body `{"error": {"id", "code", "message", "detail"}}`, and
`cloud.openapi_answers` documents every status each route can answer.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from sqlalchemy import text

from cloud.analytics.router import router as analytics_router
from cloud.answers import install_error_answers
from cloud.api import PUBLIC, DatabaseDep, ReadDep
from cloud.bus.attach import bus_path
from cloud.catalog.combined_router import router as combined_router
from cloud.catalog.router import router as catalog_router
from cloud.catalog.tax_router import router as tax_router
from cloud.console.api_docs import add_api_docs
from cloud.console.router import install_console
from cloud.db import Database
from cloud.direct.router import router as direct_router
from cloud.fleet.router import devices as fleet_devices_router
from cloud.fleet.router import gateways as fleet_gateways_router
from cloud.gateways.router import enrollments as enrollments_router
from cloud.gateways.router import router as gateways_router
from cloud.ingest.router import router as ingest_router
from cloud.invoices.corrections_router import router as corrections_router
from cloud.invoices.credit_router import router as credit_router
from cloud.invoices.evidence_router import router as evidence_router
from cloud.invoices.router import router as invoices_router
from cloud.invoices.share_router import router as share_router
from cloud.metrics import scrape
from cloud.openapi_answers import document_answers
from cloud.quality.router import router as quality_router
from cloud.scheduler import running_jobs
from cloud.sessions.router import router as sessions_router
from cloud.settings import Settings
from cloud.thresholds.router import router as thresholds_router
from cloud.webhooks.router import router as webhooks_router
from cloud.wiring import connect, jobs


def create_app(settings: Settings | None = None) -> FastAPI:
    """A collector app; its lifespan opens the database named by `settings`."""
    settings = settings or Settings.load()
    connect(settings)
    background = jobs(settings) if settings.background_jobs else []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            Database(settings.db_url) as db,
            running_jobs(db, background),
            bus_path(app, settings),  # with --bus: batches go to the ingest log (cloud.bus)
        ):
            app.state.db = db
            yield

    app = FastAPI(
        title="Tollgate collector",
        summary="Receives signed, hash-chained usage batches from Tollgate gateways.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc are served from installed assets (add_api_docs)
        redoc_url=None,
    )
    app.state.settings = settings
    app.include_router(ingest_router)
    app.include_router(direct_router)
    app.include_router(gateways_router)
    app.include_router(fleet_gateways_router)  # status, head, heartbeats, the gateway list
    app.include_router(enrollments_router)
    # Specific paths before catch-alls: the catalog's /v1/devices/{id:path} would swallow
    # /v1/devices/{id}/sessions, and /v1/invoices/{id} would swallow /v1/invoices/{id}.html.
    app.include_router(sessions_router)
    app.include_router(fleet_devices_router)  # /v1/devices/{id}/twin, /v1/twins
    app.include_router(analytics_router)
    app.include_router(thresholds_router)  # /v1/accounts/{id}/thresholds beside the catalog's
    app.include_router(catalog_router)
    app.include_router(tax_router)  # /v1/tax-rates
    app.include_router(combined_router)  # /v1/combined-rules
    app.include_router(corrections_router)  # PATCH metrics, PUT plan versions and rules
    app.include_router(evidence_router)
    app.include_router(invoices_router)
    app.include_router(credit_router)  # /v1/invoices/{id}/credit-notes, /v1/credit-notes
    app.include_router(share_router)
    app.include_router(webhooks_router)
    app.include_router(quality_router)
    app.add_api_route("/healthz", healthz, methods=["GET"], tags=["health"], dependencies=[PUBLIC])
    app.add_api_route(
        "/metrics",
        metrics,
        methods=["GET"],
        tags=["health"],
        response_class=Response,
        responses={200: {"description": METRICS_DESCRIPTION, "content": {"text/plain": {}}}},
    )
    install_console(app, settings)  # /console: users' sessions and pages (cloud/console)
    add_api_docs(app)
    install_error_answers(app)
    document_answers(app)
    return app


async def healthz(db: DatabaseDep) -> dict[str, str]:
    """`{"status": "ok"}` once the database answers `SELECT 1`."""
    async with db.transaction() as session:
        await session.execute(text("SELECT 1"))
    return {"status": "ok"}


METRICS_DESCRIPTION = "Prometheus text exposition format (version 0.0.4)"


async def metrics(_: ReadDep) -> Response:
    """This process's Prometheus metrics (cloud.metrics); a READ key as bearer, like every read
    of the collector: Prometheus sends it with `authorization: {credentials: ...}`."""
    body, content_type = scrape()
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})
