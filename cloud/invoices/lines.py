"""An invoice line before it is written: a rated line, what it corrects, and its rows.

Shared by the run (`cloud.invoices.service`) and the adjustments (`cloud.invoices.adjustments`):
the accounts and catalog they rate with, and how one account's period is rated.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from cloud.domain import MetricSpec, PlanVersion, RatedLine
from cloud.rating.periods import Period
from cloud.rating.rating import AccountUsage, rate_period


@dataclass(frozen=True, slots=True)
class RunAccount:
    """An account as a run reads it."""

    id: str
    time_zone: str
    currency: str
    plan_id: str | None
    series: str


@dataclass(frozen=True, slots=True)
class Rates:
    """The catalog a run rates with: metric specs and each plan's versions (oldest first)."""

    metrics: Mapping[str, MetricSpec]
    versions: Mapping[str, Sequence[PlanVersion]]


@dataclass(frozen=True, slots=True)
class DraftLine:
    """A line to write; an adjustment names the invoice and line it corrects."""

    line: RatedLine
    corrects_invoice_id: int | None = None
    corrects_line: int | None = None
    tax_category: str | None = None  # UNCL5305, set by the run (cloud.invoices.parties)
    tax_rate: Decimal | None = None  # percent

    def row(self, *, invoice_id: int, n: int) -> dict[str, Any]:
        """The `invoice_lines` row."""
        line = self.line
        return {
            "invoice_id": invoice_id,
            "n": n,
            "kind": line.kind.value,
            "description": line.description,
            "plan_id": line.plan_id,
            "plan_version": line.plan_version,
            "metric": line.metric,
            "part_start": line.part_start,
            "part_end": line.part_end,
            "quantity": line.quantity,
            "billable": line.billable,
            "amount": line.amount,
            "detail": line.detail,
            "corrects_invoice_id": self.corrects_invoice_id,
            "corrects_line": self.corrects_line,
            "tax_category": self.tax_category,
            "tax_rate": self.tax_rate,
        }

    def evidence_rows(self, *, invoice_id: int, n: int) -> list[dict[str, Any]]:
        """The `invoice_evidence` rows: one per session piece and one per event."""
        measurement = self.line.measurement
        if measurement is None:
            return []
        rows = [
            _evidence(
                invoice_id,
                n,
                session_id=piece.session_id,
                start=piece.piece_start,
                end=piece.piece_end,
            )
            for piece in measurement.sessions
        ]
        rows.extend(
            _evidence(invoice_id, n, gateway_id=gateway_id, seq=seq)
            for gateway_id, seq in measurement.events
        )
        return rows


def _evidence(
    invoice_id: int,
    n: int,
    *,
    session_id: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    gateway_id: str | None = None,
    seq: int | None = None,
) -> dict[str, Any]:
    return {
        "invoice_id": invoice_id,
        "line_n": n,
        "session_id": session_id,
        "piece_start": start,
        "piece_end": end,
        "gateway_id": gateway_id,
        "seq": seq,
    }


def rate_account(
    *,
    account: RunAccount,
    period: Period,
    usage: AccountUsage,
    rates: Rates,
    plan_id: str | None = None,
    currency: str | None = None,
) -> list[RatedLine]:
    """Rate one account's usage over its period under its plan (or `plan_id`, `currency`)."""
    plan = plan_id or account.plan_id
    return rate_period(
        currency=currency or account.currency,
        period_start=period.start,
        period_end=period.end,
        versions=rates.versions.get(plan, []) if plan is not None else [],
        metrics=rates.metrics,
        usage=usage,
        account_id=account.id,
    )
