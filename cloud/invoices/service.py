"""Invoice runs: rate every account with a plan for one billing period and write its draft.

    run_invoices(period="2026-11")
      1. finalize the drafts whose grace period is over (`finalization.finalize_due`);
      2. bring sessions up to date (`refresh_sessions(as_of=now)`);
      3. per chunk of accounts, in one write transaction: load the period's usage in bulk
         (`cloud.usage.loader`), rate it (`rate_period`), add adjustments for earlier finalized
         invoices (`adjustments`), and write or replace the draft with its lines and evidence.

A finalized invoice of the period is never touched (reported as such); an account without a plan
is skipped (reported). Usage with no binding is not invoiced: the catalog's unbilled report
lists it.
"""

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog.metrics import metric_spec
from cloud.catalog.models import Account, Metric, Plan, PlanVersionRow
from cloud.catalog.plan_terms import load_stored_terms, plan_version
from cloud.catalog.tax_rates import TaxTable, load_tax_table
from cloud.choices import (
    CHUNK_ACCOUNTS as CHUNK_ACCOUNTS,  # defined there for the CLI's help (issue 18)
)
from cloud.db import Database
from cloud.domain import PlanVersion
from cloud.errors import AccountNotFound, InvalidBillingInput, InvoiceNotFound
from cloud.invoices.adjustments import adjustment_lines
from cloud.invoices.credit_notes import without_credited
from cloud.invoices.finalization import DRAFT, FINALIZED, discard_drafts, finalize_due
from cloud.invoices.lines import DraftLine, Rates, RunAccount, rate_account
from cloud.invoices.models import Invoice, InvoiceEvidence, InvoiceLine
from cloud.invoices.parties import Regime, draft_totals, tax_draft_lines, tax_regime
from cloud.invoices.webhook_events import emit_drafted, stored_drafts
from cloud.metrics import INVOICE_RUN_ACCOUNTS
from cloud.quality.period_report import AccountQuality, period_report
from cloud.rating.money import add_amounts
from cloud.rating.periods import Period, month_period
from cloud.seller import Seller
from cloud.sessions.service import refresh_sessions
from cloud.usage.loader import load_period_usage, rated_catalogs

NOTHING_TO_BILL = "nothing_to_bill"
INVOICES = cast(Table, Invoice.__table__)
LINES = cast(Table, InvoiceLine.__table__)
EVIDENCE = cast(Table, InvoiceEvidence.__table__)
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class AccountResult:
    """What a run did for one account.

    `outcome`: drafted (new draft), updated (draft replaced), finalized (left unchanged),
    skipped (no plan; a draft of the period from an earlier run is deleted), nothing_to_bill (no
    line with an amount: no plan version in force and no usage, or a plan without a base fee
    and no usage; no draft is written and an earlier zero draft is deleted), failed (it cannot
    be rated: its plan or metrics are unusable, or an amount
    is beyond the rating bounds; `error_code`, `error` and `error_detail` say why, and
    `invoice_id` names the draft of an earlier run, left as it was). A failed account is rated
    again by the next run.
    """

    account_id: str
    outcome: str
    invoice_id: int | None = None
    total: Decimal | None = None
    lines: int = 0
    adjustments: int = 0
    error: str | None = None
    error_code: str | None = None
    error_detail: dict[str, Any] | None = None
    tax_note: str | None = None  # e.g. "VAT not charged: the account has no tax country"


@dataclass(frozen=True, slots=True)
class RunReport:
    """The counts of a run and each account's result."""

    period: str
    drafted: int
    updated: int
    unchanged_finalized: int
    skipped: int
    failed: int
    finalized_due: list[int] = field(default_factory=list)
    accounts: list[AccountResult] = field(default_factory=list)
    quality: dict[str, AccountQuality] = field(default_factory=dict)  # incidents of the period
    nothing_to_bill: int = 0  # accounts with no draft: no line with an amount

    @property
    def failures(self) -> list[AccountResult]:
        """The accounts that could not be rated, with why."""
        return [result for result in self.accounts if result.outcome == "failed"]

    def __str__(self) -> str:
        failed = f" ({', '.join(r.account_id for r in self.failures)})" if self.failed else ""
        return (
            f"period {self.period}: {self.drafted} drafted, {self.updated} updated, "
            f"{self.unchanged_finalized} finalized unchanged, {self.skipped} skipped (no plan), "
            f"{self.nothing_to_bill} nothing to bill, "
            f"{self.failed} failed{failed}"
        )


