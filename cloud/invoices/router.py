"""HTTP routes of invoicing: runs, finalize, discard (billing key), invoices (reading key)."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from cloud.api import BillingDep, DatabaseDep, ReadDep, RowId, SettingsDep, error_responses
from cloud.invoices.credit_notes import credited_by
from cloud.invoices.finalization import discard_invoice, finalize_invoice
from cloud.invoices.run_queue import run_progress
from cloud.invoices.schemas import (
    PERIOD_PATTERN,
    InvoiceDetailOut,
    InvoiceOut,
    InvoiceRunRequest,
    RunReportOut,
)
from cloud.invoices.service import get_invoice, list_invoices, run_invoices

router = APIRouter(prefix="/v1", tags=["invoices"])
AUTH = (401, 403)


@router.post("/invoice-runs", responses=error_responses(*AUTH, 404, 422))
async def post_invoice_run(
    body: InvoiceRunRequest, db: DatabaseDep, settings: SettingsDep, _: BillingDep
) -> RunReportOut:
    """Draft (or re-draft) the period's invoices now; finalized ones are never changed."""
    report = await run_invoices(
        db=db,
        period=body.period,
        now=datetime.now(UTC),
        grace=settings.invoice_grace,
        account_id=body.account_id,
        seller=settings.seller,
    )
    return RunReportOut.of(report)


class InvoiceRunOut(BaseModel):
    """Where an invoice run spread across workers is (`invoice run --workers N`)."""

    id: int
    period: str
    state: str  # running | finished
    accounts: int  # billable accounts, in chunks
    accounts_done: int  # in chunks done or failed
    chunks: dict[str, int]  # pending | claimed | done | failed -> count
    started_at: datetime
    finished_at: datetime | None
    totals: dict[str, int] | None  # drafted, updated, ... once finished


@router.get("/invoice-runs/{run_id}", responses=error_responses(*AUTH, 404))
async def get_invoice_run(run_id: RowId, db: DatabaseDep, _: ReadDep) -> InvoiceRunOut:
    """The progress of a run spread across worker processes, from its chunks."""
    state = await run_progress(db=db, run_id=run_id)
    return InvoiceRunOut(
        id=state.run_id,
        period=state.period,
        state=state.state,
        accounts=state.accounts,
        accounts_done=state.accounts_done,
        chunks=state.chunks,
        started_at=state.started_at,
        finished_at=state.finished_at,
        totals=state.totals,
    )


@router.get("/invoices", responses=error_responses(*AUTH, 422))
async def get_invoices(
    db: DatabaseDep,
    _: ReadDep,
    account_id: str | None = None,
    period: Annotated[str | None, Query(pattern=PERIOD_PATTERN)] = None,
    status: Annotated[str | None, Query(pattern="^(draft|finalized)$")] = None,
) -> list[InvoiceOut]:
    """Invoices, newest period first, filtered by account, period and status."""
    async with db.transaction() as session:
        rows = await list_invoices(
            session=session, account_id=account_id, period=period, status=status
        )
        return [InvoiceOut.of(row) for row in rows]


@router.get("/invoices/{invoice_id}", responses=error_responses(*AUTH, 404))
async def get_one_invoice(invoice_id: RowId, db: DatabaseDep, _: ReadDep) -> InvoiceDetailOut:
    """An invoice with its lines."""
    async with db.transaction() as session:
        invoice, lines = await get_invoice(session=session, invoice_id=invoice_id)
        credited = await credited_by(session=session, invoice_id=invoice_id)
        detail = InvoiceDetailOut.with_lines(invoice, lines)
        return detail.model_copy(update={"credited": credited})


@router.post("/invoices/{invoice_id}/finalize", responses=error_responses(*AUTH, 404, 409))
async def post_finalize(
    invoice_id: RowId,
    db: DatabaseDep,
    settings: SettingsDep,
    _: BillingDep,
    force: Annotated[
        bool,
        Query(
            description="finalize during the grace period (late usage then becomes adjustment "
            "lines on the next invoice); without it such a draft is a 409 grace_not_over"
        ),
    ] = False,
) -> InvoiceOut:
    """Finalize a draft now: it gets its number, gap-free. During its grace period only with
    `force=true`."""
    invoice = await finalize_invoice(
        db=db, invoice_id=invoice_id, now=datetime.now(UTC), force=force, seller=settings.seller
    )
    return InvoiceOut.of(invoice)


@router.delete(
    "/invoices/{invoice_id}", status_code=204, responses=error_responses(*AUTH, 404, 409)
)
async def delete_invoice(invoice_id: RowId, db: DatabaseDep, _: BillingDep) -> None:
    """Discard a draft with its lines and evidence (409 for a finalized invoice)."""
    await discard_invoice(db=db, invoice_id=invoice_id)
