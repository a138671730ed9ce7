"""Late events after finalization: adjustment lines on the next invoice, on both backends.

Account "late" (UTC, plan home: base 10.00, stream_hours 0.50/h, kwh graduated 10 at 0.20 then
0.10), so its lines are 1 base fee, 2 stream_hours, 3 kwh.
"""

from datetime import UTC, datetime
from decimal import Decimal

from cloud.catalog.bindings import create_binding, device_bindings, end_binding
from cloud.domain import LineKind, RatedLine
from cloud.invoices.adjustments import Baseline, EarlierInvoice, correct, lookback_label
from cloud.invoices.finalization import finalize_invoice
from tests.cloud.invoices.test_runs import Billing, billing, reading, utc

__all__ = ["billing"]
D = Decimal


async def finalized_september(billing: Billing) -> int:
    """ "late" with 8 kWh in September, its September invoice finalized as INV-000001."""
    await billing.account("late")
    await billing.device("meter-l", "meter", "late")
    await billing.send(reading("meter-l", utc(2026, 9, 10), "8"))
    await billing.run("2026-09")
    september = await billing.invoice("late", "2026-09")
    assert september is not None
    # kwh 8 x 0.20 = 1.60; total 11.60
    assert september.total == D("11.60")
    await finalize_invoice(
        db=billing.db, invoice_id=september.id, now=datetime.now(UTC), force=True
    )
    return september.id


async def test_a_late_event_after_finalization_becomes_an_adjustment(billing: Billing) -> None:
    september_id = await finalized_september(billing)
    before = await billing.snapshot(september_id)
    await billing.send(reading("meter-l", utc(2026, 9, 20), "4"))  # late: September is final

    await billing.run("2026-09")  # changes nothing
    report = await billing.run("2026-10")

    assert await billing.snapshot(september_id) == before
    assert report.accounts[0].adjustments == 1
    october = await billing.invoice("late", "2026-10")
    assert october is not None
    lines = await billing.lines(october.id)
    # September kwh is now 12: 10 x 0.20 + 2 x 0.10 = 2.20, billed 1.60: +0.60
    adjustment = lines[3]
    assert (adjustment.n, adjustment.kind, adjustment.amount) == (4, "adjustment", D("0.60"))
    assert (adjustment.corrects_invoice_id, adjustment.corrects_line) == (september_id, 3)
    assert adjustment.description.startswith("Correction of INV-000001 line 3: ")
    assert (adjustment.metric, adjustment.quantity) == ("kwh", D("12"))
    assert adjustment.part_start == utc(2026, 9, 1)
    # its evidence is the new measurement: both September readings (seq 1 and 2)
    assert [(gw, seq) for *_, gw, seq in await billing.evidence(october.id, 4)] == [
        ("billing-gw", 1),
        ("billing-gw", 2),
    ]
    # October: base 10.00, no usage, + 0.60
    assert october.total == D("10.60")


async def test_rerunning_the_next_period_does_not_duplicate_adjustments(billing: Billing) -> None:
    await finalized_september(billing)
    await billing.send(reading("meter-l", utc(2026, 9, 20), "4"))
    await billing.run("2026-10")

    report = await billing.run("2026-10")

    assert report.accounts[0].outcome == "updated"
    assert [a for k, _, a in await billing.amounts("late", "2026-10") if k == "adjustment"] == [
        D("0.60")
    ]


async def test_corrections_already_finalized_are_counted_once(billing: Billing) -> None:
    september_id = await finalized_september(billing)
    await billing.send(reading("meter-l", utc(2026, 9, 20), "4"))
    await billing.run("2026-10")
    october = await billing.invoice("late", "2026-10")
    assert october is not None
    await finalize_invoice(db=billing.db, invoice_id=october.id, now=datetime.now(UTC), force=True)
    await billing.send(reading("meter-l", utc(2026, 9, 25), "1"))  # another late one

    await billing.run("2026-11")

    november = await billing.invoice("late", "2026-11")
    assert november is not None
    adjustments = [ln for ln in await billing.lines(november.id) if ln.kind == "adjustment"]
    # kwh 13 -> 2.30; billed 1.60 (INV-000001) + 0.60 (INV-000002 line 4) = 2.20: +0.10
    assert [(a.amount, a.corrects_invoice_id, a.corrects_line) for a in adjustments] == [
        (D("0.10"), september_id, 3)
    ]
    assert october.number is None  # the value read before finalizing
    refreshed = await billing.invoice("late", "2026-10")
    assert refreshed is not None and refreshed.number == 2