async def run_invoices(
    *,
    db: Database,
    period: str,
    now: datetime,
    grace: timedelta,
    account_id: str | None = None,
    progress: Progress | None = None,
    seller: Seller | None = None,
) -> RunReport:
    """Draft (or re-draft) every account's invoice for `period` ("2026-11"); see the module doc.

    `account_id` limits the run to one account (`AccountNotFound` if unknown). A bad period label
    raises `InvalidBillingInput` before anything is written. `progress(done, total)` is called
    after each chunk of accounts. `seller` (settings) decides reverse charge (its country);
    each line's VAT comes from `cloud.invoices.parties`.
    """
    month_period(period, "UTC")  # refuse a bad label before any work
    finalized, accounts = await prepare_run(db=db, now=now, seller=seller, account_id=account_id)
    rates, taxes = await run_inputs(db=db, seller=seller)
    billable = [account for account in accounts if account.plan_id is not None]
    results: list[AccountResult] = []
    if progress is not None:
        progress(0, len(billable))
    for index in range(0, len(billable), CHUNK_ACCOUNTS):
        chunk = billable[index : index + CHUNK_ACCOUNTS]
        async with db.transaction(write=True) as session:
            results.extend(
                await _run_chunk(
                    session=session,
                    accounts=chunk,
                    label=period,
                    now=now,
                    grace=grace,
                    rates=rates,
                    taxes=taxes,
                )
            )
        if progress is not None:
            progress(index + len(chunk), len(billable))
    return await finish_run(
        db=db,
        period=period,
        now=now,
        grace=grace,
        accounts=accounts,
        finalized=finalized,
        results=results,
    )


async def prepare_run(
    *, db: Database, now: datetime, seller: Seller | None, account_id: str | None
) -> tuple[list[int], list[RunAccount]]:
    """The once-per-run steps before rating: finalize the drafts due, bring sessions up to date,
    and load the run's accounts (ordered by id). (finalized invoice ids, accounts)."""
    finalized = await finalize_due(db=db, now=now, seller=seller)
    await refresh_sessions(db=db, as_of=now)
    async with db.transaction() as session:
        accounts = await _run_accounts(session=session, account_id=account_id)
    return finalized, accounts


async def run_inputs(*, db: Database, seller: Seller | None) -> tuple[Rates, "Taxes"]:
    """What every chunk rates with: the metrics and plan versions, the seller and VAT rates."""
    async with db.transaction() as session:
        rates = await load_rates(session=session)
        taxes = Taxes(seller=seller, table=await load_tax_table(session=session))
    return rates, taxes


async def finish_run(
    *,
    db: Database,
    period: str,
    now: datetime,
    grace: timedelta,
    accounts: Sequence[RunAccount],
    finalized: list[int],
    results: list[AccountResult],
) -> RunReport:
    """The once-per-run steps after rating (`results`: the accounts with a plan): discard the
    drafts of accounts without a plan, the period's quality report; the run's report."""
    results = [AccountResult(a.id, "skipped") for a in accounts if a.plan_id is None] + results
    await _discard_unplanned(db=db, accounts=accounts, label=period)
    async with db.transaction() as session:
        pairs = [
            (account.id, account.time_zone) for account in accounts if account.plan_id is not None
        ]
        quality = await period_report(
            session=session, label=period, accounts=pairs, now=now, grace=grace
        )
    report = _report(period, finalized, sorted(results, key=lambda result: result.account_id))
    for result in report.accounts:
        INVOICE_RUN_ACCOUNTS.labels(outcome=result.outcome).inc()
    return replace(report, quality=quality)


