"""HTTP routes of share links: one invoice's page and evidence for a customer, without a key.

In invoices because they serve invoices; the token service they use (`cloud.auth.share_links`)
stays in auth, which never imports invoices.

POST   /v1/invoices/{id}/share-links          billing   make a link (shown once)
DELETE /v1/invoices/{id}/share-links          billing   revoke the invoice's live links
GET    /v1/shared/{token}                     the link  the invoice page
GET    /v1/shared/{token}/invoice.pdf         the link  the invoice as PDF/A-3
GET    /v1/shared/{token}/lines/{n}/evidence  the link  a line's evidence
"""

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from cloud.api import BillingDep, DatabaseDep, LineNumber, RowId, SettingsDep, ShareDep
from cloud.auth.share_links import (
    DEFAULT_LIFETIME,
    MAX_LIFETIME,
    create_share_link,
    revoke_share_links,
)
from cloud.invoices.evidence import line_evidence
from cloud.invoices.exports import ExportFormat, export_invoice
from cloud.invoices.html import PageLinks
from cloud.invoices.service import get_invoice
from cloud.storable_text import RequestBody

router = APIRouter(prefix="/v1", tags=["share links"])
Token = Annotated[str, Path(min_length=10, max_length=64, pattern=r"^tgs_[A-Za-z0-9_-]+$")]


class ShareLinkCreate(RequestBody):
    """How long the link lives (default 14 days, at most 90)."""

    expires_in_seconds: int = Field(
        default=int(DEFAULT_LIFETIME.total_seconds()),
        ge=1,
        le=int(MAX_LIFETIME.total_seconds()),
    )


class ShareLinkOut(BaseModel):
    """A new share link: `url` is shown only now."""

    id: int
    invoice_id: int
    url: str
    expires_at: datetime


class RevokedOut(BaseModel):
    """How many links were revoked."""

    revoked: int


@router.post("/invoices/{invoice_id}/share-links", status_code=201)
async def post_share_link(
    invoice_id: RowId,
    body: ShareLinkCreate,
    db: DatabaseDep,
    settings: SettingsDep,
    caller: BillingDep,
) -> ShareLinkOut:
    """A link that opens this invoice's page and evidence, and nothing else, until it expires."""
    async with db.transaction(write=True) as session:
        await get_invoice(session=session, invoice_id=invoice_id)
        link = await create_share_link(
            session=session,
            invoice_id=invoice_id,
            created_by=caller.label,
            lifetime=timedelta(seconds=body.expires_in_seconds),
        )
    return ShareLinkOut(
        id=link.id,
        invoice_id=invoice_id,
        url=settings.public_url + link.path,
        expires_at=link.expires_at,
    )


@router.delete("/invoices/{invoice_id}/share-links")
async def delete_share_links(invoice_id: RowId, db: DatabaseDep, _: BillingDep) -> RevokedOut:
    """Revoke every live share link of the invoice."""
    async with db.transaction(write=True) as session:
        await get_invoice(session=session, invoice_id=invoice_id)
        return RevokedOut(revoked=await revoke_share_links(session=session, invoice_id=invoice_id))


@router.get(
    "/shared/{token}",
    response_class=Response,
    responses={200: {"description": "The printable page", "content": {"text/html": {}}}},
)
async def get_shared_page(
    token: Token, db: DatabaseDep, settings: SettingsDep, link: ShareDep
) -> Response:
    """The shared invoice's printable page, its links pointing inside the share."""
    links = PageLinks(base=settings.public_url, share_token=token)
    return await _shared_export(db, settings, link, ExportFormat.HTML, links)


@router.get(
    "/shared/{token}/invoice.pdf",
    response_class=Response,
    responses={200: {"description": "The invoice as PDF", "content": {"application/pdf": {}}}},
)
async def get_shared_pdf(
    token: Token, db: DatabaseDep, settings: SettingsDep, link: ShareDep
) -> Response:
    """The shared invoice as a PDF/A-3 file, its evidence links pointing inside the share."""
    links = PageLinks(base=settings.public_url, share_token=token, standalone=True)
    return await _shared_export(db, settings, link, ExportFormat.PDF, links)


async def _shared_export(
    db: DatabaseDep,
    settings: SettingsDep,
    link: ShareDep,
    export_format: ExportFormat,
    links: PageLinks,
) -> Response:
    assert link.invoice_id is not None  # ShareDep only lets a live link to an invoice through
    async with db.transaction() as session:
        body, media_type = await export_invoice(
            session=session,
            invoice_id=link.invoice_id,
            export_format=export_format,
            links=links,
            seller=settings.seller,
        )
    return Response(content=body, media_type=media_type)


@router.get("/shared/{token}/lines/{n}/evidence")
async def get_shared_evidence(
    token: Token, n: LineNumber, db: DatabaseDep, link: ShareDep
) -> dict[str, Any]:
    """Everything line `n` of the shared invoice was rated from (`verify-invoice` input)."""
    assert link.invoice_id is not None
    async with db.transaction() as session:
        return await line_evidence(session=session, invoice_id=link.invoice_id, n=n)
