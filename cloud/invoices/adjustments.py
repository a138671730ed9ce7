"""Corrections of finalized invoices: adjustment lines on the next draft, never an edit.

When period P is run for an account, each of its finalized invoices of the 12 periods before P
(`LOOKBACK_PERIODS`) whose inputs may have changed since it was computed is re-rated as of now.
"May have changed" means, after its `computed_at`:

- an event of a device bound to the account in that period was received (a late event);
- a binding overlapping the period was created for the account or for one of the devices bound
  to it then (a device moved away or to it);
- a version of its plan effective before the period's end was created;
- a session of such a device overlapping the period was (re)computed (a rule change).

An invoice whose period overlaps an archived month (`tollgate-cloud archive`) is not re-rated:
its events are no longer all stored, and re-rating would credit the archived usage away (the
archive refuses months an invoice run may still re-rate, so this only guards runs of old periods).

Not detected: the end of a binding moved by PATCH without any other change (no change time is
stored for bindings). The re-rated lines are compared line by line with the finalized lines plus
every adjustment already issued for them on any other invoice; the identity of a line is
(kind, metric, plan_id, plan_version, part_start). Each difference becomes an ADJUSTMENT line
(credit when negative) naming the invoice number and line; its evidence is the new measurement's.
P's own draft is excluded from "already issued", so a re-run of P recomputes the same adjustments
instead of adding them twice. An invoice that can no longer be rated (its plan or metrics became
invalid) gets no adjustment.
"""

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, exists, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from cloud.archive.service import archived_ranges
from cloud.catalog.models import Account, Binding, PlanVersionRow
from cloud.domain import LineKind, RatedLine
from cloud.errors import InvalidBillingInput
from cloud.ingest.models import StoredEvent
from cloud.invoices.finalization import FINALIZED, invoice_number
from cloud.invoices.lines import DraftLine, Rates, RunAccount, rate_account
from cloud.invoices.models import Invoice, InvoiceLine
from cloud.rating.money import round_money
from cloud.sessions.models import SessionRow
from cloud.usage.loader import load_period_usage

LOOKBACK_PERIODS = 12
LineKey = tuple[str, str | None, str | None, int | None, datetime]


@dataclass(frozen=True, slots=True)
class EarlierInvoice:
    """A finalized invoice that may need corrections."""

    id: int
    account_id: str
    period: str
    number: str
    currency: str
    plan_id: str | None


@dataclass(slots=True)
class Baseline:
    """What has been billed for one line identity so far: the line and its corrections."""

    amount: Decimal
    line_n: int | None
    part_end: datetime


def lookback_label(label: str) -> str:
    """The period label `LOOKBACK_PERIODS` months before `label` ("2026-11" -> "2025-11")."""
    year, month = int(label[:4]), int(label[5:7])
    index = year * 12 + month - 1 - LOOKBACK_PERIODS
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


async def adjustment_lines(
    *,
    session: AsyncSession,
    accounts: Sequence[RunAccount],
    label: str,
    now: datetime,
    rates: Rates,
    current_invoice_ids: Mapping[str, int],
) -> dict[str, list[DraftLine]]:
    """account_id -> the adjustment lines its draft for `label` carries (see the module doc)."""
    by_id = {account.id: account for account in accounts}
    earlier = await _changed_invoices(session=session, account_ids=list(by_id), label=label)
    if not earlier:
        return {}
    baselines = await _baselines(
        session=session,
        invoice_ids=[invoice.id for invoice in earlier],
        exclude=set(current_invoice_ids.values()),
    )
    by_period: dict[str, list[EarlierInvoice]] = defaultdict(list)
    for invoice in earlier:
        by_period[invoice.period].append(invoice)
    corrections: dict[str, list[DraftLine]] = defaultdict(list)
    for period_label in sorted(by_period):
        invoices = by_period[period_label]
        usage = await load_period_usage(
            session=session,
            accounts=[by_id[invoice.account_id] for invoice in invoices],
            period_label=period_label,
            as_of=now,
        )
        for invoice in invoices:
            period, account_usage = usage[invoice.account_id]
            try:
                rated = rate_account(
                    account=by_id[invoice.account_id],
                    period=period,
                    usage=account_usage,
                    rates=rates,
                    plan_id=invoice.plan_id,
                    currency=invoice.currency,
                )
            except InvalidBillingInput:
                continue
            corrections[invoice.account_id].extend(
                correct(invoice=invoice, rated=rated, baselines=baselines.get(invoice.id, {}))
            )
    return dict(corrections)


