"""HTTP routes of credit notes: issue one (billing key), list, show and export them (reading key).

POST /v1/invoices/{id}/credit-notes        {"lines": [n, ...] | null, "reason": "..."}
GET  /v1/credit-notes?account=&invoice=&limit=&cursor=
GET  /v1/credit-notes/{id}
GET  /v1/credit-notes/{id}/export?format=json|html|pdf|facturx|cii
"""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from cloud.api import (
    MAX_ROW_ID,
    BillingDep,
    DatabaseDep,
    ReadDep,
    RowId,
    SettingsDep,
    error_responses,
)
from cloud.invoices.credit_note_document import NoteFormat, export_credit_note
from cloud.invoices.credit_notes import (
    MAX_LINES,
    MAX_PAGE,
    MAX_REASON,
    IssuedNote,
    evidence_path,
    get_credit_note,
    issue_credit_note,
    list_credit_notes,
)
from cloud.invoices.html import PageLinks
from cloud.invoices.vat import format_rate
from cloud.rating.money import round_money
from cloud.storable_text import RequestBody

router = APIRouter(prefix="/v1", tags=["credit notes"])
AUTH = (401, 403)


class CreditRequest(RequestBody):
    """What to credit: whole lines by number, or the whole invoice (`lines` null)."""

    model_config = ConfigDict(extra="forbid")

    lines: list[Annotated[int, Field(ge=1, le=1_000_000)]] | None = Field(
        default=None, min_length=1, max_length=MAX_LINES, examples=[[2, 3]]
    )
    reason: str = Field(min_length=1, max_length=MAX_REASON, examples=["meter fault in October"])


class CreditNoteLineOut(BaseModel):
    """One credited invoice line: amounts positive, tax copied from the invoice line."""

    n: int
    credits_line: int
    description: str
    amount: Decimal
    tax_category: str
    tax_rate: str
    evidence: str = Field(description="the credited invoice line's evidence route")


class CreditNoteOut(BaseModel):
    """A credit note (issued final: it has its number from the start)."""

    id: int
    number: str
    account_id: str
    invoice_id: int
    invoice_number: str
    currency: str
    reason: str
    whole: bool
    net: Decimal
    tax: Decimal
    gross: Decimal
    issued_at: datetime
    lines: list[CreditNoteLineOut]

    @classmethod
    def of(cls, issued: IssuedNote) -> "CreditNoteOut":
        """From the stored rows (amounts with the currency's minor unit)."""
        note = issued.note
        currency = note.currency
        return cls(
            id=note.id,
            number=issued.printed_number,
            account_id=note.account_id,
            invoice_id=note.invoice_id,
            invoice_number=issued.invoice_number,
            currency=currency,
            reason=note.reason,
            whole=note.whole,
            net=round_money(note.net, currency),
            tax=round_money(note.tax, currency),
            gross=round_money(note.gross, currency),
            issued_at=note.issued_at,
            lines=[
                CreditNoteLineOut(
                    n=line.n,
                    credits_line=line.invoice_line,
                    description=line.description,
                    amount=round_money(line.amount, currency),
                    tax_category=line.tax_category,
                    tax_rate=format_rate(Decimal(line.tax_rate)),
                    evidence=evidence_path(note.invoice_id, line.invoice_line),
                )
                for line in issued.lines
            ],
        )


class CreditNotePage(BaseModel):
    """Credit notes, newest first; `next_cursor` fetches the next page (None: the last)."""

    credit_notes: list[CreditNoteOut]
    next_cursor: str | None


@router.post(
    "/invoices/{invoice_id}/credit-notes",
    status_code=201,
    responses=error_responses(*AUTH, 404, 409, 422),
)
async def post_credit_note(
    invoice_id: RowId, body: CreditRequest, db: DatabaseDep, _: BillingDep
) -> CreditNoteOut:
    """Credit a finalized invoice wholly (`lines` null) or by line, with a reason; issued final
    with the next number of its own series (409 for a draft or a line credited already)."""
    issued = await issue_credit_note(
        db=db, invoice_id=invoice_id, lines=body.lines, reason=body.reason, now=datetime.now(UTC)
    )
    return CreditNoteOut.of(issued)


@router.get("/credit-notes", responses=error_responses(*AUTH, 422))
async def get_credit_notes(
    db: DatabaseDep,
    _: ReadDep,
    account: Annotated[str | None, Query(max_length=64)] = None,
    invoice: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
) -> CreditNotePage:
    """Credit notes, newest first, filtered by account and credited invoice."""
    async with db.transaction() as session:
        page = await list_credit_notes(
            session=session, account_id=account, invoice_id=invoice, limit=limit, cursor=cursor
        )
        return CreditNotePage(
            credit_notes=[CreditNoteOut.of(note) for note in page.notes],
            next_cursor=page.next_cursor,
        )


@router.get("/credit-notes/{credit_note_id}", responses=error_responses(*AUTH, 404))
async def get_one_credit_note(credit_note_id: RowId, db: DatabaseDep, _: ReadDep) -> CreditNoteOut:
    """A credit note with its lines."""
    async with db.transaction() as session:
        return CreditNoteOut.of(
            await get_credit_note(session=session, credit_note_id=credit_note_id)
        )


EXPORT_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The credit note in the asked format",
        "content": {
            "application/json": {},
            "text/html": {},
            "application/pdf": {},
            "application/xml": {},
        },
    }
}


@router.get(
    "/credit-notes/{credit_note_id}/export",
    response_class=Response,
    responses={**EXPORT_CONTENT, **error_responses(*AUTH, 404, 409, 422)},
)
async def get_credit_note_export(
    credit_note_id: RowId,
    db: DatabaseDep,
    settings: SettingsDep,
    _: ReadDep,
    export_format: Annotated[
        str,
        Query(alias="format", max_length=16, description="json, html, pdf, facturx or cii"),
    ] = NoteFormat.JSON,
) -> Response:
    """The credit note document (JSON), its printable page (HTML), a PDF/A-3, a Factur-X
    e-invoice (the PDF with its EN 16931 CII XML inside: type code 381, referencing the credited
    invoice) or the CII XML alone.

    409 `einvoice_not_ready` for facturx and cii when the credited invoice froze no seller
    details. A PDF's links are absolute to the public URL, or left out when none is set.
    """
    links = PageLinks(base=settings.public_url, standalone=export_format != NoteFormat.HTML)
    async with db.transaction() as session:
        body, media_type = await export_credit_note(
            session=session,
            credit_note_id=credit_note_id,
            export_format=export_format,
            links=links,
        )
    return Response(content=body, media_type=media_type)
