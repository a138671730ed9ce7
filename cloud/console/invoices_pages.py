"""Invoices: by period and status, runs with live progress, lines with their explanation and
evidence, finalize.

    GET  /console/invoices?period=YYYY-MM&status=draft|finalized   the list (GET /v1/invoices)
    POST /console/invoices/runs                       run a period (billing, admin)
    GET  /console/invoices/runs/{run_id}              its progress, polled by run-progress.js
    GET  /console/invoices/runs/{run_id}/progress     the progress as JSON
    GET  /console/invoices/{id}                       header, totals, lines explained
    POST /console/invoices/{id}/finalize              confirm, then finalize (billing, admin)
    GET  /console/invoices/{id}/lines/{n}/evidence    sessions, events, batches, verified mark
"""

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from cloud.api import DatabaseDep, LineNumber, RowId, SettingsDep
from cloud.console.access import ConsoleBillingDep, ConsoleReadDep
from cloud.console.forms import field, read_form
from cloud.console.invoices_reads import money, read_evidence, read_invoice, read_list
from cloud.console.invoices_runs import read_run, start_run
from cloud.console.logins import LiveSession
from cloud.console.pages import api_link, render
from cloud.errors import CollectorError
from cloud.invoices.finalization import finalize_invoice, invoice_number
from cloud.invoices.models import Invoice
from cloud.invoices.schemas import PERIOD_PATTERN

router = APIRouter(prefix="/console/invoices", include_in_schema=False)
RUN_SCRIPT = Path(__file__).with_name("static") / "invoices-run.js"
PERIOD_OR_EMPTY = r"^(\d{4}-(0[1-9]|1[0-2]))?$"
STATUSES = ("draft", "finalized")
CHANGES = ("billing", "admin")  # the roles that run and finalize
YES = "yes"


@router.get("")
async def get_invoices(
    request: Request,
    db: DatabaseDep,
    live: ConsoleReadDep,
    period: Annotated[str, Query(max_length=7, pattern=PERIOD_OR_EMPTY)] = "",
    status: Annotated[str, Query(max_length=9, pattern=r"^(draft|finalized)?$")] = "",
) -> Response:
    """The invoices of a period and status, each opening its page; a run form for billing."""
    return await _list_page(request, db, live, period=period, status=status)


