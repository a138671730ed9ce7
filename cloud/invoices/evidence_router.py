"""HTTP routes of an invoice's evidence and exports (a reading key: viewer, billing, admin).

    GET /v1/invoices/{id}/lines/{n}/evidence   the line's sessions, events, batches and keys
    GET /v1/invoices/{id}/export?format=json|csv|html|pdf|facturx|cii
    GET /v1/invoices/{id}.html                 the printable page

Included in the app before the invoices router, so that `/v1/invoices/7.html` is this page and
not an invoice id that fails to parse.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from cloud.api import DatabaseDep, LineNumber, ReadDep, RowId, SettingsDep, error_responses
from cloud.invoices.evidence import line_evidence
from cloud.invoices.exports import ExportFormat, export_invoice
from cloud.invoices.html import PageLinks

router = APIRouter(prefix="/v1", tags=["invoices"])
AUTH = (401, 403)


@router.get("/invoices/{invoice_id}/lines/{n}/evidence", responses=error_responses(*AUTH, 404))
async def get_line_evidence(
    invoice_id: RowId, n: LineNumber, db: DatabaseDep, _: ReadDep
) -> dict[str, Any]:
    """Everything line `n` was rated from, to re-verify offline (`verify-invoice`)."""
    async with db.transaction() as session:
        return await line_evidence(session=session, invoice_id=invoice_id, n=n)


EXPORT_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The invoice in the asked format",
        "content": {
            "application/json": {},
            "text/csv": {},
            "text/html": {},
            "application/pdf": {},
            "application/xml": {},
        },
    }
}
PAGE_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {"description": "The printable page", "content": {"text/html": {}}}
}


@router.get(
    "/invoices/{invoice_id}/export",
    response_class=Response,
    responses={**EXPORT_CONTENT, **error_responses(*AUTH, 404, 409, 422)},
)
async def get_export(
    invoice_id: RowId,
    db: DatabaseDep,
    settings: SettingsDep,
    _: ReadDep,
    export_format: Annotated[
        str,
        Query(alias="format", max_length=16, description="json, csv, html, pdf, facturx or cii"),
    ] = ExportFormat.JSON,
) -> Response:
    """The invoice as JSON, CSV (one row per line), a printable HTML page, a PDF/A-3, a Factur-X
    e-invoice (the PDF with its EN 16931 CII XML inside) or the CII XML alone.

    409 `einvoice_not_ready` for facturx and cii of a draft or without seller details. A PDF's
    links are absolute to the public URL (`TOLLGATE_PUBLIC_URL`), or left out when none is set.
    """
    links = PageLinks(base=settings.public_url, standalone=export_format != ExportFormat.HTML)
    return await _export(
        db=db, settings=settings, invoice_id=invoice_id, export_format=export_format, links=links
    )


@router.get(
    "/invoices/{invoice_id}.html",
    response_class=Response,
    responses={**PAGE_CONTENT, **error_responses(*AUTH, 404)},
)
async def get_page(
    invoice_id: RowId, db: DatabaseDep, settings: SettingsDep, _: ReadDep
) -> Response:
    """The printable invoice page."""
    return await _export(
        db=db, settings=settings, invoice_id=invoice_id, export_format=ExportFormat.HTML
    )


async def _export(
    *,
    db: DatabaseDep,
    settings: SettingsDep,
    invoice_id: RowId,
    export_format: str,
    links: PageLinks | None = None,
) -> Response:
    async with db.transaction() as session:
        body, media_type = await export_invoice(
            session=session,
            invoice_id=invoice_id,
            export_format=export_format,
            as_of=datetime.now(UTC),
            links=links,
            seller=settings.seller,
        )
    return Response(content=body, media_type=media_type)