async def _discard_unplanned(*, db: Database, accounts: Sequence[RunAccount], label: str) -> None:
    """Delete the period's drafts of accounts without a plan now (nothing to bill any more)."""
    unplanned = [account.id for account in accounts if account.plan_id is None]
    if not unplanned:
        return
    async with db.transaction(write=True) as session:
        existing = await _existing_invoices(session=session, account_ids=unplanned, label=label)
        drafts = [invoice_id for invoice_id, status in existing.values() if status == DRAFT]
        await discard_drafts(session=session, invoice_ids=drafts)


def _report(period: str, finalized: list[int], results: list[AccountResult]) -> RunReport:
    def count(outcome: str) -> int:
        return sum(1 for result in results if result.outcome == outcome)

    return RunReport(
        period=period,
        drafted=count("drafted"),
        updated=count("updated"),
        unchanged_finalized=count("finalized"),
        skipped=count("skipped"),
        failed=count("failed"),
        nothing_to_bill=count(NOTHING_TO_BILL),
        finalized_due=finalized,
        accounts=results,
    )


async def _run_accounts(*, session: AsyncSession, account_id: str | None) -> list[RunAccount]:
    query = select(
        Account.id, Account.time_zone, Account.currency, Account.plan_id, Account.invoice_series
    ).order_by(Account.id)
    if account_id is not None:
        query = query.where(Account.id == account_id)
    accounts = [RunAccount(*row) for row in (await session.execute(query))]
    if account_id is not None and not accounts:
        raise AccountNotFound(f"no account {account_id!r}", detail={"account_id": account_id})
    return accounts


async def load_rates(*, session: AsyncSession) -> Rates:
    """Every metric spec, and every plan's versions (oldest first) as domain values."""
    metrics = {row.id: metric_spec(row) for row in await session.scalars(select(Metric))}
    versions: dict[str, list[PlanVersion]] = defaultdict(list)
    query = (
        select(PlanVersionRow, Plan.currency)
        .join(Plan, Plan.id == PlanVersionRow.plan_id)
        .order_by(PlanVersionRow.effective_from)
    )
    for row, currency in await session.execute(query):
        terms = load_stored_terms(row.terms, effective_from=row.effective_from)
        versions[row.plan_id].append(
            plan_version(terms, plan_id=row.plan_id, version=row.version, currency=currency)
        )
    return Rates(metrics=metrics, versions=dict(versions))


async def _run_chunk(
    *,
    session: AsyncSession,
    accounts: Sequence[RunAccount],
    label: str,
    now: datetime,
    grace: timedelta,
    rates: Rates,
    taxes: "Taxes",
) -> list[AccountResult]:
    computed_at = datetime.now(UTC)  # the wall clock before this chunk reads anything
    existing = await _existing_invoices(
        session=session, account_ids=[a.id for a in accounts], label=label
    )
    results = [
        AccountResult(a.id, "finalized", invoice_id=existing[a.id][0])
        for a in accounts
        if a.id in existing and existing[a.id][1] == FINALIZED
    ]
    to_rate = [a for a in accounts if existing.get(a.id, (0, DRAFT))[1] == DRAFT]
    usage = await load_period_usage(
        session=session, accounts=to_rate, period_label=label, as_of=now
    )
    current = {a.id: existing[a.id][0] for a in to_rate if a.id in existing}
    corrections = await adjustment_lines(
        session=session,
        accounts=to_rate,
        label=label,
        now=now,
        rates=rates,
        current_invoice_ids=current,
    )
    corrections = await without_credited(session=session, corrections=corrections)
    drafts: list[tuple[RunAccount, Period, list[DraftLine]]] = []
    empty: list[int] = []
    regimes = await _tax_regimes(session=session, accounts=to_rate, seller=taxes.seller)
    for account in to_rate:
        period, account_usage = usage[account.id]
        try:
            rated = rate_account(account=account, period=period, usage=account_usage, rates=rates)
            lines = tax_draft_lines(
                lines=[DraftLine(line) for line in rated] + corrections.get(account.id, []),
                regime=regimes[account.id],
                versions=rates.versions,
                period_end=period.end,
                time_zone=account.time_zone,
                table=taxes.table,
            )
        except InvalidBillingInput as exc:  # RatingOutOfBounds, TaxRateMissing: this account only
            results.append(_failed(account.id, current.get(account.id), exc))
            continue
        if not any(line.line.amount != 0 for line in lines):  # no fee, no usage, no correction
            results.append(AccountResult(account.id, NOTHING_TO_BILL))
            empty.extend([current.pop(account.id)] if account.id in current else [])
            continue
        drafts.append((account, period, lines))
    await discard_drafts(session=session, invoice_ids=empty)  # earlier runs' zero drafts
    results.extend(
        await _write_drafts(
            session=session,
            drafts=drafts,
            current=current,
            now=now,
            grace=grace,
            computed_at=computed_at,
        )
    )
    notes = {account_id: regime.note for account_id, regime in regimes.items()}
    return [replace(r, tax_note=notes.get(r.account_id)) for r in results]