async def test_a_device_moved_away_after_finalization_is_credited(billing: Billing) -> None:
    september_id = await finalized_september(billing)
    await billing.account("other")
    # the meter really belonged to "other" from September 5th to 15th: "late"'s binding is
    # ended on the 5th and "other" gets [Sep 5, Sep 15), both after September was finalized
    async with billing.db.transaction(write=True) as session:
        (binding,) = await device_bindings(session=session, device_id="meter-l")
        await end_binding(session=session, binding_id=binding.id, valid_to=utc(2026, 9, 5))
        await create_binding(
            session=session,
            device_id="meter-l",
            account_id="other",
            valid_from=utc(2026, 9, 5),
            valid_to=utc(2026, 9, 15),
        )

    await billing.run("2026-10", account_id="late")

    october = await billing.invoice("late", "2026-10")
    assert october is not None
    adjustments = [ln for ln in await billing.lines(october.id) if ln.kind == "adjustment"]
    # the 8 kWh of Sep 10 are no longer "late"'s: kwh 0 -> 0.00, billed 1.60: -1.60 (a credit)
    assert [(a.amount, a.corrects_invoice_id, a.corrects_line) for a in adjustments] == [
        (D("-1.60"), september_id, 3)
    ]
    assert october.total == D("8.40")


async def test_a_binding_ended_after_finalization_is_credited(billing: Billing) -> None:
    september_id = await finalized_september(billing)
    # the meter was really returned on September 5th; only the binding's end changes (no new
    # binding, no new event), and the binding no longer overlaps the 8 kWh of September 10th
    async with billing.db.transaction(write=True) as session:
        (binding,) = await device_bindings(session=session, device_id="meter-l")
        await end_binding(session=session, binding_id=binding.id, valid_to=utc(2026, 9, 5))

    await billing.run("2026-10", account_id="late")

    october = await billing.invoice("late", "2026-10")
    assert october is not None
    adjustments = [ln for ln in await billing.lines(october.id) if ln.kind == "adjustment"]
    # kwh 8 -> 0: 0.00 against 1.60 billed, a credit of 1.60; the base fee is unchanged
    assert [(a.amount, a.corrects_invoice_id, a.corrects_line) for a in adjustments] == [
        (D("-1.60"), september_id, 3)
    ]


async def test_nothing_changed_means_no_adjustment(billing: Billing) -> None:
    await finalized_september(billing)

    report = await billing.run("2026-10")

    assert report.accounts[0].adjustments == 0
    assert [k for k, _, _ in await billing.amounts("late", "2026-10")] == [
        "base_fee",
        "usage",
        "usage",
    ]


def line(kind: LineKind, metric: str | None, amount: str, description: str = "") -> RatedLine:
    """A rated line of September 2026 (UTC), plan home v1."""
    return RatedLine(
        kind=kind,
        description=description or f"{kind} {metric}",
        amount=D(amount),
        part_start=utc(2026, 9, 1),
        part_end=utc(2026, 10, 1),
        plan_id="home",
        plan_version=1,
        metric=metric,
    )


def test_correct_compares_line_by_line() -> None:
    invoice = EarlierInvoice(1, "late", "2026-09", "INV-000001", "EUR", "home")
    start, end = utc(2026, 9, 1), utc(2026, 10, 1)
    baselines = {
        ("base_fee", None, "home", 1, start): Baseline(D("10.00"), 1, end),
        ("usage", "kwh", "home", 1, start): Baseline(D("1.60"), 2, end),
        ("minimum", None, "home", 1, start): Baseline(D("3.00"), 3, end),
    }
    rated = [
        line(LineKind.BASE_FEE, None, "10.00"),  # unchanged: no adjustment
        line(LineKind.USAGE, "kwh", "1.40", "kwh 7"),  # 0.20 less: a credit
        line(LineKind.USAGE, "stream_hours", "0.50", "stream"),  # a new line
    ]  # and the minimum line is gone: -3.00

    adjustments = correct(invoice=invoice, rated=rated, baselines=baselines)

    assert [(a.line.amount, a.corrects_line) for a in adjustments] == [
        (D("-0.20"), 2),
        (D("-3.00"), 3),
        (D("0.50"), None),
    ]
    assert (
        adjustments[0].line.description == "Correction of INV-000001 line 2: kwh 7 (1.60 -> 1.40)"
    )
    assert adjustments[1].line.description.startswith("Correction of INV-000001 line 3: no longer")
    assert all(a.corrects_invoice_id == 1 for a in adjustments)


def test_lookback_label() -> None:
    assert lookback_label("2026-11") == "2025-11"
    assert lookback_label("2026-01") == "2025-01"
    assert lookback_label("2027-12") == "2026-12"