async def _list_page(
    request: Request,
    db: DatabaseDep,
    live: LiveSession,
    *,
    period: str,
    status: str,
    run_period: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    async with db.transaction() as session:
        listed = await read_list(session=session, period=period or None, status=status or None)
    query = "&".join(f"{k}={v}" for k, v in (("period", period), ("status", status)) if v)
    return render(
        request,
        "invoices/list.html",
        status_code=status_code,
        user=live,
        listed=listed,
        period=period,
        status=status,
        statuses=STATUSES,
        can_change=live.role in CHANGES,
        run_period=run_period or period or _last_month(),
        error=error,
        number=_number,
        money=money,
        api_source=api_link(request.app, "GET", "/v1/invoices", query),
    )


@router.post("/runs")
async def post_run(
    request: Request, db: DatabaseDep, settings: SettingsDep, live: ConsoleBillingDep
) -> Response:
    """Start a run of the form's period, then show its progress."""
    period = field(await read_form(request), "period", max_length=7).strip()
    if not re.fullmatch(PERIOD_PATTERN, period):
        return await _list_page(
            request,
            db,
            live,
            period="",
            status="",
            run_period=period,
            error=f"The period {period!r} is not a month: write it as YYYY-MM, e.g. 2026-11.",
            status_code=422,
        )
    run_id = await start_run(
        app=request.app,
        db=db,
        period=period,
        now=datetime.now(UTC),
        grace=settings.invoice_grace,
        seller=settings.seller,
    )
    return RedirectResponse(f"{_root(request)}/console/invoices/runs/{run_id}", status_code=303)


@router.get("/runs/{run_id}")
async def get_run(
    request: Request, run_id: RowId, db: DatabaseDep, live: ConsoleReadDep
) -> Response:
    """A run's progress: accounts done of all, its chunks, and once finished its counts,
    failures and a link to the period's drafts."""
    view = await read_run(app=request.app, db=db, run_id=run_id)
    return render(
        request,
        "invoices/run.html",
        user=live,
        view=view,
        run=view.progress,
        api_source=api_link(
            request.app, "GET", "/v1/invoice-runs/{run_id}", shown=f"/v1/invoice-runs/{run_id}"
        ),
    )


@router.get("/runs/{run_id}/progress")
async def get_run_progress(
    request: Request, run_id: RowId, db: DatabaseDep, live: ConsoleReadDep
) -> dict[str, Any]:
    """The run's progress as run-progress.js shows it."""
    view = await read_run(app=request.app, db=db, run_id=run_id)
    run = view.progress
    return {
        "run_id": run.run_id,
        "period": run.period,
        "state": run.state,
        "accounts": run.accounts,
        "accounts_done": run.accounts_done,
        "chunks": run.chunks,
        "totals": run.totals,
        "failures": [result.account_id for result in view.failures],
        "stopped": view.stopped,
    }


@router.get("/assets/run-progress.js")
async def get_run_script(live: ConsoleReadDep) -> FileResponse:
    """The run page's script: it polls the progress route every second."""
    return FileResponse(
        RUN_SCRIPT, media_type="text/javascript", headers={"Cache-Control": "max-age=3600"}
    )


@router.get("/{invoice_id}")
async def get_invoice(
    request: Request,
    invoice_id: RowId,
    db: DatabaseDep,
    settings: SettingsDep,
    live: ConsoleReadDep,
    finalized: Annotated[Literal["1"] | None, Query()] = None,
) -> Response:
    """The invoice's header, totals and lines with their explanation; Finalize for billing."""
    async with db.transaction() as session:
        view = await read_invoice(session=session, invoice_id=invoice_id, seller=settings.seller)
    return render(
        request,
        "invoices/detail.html",
        user=live,
        view=view,
        invoice=view.document,
        can_finalize=live.role in CHANGES and view.document["status"] == "draft",
        notice="Finalized: the invoice has its number and can no longer change."
        if finalized
        else None,
        api_source=api_link(
            request.app, "GET", "/v1/invoices/{invoice_id}", shown=f"/v1/invoices/{invoice_id}"
        ),
    )


@router.post("/{invoice_id}/finalize")
async def post_finalize(
    request: Request,
    invoice_id: RowId,
    db: DatabaseDep,
    settings: SettingsDep,
    live: ConsoleBillingDep,
) -> Response:
    """Without confirm=yes: the confirmation page. With it: finalize (force=yes during the grace
    period, as the API's `force=true`), then back to the invoice."""
    form = await read_form(request)
    confirmed = field(form, "confirm", max_length=3) == YES
    force = field(form, "force", max_length=3) == YES
    now = datetime.now(UTC)
    async with db.transaction() as session:
        view = await read_invoice(session=session, invoice_id=invoice_id, seller=settings.seller)
    error = None
    if confirmed:
        try:
            await finalize_invoice(
                db=db, invoice_id=invoice_id, now=now, force=force, seller=settings.seller
            )
        except CollectorError as exc:  # grace_not_over, invoice_finalized: said on the page
            error = exc
        else:
            moved = f"{_root(request)}/console/invoices/{invoice_id}?finalized=1"
            return RedirectResponse(moved, status_code=303)
    grace_until = datetime.fromisoformat(str(view.document["grace_until"]))
    return render(
        request,
        "invoices/finalize.html",
        status_code=error.status if error is not None else 200,
        user=live,
        view=view,
        invoice=view.document,
        in_grace=now < grace_until,
        grace_until=grace_until,
        error=None if error is None else error.message,
    )


@router.get("/{invoice_id}/lines/{n}/evidence")
async def get_line_evidence(
    request: Request, invoice_id: RowId, n: LineNumber, db: DatabaseDep, live: ConsoleReadDep
) -> Response:
    """The line's sessions, events and batches, and every check of `verify-invoice` about the
    line and the invoice: VERIFIED only when all pass."""
    async with db.transaction() as session:
        view = await read_evidence(session=session, invoice_id=invoice_id, n=n)
    shown = f"/v1/invoices/{invoice_id}/lines/{n}/evidence"
    return render(
        request,
        "invoices/evidence.html",
        user=live,
        view=view,
        invoice=view.invoice,
        line=view.line,
        api_source=api_link(
            request.app, "GET", "/v1/invoices/{invoice_id}/lines/{n}/evidence", shown=shown
        ),
    )


def _number(invoice: Invoice) -> str:
    return invoice_number(invoice.series, invoice.number) or "draft"


def _last_month() -> str:
    today = datetime.now(UTC)
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")
