"""An invoice shows what it froze when it was rated, and its as-of time is not its clock.

Over the scenario of `test_evidence` (stream_hours 3.5 h on line 2, water 130 l on line 3).
"""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
from fastapi import FastAPI

from cloud.catalog.devices import set_profile_rule
from cloud.db import Database
from cloud.invoices.finalization import finalize_invoice
from cloud.invoices.service import get_invoice, run_invoices
from cloud.sessions.service import refresh_sessions
from shared.events import EventKind
from tests.cloud.invoices.test_evidence import GRACE, NOW, at, billed_invoice
from tests.support.usage import usage

BAR = re.compile(r"<title>(\d{4}-\d{2}-\d{2}): ([0-9.]+)</title>")


def chart_days(html: str, n: int) -> dict[str, Decimal]:
    """The bars of line `n`'s chart: local day -> value."""
    chart = html.split(f'<figure id="chart-{n}">')[1].split("</figure>")[0]
    return {day: Decimal(value) for day, value in BAR.findall(chart)}


async def test_the_page_of_a_finalized_invoice_charts_what_its_lines_billed(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    billed = await billed_invoice(db)
    await finalize_invoice(db=db, invoice_id=billed.invoice_id, now=NOW, force=True)
    # After finalization: a late camera session and a late water reading arrive, and the
    # camera's rule changes (a 10 min timeout), so November's current sessions are recomputed.
    await billed.feed.send(
        db,
        [
            usage("cam-1", "stream_start", at("11-20 10:00"), kind=EventKind.ACTIVATION),
            usage("cam-1", "stream_stop", at("11-20 11:15"), kind=EventKind.DEACTIVATION),
            usage("meter-1", "water", at("11-21 08:00"), kind=EventKind.MEASUREMENT,
                  quantity="500", unit="l"),
        ],
    )  # fmt: skip
    async with db.transaction(write=True) as session:
        await set_profile_rule(
            session=session,
            profile_id="camera",
            start_on=["stream_start"],
            end_on=["stream_stop"],
            timeout_seconds=600,
        )
    await refresh_sessions(db=db, as_of=datetime.now(UTC))

    url = f"/v1/invoices/{billed.invoice_id}"
    html = (await client.get(f"{url}.html", headers=billed.headers)).text
    lines = (await client.get(f"{url}/export?format=json", headers=billed.headers)).json()["lines"]

    stream, water = chart_days(html, 2), chart_days(html, 3)
    assert sum(stream.values()) == Decimal(lines[1]["quantity"]) == Decimal("3.5")
    assert (stream["2026-11-03"], stream["2026-11-10"], stream["2026-11-20"]) == (
        Decimal("2.5"),
        Decimal(1),
        Decimal(0),
    )
    assert sum(water.values()) == Decimal(lines[2]["quantity"]) == 130
    assert water["2026-11-21"] == 0


async def test_late_events_after_a_run_with_a_future_now_become_adjustments(
    app: FastAPI, db: Database
) -> None:
    # November is rated as of a `--now` two months ahead; what arrives after it was computed
    # (wall clock) is late, though it arrives "before" that as-of time.
    future = NOW + timedelta(days=60)
    billed = await billed_invoice(db, now=future)
    november = await finalize_invoice(db=db, invoice_id=billed.invoice_id, now=future, force=True)
    await billed.feed.send(
        db,
        [
            usage("meter-1", "water", at("11-20 10:00"), kind=EventKind.MEASUREMENT,
                  quantity="10", unit="l"),
        ],
    )  # fmt: skip

    report = await run_invoices(
        db=db, period="2026-12", now=future + timedelta(days=1), grace=GRACE, account_id="acme"
    )

    (result,) = report.accounts
    assert result.adjustments == 1
    async with db.transaction() as session:
        assert result.invoice_id is not None
        _, lines = await get_invoice(session=session, invoice_id=result.invoice_id)
    (adjustment,) = [line for line in lines if line.kind == "adjustment"]
    # water 130 l -> 140 l: 1.60 -> 1.80
    assert (adjustment.amount, adjustment.corrects_invoice_id, adjustment.corrects_line) == (
        Decimal("0.20"),
        november.id,
        3,
    )
    assert november.as_of == future and november.computed_at < future  # the two times, apart