@dataclass(frozen=True, slots=True)
class Taxes:
    """What a run taxes with: the seller (its country) and every VAT rate."""

    seller: Seller | None
    table: TaxTable


async def _tax_regimes(
    *, session: AsyncSession, accounts: Sequence[RunAccount], seller: Seller | None
) -> dict[str, Regime]:
    query = select(Account.id, Account.kind, Account.country, Account.vat_id).where(
        Account.id.in_([account.id for account in accounts])
    )
    return {
        row.id: tax_regime(kind=row.kind, country=row.country, vat_id=row.vat_id, seller=seller)
        for row in await session.execute(query)
    }


def _failed(account_id: str, draft_id: int | None, exc: InvalidBillingInput) -> AccountResult:
    detail = {"account_id": account_id, **exc.detail}
    return AccountResult(
        account_id,
        "failed",
        invoice_id=draft_id,
        error=exc.message,
        error_code=exc.code,
        error_detail=detail,
    )


async def _existing_invoices(
    *, session: AsyncSession, account_ids: list[str], label: str
) -> dict[str, tuple[int, str]]:
    """account_id -> (invoice id, status) of the period's invoices, locked on PostgreSQL."""
    query = (
        select(Invoice.account_id, Invoice.id, Invoice.status)
        .where(Invoice.period == label, Invoice.account_id.in_(account_ids))
        .with_for_update()
    )
    return {row[0]: (row[1], row[2]) for row in (await session.execute(query))}


async def _write_drafts(
    *,
    session: AsyncSession,
    drafts: list[tuple[RunAccount, Period, list[DraftLine]]],
    current: dict[str, int],
    now: datetime,
    grace: timedelta,
    computed_at: datetime,
) -> list[AccountResult]:
    """Insert new drafts, replace existing ones (same id), then all lines and evidence."""
    catalogs = await rated_catalogs(session=session, periods=[(a.id, p) for a, p, _ in drafts])
    headers = {
        account.id: {
            **_header(account, period, lines, now=now, grace=grace),
            "computed_at": computed_at,
            "rated_catalog": catalogs[account.id],
        }
        for account, period, lines in drafts
    }
    ids = dict(current)
    fresh = [headers[a.id] for a, _, _ in drafts if a.id not in current]
    if fresh:
        statement = insert(Invoice).returning(
            Invoice.account_id, Invoice.id, sort_by_parameter_order=True
        )
        ids.update((await session.execute(statement, fresh)).all())
    rewritten = [invoice_id for account_id, invoice_id in current.items() if account_id in headers]
    before = await stored_drafts(session=session, invoice_ids=rewritten)
    await _replace_headers(session=session, headers=headers, current=current)
    line_rows: list[dict[str, Any]] = []
    evidence_rows: list[dict[str, Any]] = []
    results = []
    for account, _, lines in drafts:
        invoice_id = ids[account.id]
        for n, line in enumerate(lines, start=1):
            line_rows.append(line.row(invoice_id=invoice_id, n=n))
            evidence_rows.extend(line.evidence_rows(invoice_id=invoice_id, n=n))
        outcome = "updated" if account.id in current else "drafted"
        adjustments = sum(1 for line in lines if line.corrects_invoice_id is not None)
        total = headers[account.id]["total"]
        results.append(
            AccountResult(account.id, outcome, invoice_id, total, len(lines), adjustments)
        )
    if line_rows:
        await session.execute(insert(LINES), line_rows)
    if evidence_rows:
        await insert_evidence(session=session, rows=evidence_rows)
    await emit_drafted(
        session=session, headers=headers, ids=ids, line_rows=line_rows, before=before
    )  # invoice.drafted for new drafts and changed ones, in this transaction
    return results


