"""The numbers of the console's overview page, from the read models that own them.

Stored events are counted from the batches' `event_count` (how many events each batch added;
direct sources store batches too), never by scanning `events`. Draft totals come from
`cloud.invoices.service.list_invoices`, the last run's progress from `run_progress`.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import Select, func, select

from cloud.choices import IncidentState
from cloud.db import Database
from cloud.fleet.models import GatewayTwin
from cloud.incidents.models import Incident
from cloud.ingest.models import ReceivedBatch
from cloud.invoices.run_queue import InvoiceRun, RunProgress, run_progress
from cloud.invoices.service import list_invoices
from cloud.rating.money import add_amounts, round_money

DRAFT = "draft"
OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class Overview:
    """What the overview shows; `period` is the current UTC month (YYYY-MM)."""

    now: datetime
    events_today: int  # stored since 00:00 UTC
    events_last_hour: int
    open_incidents: int
    gateways_offline: int
    period: str
    draft_totals: dict[str, Decimal]  # currency -> sum of the period's draft totals
    draft_count: int
    last_run: RunProgress | None

    @property
    def events_per_minute(self) -> Decimal:
        """The last hour's ingest rate, events per minute, one decimal."""
        rate = Decimal(self.events_last_hour) / 60
        return rate.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


async def read_overview(*, db: Database, now: datetime) -> Overview:
    """The overview's numbers as of `now` (UTC)."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    period = now.strftime("%Y-%m")
    async with db.transaction() as session:
        events_today = await session.scalar(_events_since(midnight))
        events_last_hour = await session.scalar(_events_since(now - timedelta(hours=1)))
        open_incidents = await session.scalar(
            select(func.count()).where(Incident.state == IncidentState.OPEN.value)
        )
        offline = await session.scalar(select(func.count()).where(GatewayTwin.status == OFFLINE))
        drafts = await list_invoices(session=session, period=period, status=DRAFT)
        last_run_id = await session.scalar(select(func.max(InvoiceRun.id)))
    by_currency: dict[str, list[Decimal]] = {}
    for invoice in drafts:
        by_currency.setdefault(invoice.currency, []).append(invoice.total)
    totals = {
        currency: round_money(add_amounts(amounts), currency)  # 7.1 as stored reads 7.10
        for currency, amounts in by_currency.items()
    }
    last_run = None if last_run_id is None else await run_progress(db=db, run_id=last_run_id)
    return Overview(
        now=now,
        events_today=int(events_today or 0),
        events_last_hour=int(events_last_hour or 0),
        open_incidents=int(open_incidents or 0),
        gateways_offline=int(offline or 0),
        period=period,
        draft_totals=dict(sorted(totals.items())),
        draft_count=len(drafts),
        last_run=last_run,
    )


def _events_since(moment: datetime) -> Select[int]:
    return select(func.coalesce(func.sum(ReceivedBatch.event_count), 0)).where(
        ReceivedBatch.received_at >= moment
    )
