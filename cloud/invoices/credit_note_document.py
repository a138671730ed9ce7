"""A credit note as a document: the credited invoice's document shape, `document_type`
"credit_note" (UNTDID 1001 type code 381), its own number, the invoice (and lines) it references,
and positive amounts with their own EN 16931 totals.

The seller, buyer, locale, service period and account come from the credited invoice's document
(what it froze); each line is the credited invoice line's document with the credit note's own `n`,
`credits_line` (the invoice line), the amount, tax category and rate it copied, and `evidence`
(the credited line's evidence route). The HTML, PDF and Factur-X renderers take either type:
`export_credit_note` writes JSON, HTML, PDF/A-3 (`cloud.invoices.pdf`), Factur-X (that PDF with
the EN 16931 CII inside: type code 381, BT-25 the credited invoice's number) and the CII alone.
"""

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from cloud.choices import NoteFormat as NoteFormat  # defined there for the CLI's help (issue 18)
from cloud.errors import InvalidParameters
from cloud.invoices.credit_notes import (
    TYPE_CODE,
    IssuedNote,
    evidence_path,
    get_credit_note,
    local_date,
    note_totals,
)
from cloud.invoices.exports import format_utc, invoice_document, invoice_json, money_text
from cloud.invoices.html import PageLinks, invoice_html
from cloud.invoices.vat import VatTotals, format_rate

# The credited invoice's keys that say nothing true about the credit note itself.
INVOICE_ONLY = (
    "computed_at",
    "as_of",
    "grace_until",
    "finalized_at",
    "tax_total",  # the invoice's stored VAT totals; the note's own are in `totals`
    "gross_total",
)


def check_note_format(name: str) -> NoteFormat:
    """`json`, `html`, `pdf`, `facturx` or `cii`; `InvalidParameters` otherwise."""
    try:
        return NoteFormat(name)
    except ValueError:
        raise InvalidParameters(
            f"format {name!r}: one of {', '.join(NoteFormat)}", detail={"format": name}
        ) from None


async def credit_note_document(*, session: AsyncSession, credit_note_id: int) -> dict[str, Any]:
    """The credit note as a JSON-ready document; `CreditNoteNotFound`."""
    issued = await get_credit_note(session=session, credit_note_id=credit_note_id)
    invoice = await invoice_document(session=session, invoice_id=issued.note.invoice_id)
    return note_document(issued, invoice)


def note_document(issued: IssuedNote, invoice: dict[str, Any]) -> dict[str, Any]:
    """Pure: the credit note's document from its rows and the credited invoice's document."""
    note = issued.note
    currency = note.currency
    by_n = {int(line["n"]): line for line in invoice["lines"]}
    totals = note_totals(issued)
    header = {key: value for key, value in invoice.items() if key not in INVOICE_ONLY}
    invoice_issued = invoice.get("issue_date") or _invoice_date(invoice)
    lines = [
        {
            **by_n[line.invoice_line],
            "n": line.n,
            "credits_line": line.invoice_line,
            "description": line.description,
            "amount": money_text(line.amount, currency),
            "tax_category": line.tax_category,
            "tax_rate": format_rate(line.tax_rate),
            "evidence": evidence_path(note.invoice_id, line.invoice_line),
            "corrects_invoice_id": None,
            "corrects_line": None,
        }
        for line in issued.lines
    ]
    reference = {
        "invoice_id": note.invoice_id,
        "printed_number": issued.invoice_number,
        "issue_date": invoice_issued,
    }
    references = (
        [{**reference, "line": None}]
        if note.whole
        else [{**reference, "line": line.invoice_line} for line in issued.lines]
    )
    return {
        **header,
        "document_type": "credit_note",
        "type_code": TYPE_CODE,
        "id": note.id,
        "series": note.series,
        "number": note.number,
        "printed_number": issued.printed_number,
        "status": "finalized",  # issued final: a credit note has no draft
        "issued_at": format_utc(note.issued_at),
        "issue_date": local_date(note.issued_at, str(invoice["time_zone"])),
        "due_date": None,
        "invoice_id": note.invoice_id,
        "reason": note.reason,
        "references": references,
        "lines": lines,
        "tax": _tax(totals, currency),
        "totals": _totals(totals, currency),
        "total": money_text(totals.net, currency),
        "notes": [
            *invoice.get("notes", []),
            f"Credit note for invoice {issued.invoice_number}: {note.reason}",
        ],
    }


def _invoice_date(invoice: dict[str, Any]) -> str | None:
    finalized = invoice.get("finalized_at")
    if not finalized:
        return None
    return local_date(datetime.fromisoformat(str(finalized)), str(invoice["time_zone"]))


def _tax(totals: VatTotals, currency: str) -> list[dict[str, Any]]:
    return [
        {
            "category": subtotal.category,
            "rate": format_rate(subtotal.rate),
            "taxable": money_text(subtotal.taxable, currency),
            "tax": money_text(subtotal.tax, currency),
            "exemption_reason": subtotal.exemption_reason,
        }
        for subtotal in totals.subtotals
    ]


def _totals(totals: VatTotals, currency: str) -> dict[str, str]:
    gross = money_text(totals.gross, currency)
    return {
        "net": money_text(totals.net, currency),
        "tax": money_text(totals.tax, currency),
        "gross": gross,
        "due": gross,  # the amount owed back to the customer
    }


MEDIA_TYPES = {
    NoteFormat.JSON: "application/json",
    NoteFormat.HTML: "text/html; charset=utf-8",
    NoteFormat.PDF: "application/pdf",
    NoteFormat.FACTURX: "application/pdf",  # PDF/A-3 with factur-x.xml inside
    NoteFormat.CII: "application/xml",
}


async def export_credit_note(
    *,
    session: AsyncSession,
    credit_note_id: int,
    export_format: str,
    links: PageLinks | None = None,
) -> tuple[bytes, str]:
    """The credit note in `export_format` and its media type; `CreditNoteNotFound`,
    `InvalidParameters` (checked first, before any read), `EInvoiceNotReady` (facturx, cii:
    the credited invoice froze no seller details or the buyer has no country).

    `links` default to relative ones for the HTML page and to a standalone file's (no dead
    links) for a PDF."""
    chosen = check_note_format(export_format)
    document = await credit_note_document(session=session, credit_note_id=credit_note_id)
    return render_note(document, chosen, links), MEDIA_TYPES[chosen]


def render_note(document: dict[str, Any], chosen: NoteFormat, links: PageLinks | None) -> bytes:
    """Pure: the credit note document in one format (a credit note has no usage charts).

    The PDF and e-invoice renderers are imported here, as in `exports.render_document`.
    """
    from cloud.invoices.facturx import facturx_pdf, invoice_cii
    from cloud.invoices.pdf import invoice_pdf

    if chosen is NoteFormat.JSON:
        return invoice_json(document)
    if chosen is NoteFormat.HTML:
        return invoice_html(document, charts={}, links=links).encode("utf-8")
    if chosen is NoteFormat.CII:
        return invoice_cii(document)
    if chosen is NoteFormat.FACTURX:
        invoice_cii(document)  # refuse a note without seller details before the rendering
    pdf = invoice_pdf(document, charts={}, links=links or PageLinks(standalone=True))
    return pdf if chosen is NoteFormat.PDF else facturx_pdf(document, pdf)
