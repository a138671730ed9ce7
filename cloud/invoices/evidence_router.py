"""HTTP routes of an invoice's evidence and exports (a reading key: viewer, billing, admin).

    GET /v1/invoices/{id}/lines/{n}/evidence   the line's sessions, events, batches and keys
    GET /v1/invoices/{id}/export?format=json|csv|html
    GET /v1/invoices/{id}.html                 the printable page

Included in the app before the invoices router, so that `/v1/invoices/7.html` is this page and
not an invoice id that fails to parse.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from cloud.api import DatabaseDep, LineNumber, ReadDep, RowId, error_responses
from cloud.invoices.evidence import line_evidence
from cloud.invoices.exports import ExportFormat, export_invoice

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
        "content": {"application/json": {}, "text/csv": {}, "text/html": {}},
    }
}
PAGE_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {"description": "The printable page", "content": {"text/html": {}}}
}


@router.get(
    "/invoices/{invoice_id}/export",
    response_class=Response,
    responses={**EXPORT_CONTENT, **error_responses(*AUTH, 404, 422)},
)
async def get_export(
    invoice_id: RowId,
    db: DatabaseDep,
    _: ReadDep,
    export_format: Annotated[
        str, Query(alias="format", description="json, csv or html")
    ] = ExportFormat.JSON,
) -> Response:
    """The invoice as JSON, CSV (one row per line) or a printable HTML page."""
    return await _export(db=db, invoice_id=invoice_id, export_format=export_format)


@router.get(
    "/invoices/{invoice_id}.html",
    response_class=Response,
    responses={**PAGE_CONTENT, **error_responses(*AUTH, 404)},
)
async def get_page(invoice_id: RowId, db: DatabaseDep, _: ReadDep) -> Response:
    """The printable invoice page."""
    return await _export(db=db, invoice_id=invoice_id, export_format=ExportFormat.HTML)


async def _export(*, db: DatabaseDep, invoice_id: RowId, export_format: str) -> Response:
    async with db.transaction() as session:
        body, media_type = await export_invoice(
            session=session,
            invoice_id=invoice_id,
            export_format=export_format,
            as_of=datetime.now(UTC),
        )
    return Response(content=body, media_type=media_type)