def line_key(line: RatedLine) -> LineKey:
    """A line's identity across re-ratings."""
    return (line.kind.value, line.metric, line.plan_id, line.plan_version, line.part_start)


def correct(
    *, invoice: EarlierInvoice, rated: Sequence[RatedLine], baselines: Mapping[LineKey, Baseline]
) -> list[DraftLine]:
    """The adjustment lines turning what was billed (`baselines`) into the new `rated` lines.

    Pure: ordered by the corrected line's number (new identities last, in rated order).
    """
    new = {line_key(line): line for line in rated}
    order = {key: index for index, key in enumerate(new)}
    keys = sorted(
        set(new) | set(baselines),
        key=lambda key: (
            _line_order(baselines.get(key)),
            order.get(key, len(order)),
        ),
    )
    lines = []
    for key in keys:
        old = baselines.get(key)
        line = new.get(key)
        difference = (line.amount if line else Decimal(0)) - (old.amount if old else Decimal(0))
        if difference != 0:
            lines.append(_adjustment(invoice, key, old, line, difference))
    return lines


def _line_order(baseline: Baseline | None) -> int:
    if baseline is None or baseline.line_n is None:
        return 1 << 30
    return baseline.line_n


def _adjustment(
    invoice: EarlierInvoice,
    key: LineKey,
    old: Baseline | None,
    line: RatedLine | None,
    difference: Decimal,
) -> DraftLine:
    kind, metric, plan_id, plan_version, part_start = key
    # stored amounts come back from SQLite without trailing zeros: show the minor unit again
    previous = round_money(old.amount if old else Decimal(0), invoice.currency)
    now_billed = round_money(line.amount if line else Decimal(0), invoice.currency)
    line_n = old.line_n if old else None
    where = f"line {line_n}" if line_n is not None else "(a line it did not have)"
    what = line.description if line else "no longer billed"
    detail: dict[str, Any] = {
        "corrected_kind": kind,
        "corrects_invoice": invoice.number,
        "corrects_invoice_id": invoice.id,
        "corrects_line": line_n,
        "previous_amount": str(previous),
        "new_amount": str(now_billed),
    }
    part_end = line.part_end if line else old.part_end if old else part_start
    adjustment = RatedLine(
        kind=LineKind.ADJUSTMENT,
        description=(
            f"Correction of {invoice.number} {where}: {what} ({previous} -> {now_billed})"
        ),
        amount=difference,
        part_start=part_start,
        part_end=part_end,
        plan_id=plan_id,
        plan_version=plan_version,
        metric=metric,
        quantity=line.quantity if line else None,
        billable=line.billable if line else None,
        detail=detail,
        measurement=line.measurement if line else None,
    )
    return DraftLine(adjustment, corrects_invoice_id=invoice.id, corrects_line=line_n)


async def _changed_invoices(
    *, session: AsyncSession, account_ids: list[str], label: str
) -> list[EarlierInvoice]:
    """The accounts' finalized invoices of the look-back window whose inputs may have changed."""
    if not account_ids:
        return []
    query = (
        select(
            Invoice.id,
            Invoice.account_id,
            Invoice.period,
            Invoice.series,
            Invoice.number,
            Invoice.currency,
            Invoice.period_start,
            Invoice.period_end,
        )
        .where(
            Invoice.status == FINALIZED,
            Invoice.account_id.in_(account_ids),
            Invoice.period >= lookback_label(label),
            Invoice.period < label,
            _inputs_changed(),
        )
        .order_by(Invoice.period, Invoice.id)
    )
    archived = await archived_ranges(session)
    rows = [
        row
        for row in (await session.execute(query)).all()
        if not any(start < row.period_end and row.period_start < end for start, end in archived)
    ]
    plans = await _invoice_plans(session=session, invoice_ids=[row[0] for row in rows])
    return [
        EarlierInvoice(
            id=invoice_id,
            account_id=account_id,
            period=period,
            number=invoice_number(series, number) or "",
            currency=currency,
            plan_id=plans.get(invoice_id),
        )
        for invoice_id, account_id, period, series, number, currency, _, _ in rows
    ]


def _overlaps_invoice(binding: Any) -> Any:
    return and_(
        binding.valid_from < Invoice.period_end,
        or_(binding.valid_to.is_(None), binding.valid_to > Invoice.period_start),
    )


