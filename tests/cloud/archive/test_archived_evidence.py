"""An invoice whose usage spans two monthly partitions verifies, and still does once the first
month is archived: the evidence names the archived events, `verify-invoice --archive DIR` takes
their batches from the archive files.

Account `acme` is in Europe/Berlin, so its November starts 2026-10-31 23:00Z: three of its events
lie in October's UTC partition. Batch 1 holds October events only; batch 2 one October event and
two November ones (partly archived later).

    stream   cam-1 10-31 23:30Z .. 11-01 01:00Z = 1.5 h, 0.5 billable x 0.50      = 0.25
    water    60 l (10-31 23:10Z) + 5 l (10-31 23:50Z) + 70 l (11-06): 135 l
             100 x 0.01 + 35 x 0.02                                              = 1.70
    total    10.00 + 0.25 + 1.70                                                 = 11.95
"""

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from cloud.archive.evidence import with_archive
from cloud.archive.service import ArchiveRefused, archive_before
from cloud.cli import main
from cloud.db import Database
from cloud.invoices.evidence_cli import load_documents
from cloud.invoices.finalization import finalize_invoice
from cloud.invoices.service import run_invoices
from cloud.invoices.verify import verify_invoice
from shared.events import EventKind
from tests.cloud.invoices.test_evidence import GATEWAY, GRACE, NOW, at, set_up_catalog
from tests.support.usage import GatewayFeed, usage

ARCHIVED_AT = datetime(2028, 1, 10, tzinfo=UTC)  # October 2026 is outside the correction window


def water(when: str, litres: str) -> Any:
    """A meter-1 reading."""
    return usage(
        "meter-1", "water", at(when), kind=EventKind.MEASUREMENT, quantity=litres, unit="l"
    )


async def cli(*argv: str) -> int:
    """`tollgate-cloud ARGV` in a thread; its exit status."""

    def run() -> int:
        try:
            return main(list(argv))
        except SystemExit as exc:
            return int(exc.code or 0)

    return await asyncio.to_thread(run)


async def test_invoice_across_two_partitions_verifies_before_and_after_archiving(
    app: FastAPI, db: Database, db_url: str, tmp_path: Path, capsys: Any
) -> None:
    await set_up_catalog(db)
    feed = await GatewayFeed(GATEWAY).register(db)
    await feed.send(
        db,
        [
            water("10-31 23:10", "60"),
            usage("cam-1", "stream_start", at("10-31 23:30"), kind=EventKind.ACTIVATION),
        ],
    )
    await feed.send(
        db,
        [
            water("10-31 23:50", "5"),
            usage("cam-1", "stream_stop", at("11-01 01:00"), kind=EventKind.DEACTIVATION),
            water("11-06 08:00", "70"),
        ],
    )
    report = await run_invoices(db=db, period="2026-11", now=NOW, grace=GRACE, account_id="acme")
    (result,) = report.accounts
    assert result.invoice_id is not None and result.total == Decimal("11.95"), report
    invoice_id = result.invoice_id

    invoice, evidence = await load_documents(db_url, invoice_id)
    months = {e["occurred_at"][:7] for doc in evidence for e in doc["events"]}
    assert months == {"2026-10", "2026-11"}
    assert verify_invoice(invoice, evidence) == []

    archive = tmp_path / "archive"
    archive.mkdir()
    with pytest.raises(ArchiveRefused, match=rf"draft invoice\(s\) {invoice_id} \(account acme"):
        await archive_before(db, before=(2026, 11), directory=archive, now=ARCHIVED_AT)
    await finalize_invoice(db=db, invoice_id=invoice_id, now=NOW, force=True)
    (done,) = await archive_before(db, before=(2026, 11), directory=archive, now=ARCHIVED_AT)
    assert (done.month, done.event_count, done.batch_count) == ("2026-10", 3, 2)

    invoice, evidence = await load_documents(db_url, invoice_id)
    archived = [doc["archived"] for doc in evidence if "archived" in doc]
    assert {len(item["events"]) for item in archived} == {1, 2}  # stream: 1, water: 2
    assert all(item["months"] == ["2026-10"] for item in archived)
    problems = verify_invoice(invoice, evidence)
    assert any(
        "archived billed events are in the evidence" in p.what
        and "verify with --archive DIR" in p.detail
        for p in problems
    ), problems

    completed, used = with_archive(evidence, archive)
    assert used == ["events-2026-10.jsonl.gz"]
    assert verify_invoice(invoice, completed) == []

    capsys.readouterr()
    assert await cli("verify-invoice", str(invoice_id), "--db", db_url) == 1
    assert "--archive DIR" in capsys.readouterr().out
    flags = ("--db", db_url, "--archive", str(archive))
    assert await cli("verify-invoice", str(invoice_id), *flags) == 0
    out = capsys.readouterr().out
    assert "✗" not in out and "batches taken from events-2026-10.jsonl.gz" in out


async def test_a_run_does_not_correct_an_invoice_over_an_archived_month(
    app: FastAPI, db: Database, db_url: str, tmp_path: Path
) -> None:
    """Re-rating November after October was archived would credit October's usage away: the
    December run names no adjustment although a late November event arrived."""
    await set_up_catalog(db)
    feed = await GatewayFeed(GATEWAY).register(db)
    await feed.send(db, [water("10-31 23:10", "60"), water("11-06 08:00", "70")])
    report = await run_invoices(db=db, period="2026-11", now=NOW, grace=GRACE, account_id="acme")
    (november,) = report.accounts
    assert november.invoice_id is not None
    await finalize_invoice(db=db, invoice_id=november.invoice_id, now=NOW, force=True)
    await archive_before(db, before=(2026, 11), directory=tmp_path, now=ARCHIVED_AT)
    await feed.send(db, [water("11-20 08:00", "10")])  # late: received after November's run

    later = datetime.now(UTC)
    report = await run_invoices(db=db, period="2026-12", now=later, grace=GRACE, account_id="acme")
    (december,) = report.accounts
    assert december.invoice_id is not None
    invoice, _ = await load_documents(db_url, december.invoice_id)
    assert [line["kind"] for line in invoice["lines"] if line["kind"] == "adjustment"] == []