def _header(
    account: RunAccount, period: Period, lines: list[DraftLine], *, now: datetime, grace: timedelta
) -> dict[str, Any]:
    totals = draft_totals(lines, account.currency)
    return {
        "account_id": account.id,
        "period": period.label,
        "period_start": period.start,
        "period_end": period.end,
        "currency": account.currency,
        "status": DRAFT,
        "series": account.series,
        "number": None,
        "total": add_amounts(line.line.amount for line in lines),  # exact, never rounded
        "computed_at": now,
        "as_of": now,
        "grace_until": period.end + grace,
        "finalized_at": None,
        "tax_total": totals.tax,  # EN 16931: per (category, rate) subtotal, rounded once each
        "gross_total": totals.gross,
    }


async def _replace_headers(
    *, session: AsyncSession, headers: dict[str, dict[str, Any]], current: dict[str, int]
) -> None:
    """Rewrite existing drafts' headers in place and drop their old lines and evidence."""
    rewritten = {a: i for a, i in current.items() if a in headers}
    if not rewritten:
        return
    ids = list(rewritten.values())
    await session.execute(delete(InvoiceEvidence).where(InvoiceEvidence.invoice_id.in_(ids)))
    await session.execute(delete(InvoiceLine).where(InvoiceLine.invoice_id.in_(ids)))
    table = INVOICES
    statement = update(table).where(table.c.id == bindparam("invoice_id"), table.c.status == DRAFT)
    rows = [
        {"invoice_id": invoice_id, **_changed(headers[account_id])}
        for account_id, invoice_id in rewritten.items()
    ]
    await session.execute(statement, rows)


def _changed(header: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "currency",
        "series",
        "total",
        "computed_at",
        "as_of",
        "rated_catalog",
        "grace_until",
        "tax_total",
        "gross_total",
    )
    return {key: header[key] for key in keys}


async def list_invoices(
    *,
    session: AsyncSession,
    account_id: str | None = None,
    period: str | None = None,
    status: str | None = None,
) -> list[Invoice]:
    """Invoices, newest period first, filtered by account, period ("2026-11") and status."""
    query = select(Invoice).order_by(Invoice.period.desc(), Invoice.account_id)
    if account_id is not None:
        query = query.where(Invoice.account_id == account_id)
    if period is not None:
        query = query.where(Invoice.period == period)
    if status is not None:
        if status not in (DRAFT, FINALIZED):
            raise InvalidBillingInput(
                f"status {status!r}: use draft or finalized", detail={"status": status}
            )
        query = query.where(Invoice.status == status)
    return list(await session.scalars(query))


async def get_invoice(
    *, session: AsyncSession, invoice_id: int
) -> tuple[Invoice, list[InvoiceLine]]:
    """An invoice's header and its lines in order; `InvoiceNotFound` if none."""
    invoice = await session.get(Invoice, invoice_id)
    if invoice is None:
        raise InvoiceNotFound(f"no invoice {invoice_id}", detail={"invoice_id": invoice_id})
    query = select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id).order_by(InvoiceLine.n)
    return invoice, list(await session.scalars(query))


EVIDENCE_COLUMNS = (
    "invoice_id",
    "line_n",
    "session_id",
    "piece_start",
    "piece_end",
    "gateway_id",
    "seq",
)


async def insert_evidence(*, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert evidence rows in this transaction: COPY on PostgreSQL (an executemany there costs
    a round trip per ~20 rows; a run writes one row per billed event), executemany on SQLite."""
    if session.get_bind().dialect.name != "postgresql":
        await session.execute(insert(EVIDENCE), rows)
        return
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    records = [tuple(row[column] for column in EVIDENCE_COLUMNS) for row in rows]
    await driver.copy_records_to_table(
        "invoice_evidence", records=records, columns=list(EVIDENCE_COLUMNS)
    )