def _inputs_changed() -> Any:
    """SQL: something an invoice was rated from changed after its `computed_at`."""
    bound = aliased(Binding)
    other = aliased(Binding)
    event = StoredEvent
    late_event = exists().where(
        bound.account_id == Invoice.account_id,
        _overlaps_invoice(bound),
        event.device_id == bound.device_id,
        event.occurred_at >= Invoice.period_start,
        event.occurred_at < Invoice.period_end,
        event.received_at > Invoice.computed_at,
    )
    new_binding = exists().where(
        bound.account_id == Invoice.account_id,
        _overlaps_invoice(bound),
        other.device_id == bound.device_id,
        _overlaps_invoice(other),
        other.created_at > Invoice.computed_at,
    )
    # An ended binding may no longer overlap the period it was billed in: any change counts.
    changed_binding = exists().where(
        other.account_id == Invoice.account_id, other.changed_at > Invoice.computed_at
    )
    new_version = exists().where(
        or_(
            PlanVersionRow.plan_id.in_(
                select(InvoiceLine.plan_id).where(InvoiceLine.invoice_id == Invoice.id)
            ),
            PlanVersionRow.plan_id.in_(
                select(Account.plan_id).where(Account.id == Invoice.account_id)
            ),
        ),
        PlanVersionRow.created_at > Invoice.computed_at,
        PlanVersionRow.effective_from < Invoice.period_end,
    )
    new_session = exists().where(
        bound.account_id == Invoice.account_id,
        _overlaps_invoice(bound),
        SessionRow.device_id == bound.device_id,
        SessionRow.computed_at > Invoice.computed_at,
        SessionRow.started_at < Invoice.period_end,
        or_(SessionRow.ended_at.is_(None), SessionRow.ended_at >= Invoice.period_start),
    )
    return or_(late_event, new_binding, changed_binding, new_version, new_session)


async def _invoice_plans(*, session: AsyncSession, invoice_ids: list[int]) -> dict[int, str]:
    """invoice id -> the plan its lines were rated under (none: the account's plan is used)."""
    if not invoice_ids:
        return {}
    query = (
        select(InvoiceLine.invoice_id, InvoiceLine.plan_id)
        .where(
            InvoiceLine.invoice_id.in_(invoice_ids),
            InvoiceLine.plan_id.is_not(None),
            InvoiceLine.kind != LineKind.ADJUSTMENT.value,
        )
        .order_by(InvoiceLine.invoice_id, InvoiceLine.n)
    )
    plans: dict[int, str] = {}
    for invoice_id, plan_id in await session.execute(query):
        if plan_id is not None:
            plans.setdefault(invoice_id, plan_id)
    return plans


async def _baselines(
    *, session: AsyncSession, invoice_ids: list[int], exclude: set[int]
) -> dict[int, dict[LineKey, Baseline]]:
    """invoice id -> line identity -> what was billed: the line plus adjustments issued since."""
    columns = (
        InvoiceLine.invoice_id,
        InvoiceLine.n,
        InvoiceLine.kind,
        InvoiceLine.metric,
        InvoiceLine.plan_id,
        InvoiceLine.plan_version,
        InvoiceLine.part_start,
        InvoiceLine.part_end,
        InvoiceLine.amount,
    )
    baselines: dict[int, dict[LineKey, Baseline]] = defaultdict(dict)
    originals = select(*columns).where(
        InvoiceLine.invoice_id.in_(invoice_ids), InvoiceLine.kind != LineKind.ADJUSTMENT.value
    )
    for invoice_id, n, kind, metric, plan_id, version, start, end, amount in await session.execute(
        originals
    ):
        key = (kind, metric, plan_id, version, start)
        baselines[invoice_id][key] = Baseline(amount=amount, line_n=n, part_end=end)
    issued = select(*columns, InvoiceLine.corrects_invoice_id, InvoiceLine.detail).where(
        InvoiceLine.corrects_invoice_id.in_(invoice_ids),
        InvoiceLine.invoice_id.not_in(exclude) if exclude else true(),
    )
    for row in await session.execute(issued):
        _, _, _, metric, plan_id, version, start, end, amount, corrected, detail = row
        assert corrected is not None
        key = (str(detail.get("corrected_kind")), metric, plan_id, version, start)
        baseline = baselines[corrected].setdefault(key, Baseline(Decimal(0), None, end))
        baseline.amount += amount
    return dict(baselines)
