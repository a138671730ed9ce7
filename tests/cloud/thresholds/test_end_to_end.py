"""From ingested usage to a signed delivery: a threshold crossed and an invoice drafted and
finalized reach a real receiver (uvicorn on loopback, verifying with `standardwebhooks`) through
W's delivery job, each once, on both backends."""

from datetime import UTC, datetime

from cloud.invoices.finalization import finalize_invoice
from cloud.thresholds.check import check_thresholds
from cloud.thresholds.models import Measure
from cloud.webhooks.delivery import deliver_due
from cloud.webhooks.endpoints import create_endpoint
from cloud.webhooks.types import EventType
from tests.cloud.invoices.test_runs import Billing, reading, utc
from tests.cloud.thresholds.conftest import add_threshold
from tests.cloud.webhooks.receiver import Receiver

KINDS = [EventType.USAGE_THRESHOLD_REACHED, EventType.INVOICE_DRAFTED, EventType.INVOICE_FINALIZED]


async def test_threshold_and_invoice_events_are_delivered_signed(billing: Billing) -> None:
    await billing.account("home-1")
    await billing.device("meter-1", "meter", "home-1")
    kwh = await add_threshold(billing, "home-1", "kwh", Measure.UNITS, "10")
    async with Receiver() as receiver:
        async with billing.db.transaction(write=True) as session:
            made = await create_endpoint(session=session, url=receiver.url, event_types=KINDS)
        receiver.secret = made.secret

        await billing.send(reading("meter-1", utc(2026, 11, 3), "12"))
        assert (await check_thresholds(billing.db, utc(2026, 11, 4))).fired == [kwh]
        await billing.run("2026-11")
        invoice = await billing.invoice("home-1", "2026-11")
        assert invoice is not None
        await finalize_invoice(
            db=billing.db, invoice_id=invoice.id, now=utc(2026, 12, 2), force=True
        )
        report = await deliver_due(billing.db, datetime.now(UTC))

    assert (report.sent, report.succeeded, report.failed) == (3, 3, 0)
    assert receiver.refused == []
    assert len(set(receiver.ids())) == 3
    bodies = {item.body["type"]: item.body["data"] for item in receiver.received}
    assert bodies["usage.threshold_reached"]["threshold_id"] == kwh
    assert bodies["usage.threshold_reached"]["observed"] == "12"
    # 10 x 0.20 + 2 x 0.10 = 2.20 of usage, base 10.00: 12.20
    assert bodies["invoice.drafted"]["total"] == "12.20"
    assert bodies["invoice.finalized"]["number"] == "INV-000001"
