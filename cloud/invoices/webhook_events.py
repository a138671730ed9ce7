"""The invoice webhook events, emitted in the transaction that makes the change they announce.

- `invoice.drafted`: a run wrote a new draft, or rewrote a draft whose content changed (its
  currency, total, or any line: kind, text, plan, metric, part, quantity, billable, amount,
  detail, what it corrects). A re-run that writes the same content again emits nothing, so a
  receiver hears of a draft only when there is something new to read.
- `invoice.finalized`: a draft got its number (by hand or at the end of its grace period).

Totals are written to the currency's minor unit ("15.05", "12.20": they are sums of rounded
lines, so nothing is rounded away), times in RFC 3339.
"""

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.invoices.models import Invoice, InvoiceLine
from cloud.rating.money import round_money
from cloud.webhooks.outbox import emit_async
from cloud.webhooks.types import EventType

# The line fields that make up what a draft says (`DraftLine.row` keys, invoice_id aside).
LINE_FIELDS = (
    "n",
    "kind",
    "description",
    "plan_id",
    "plan_version",
    "metric",
    "part_start",
    "part_end",
    "quantity",
    "billable",
    "amount",
    "detail",
    "corrects_invoice_id",
    "corrects_line",
)


@dataclass(frozen=True, slots=True)
class DraftContent:
    """What a draft says: compared before and after a run rewrites it (Decimals by value)."""

    currency: str
    total: Decimal
    lines: tuple[tuple[Any, ...], ...]


def _line(values: Mapping[str, Any]) -> tuple[Any, ...]:
    # detail as the JSON it is stored as (tuples become lists, as on the way back)
    return tuple(
        orjson.loads(orjson.dumps(values[name])) if name == "detail" else values[name]
        for name in LINE_FIELDS
    )


async def stored_drafts(
    *, session: AsyncSession, invoice_ids: Sequence[int]
) -> dict[int, DraftContent]:
    """invoice id -> its content as stored now (call before a run replaces it)."""
    if not invoice_ids:
        return {}
    headers = await session.execute(
        select(Invoice.id, Invoice.currency, Invoice.total).where(Invoice.id.in_(invoice_ids))
    )
    columns = [InvoiceLine.invoice_id, *(getattr(InvoiceLine, name) for name in LINE_FIELDS)]
    query = (
        select(*columns)
        .where(InvoiceLine.invoice_id.in_(invoice_ids))
        .order_by(InvoiceLine.invoice_id, InvoiceLine.n)
    )
    lines: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for invoice_id, *values in await session.execute(query):
        lines[invoice_id].append(_line(dict(zip(LINE_FIELDS, values, strict=True))))
    return {
        invoice_id: DraftContent(currency, total, tuple(lines[invoice_id]))
        for invoice_id, currency, total in headers
    }


async def emit_drafted(
    *,
    session: AsyncSession,
    headers: Mapping[str, Mapping[str, Any]],
    ids: Mapping[str, int],
    line_rows: Sequence[Mapping[str, Any]],
    before: Mapping[int, DraftContent],
) -> int:
    """`invoice.drafted` for each written draft that is new or says something new; how many.

    `headers` by account id (the `invoices` values written), `ids` account -> invoice id,
    `line_rows` every line row written, `before` the rewritten drafts' earlier content.
    """
    lines: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for row in line_rows:
        lines[row["invoice_id"]].append(_line(row))
    emitted = 0
    for account_id, header in headers.items():
        invoice_id = ids[account_id]
        content = DraftContent(header["currency"], header["total"], tuple(lines[invoice_id]))
        earlier = before.get(invoice_id)
        if earlier == content:
            continue
        data = {
            "invoice_id": invoice_id,
            "account_id": account_id,
            "change": "created" if earlier is None else "updated",
            "period": header["period"],
            "period_start": header["period_start"].isoformat(),
            "period_end": header["period_end"].isoformat(),
            "total": money(header["total"], header["currency"]),
            "currency": header["currency"],
            "lines": len(content.lines),
        }
        await emit_async(session, EventType.INVOICE_DRAFTED, data)
        emitted += 1
    return emitted


async def emit_finalized(*, session: AsyncSession, invoice: Invoice, number: str | None) -> None:
    """`invoice.finalized` for an invoice just given its number (`number` as printed)."""
    finalized_at: datetime | None = invoice.finalized_at
    assert finalized_at is not None, "a finalized invoice has its issue time"
    data = {
        "invoice_id": invoice.id,
        "account_id": invoice.account_id,
        "number": number,
        "period": invoice.period,
        "total": money(invoice.total, invoice.currency),
        "currency": invoice.currency,
        "finalized_at": finalized_at.isoformat(),
    }
    await emit_async(session, EventType.INVOICE_FINALIZED, data)


def money(amount: Decimal, currency: str) -> str:
    """An invoice amount as text in the currency's minor unit: "12.20" EUR, "1200" JPY."""
    return str(round_money(amount, currency))
