"""Credit notes through the real API, CLI and database (SQLite and PostgreSQL).

Account "home-a" (plan home: base 10.00, stream_hours 0.50/h, kwh 0.20 up to 10 kWh) with 3 kWh
in October: line 1 base fee 10.00, line 2 stream_hours 0.00, line 3 kwh 3 x 0.20 = 0.60.
"""

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from cloud.catalog.accounts import set_account_plan
from cloud.catalog.plans import create_plan, create_plan_version
from cloud.cli import main
from cloud.db import Database
from cloud.errors import LineAlreadyCredited
from cloud.invoices.credit_note_models import CreditNote, CreditNoteLine, CreditNoteSeries
from cloud.invoices.credit_notes import issue_credit_note
from cloud.invoices.finalization import finalize_due, finalize_invoice
from cloud.invoices.models import Invoice, InvoiceLine
from cloud.schema import migrate
from cloud.webhooks.endpoints import create_endpoint
from cloud.webhooks.models import WebhookMessage
from cloud.webhooks.types import EventType
from tests.cloud.invoices.test_invoice_api import admin_headers, metered_account
from tests.cloud.invoices.test_runs import Billing, billing, outcome, reading, terms, utc

__all__ = ["billing"]
D = Decimal


async def finalized(billing: Billing, account_id: str = "home-a") -> int:
    """The account's October invoice, drafted and finalized (forced: it is in its grace)."""
    await metered_account(billing, account_id)
    await billing.run("2026-10", account_id)
    invoice = await billing.invoice(account_id, "2026-10")
    assert invoice is not None
    await finalize_invoice(db=billing.db, invoice_id=invoice.id, now=datetime.now(UTC), force=True)
    return invoice.id


async def stored(db: Database) -> tuple[int, int, list[Any]]:
    """(credit notes, credit-note lines, series rows): to show that a refusal wrote nothing."""
    async with db.transaction() as session:
        notes = await session.scalar(select(func.count()).select_from(CreditNote))
        lines = await session.scalar(select(func.count()).select_from(CreditNoteLine))
        series = (
            await session.execute(select(CreditNoteSeries.series, CreditNoteSeries.next_number))
        ).all()
    return notes or 0, lines or 0, sorted(series)


async def subscribe_issued(db: Database) -> None:
    """An enabled endpoint for `credit_note.issued`, so that issuing writes its message."""
    async with db.transaction(write=True) as session:
        await create_endpoint(
            session=session,
            url="http://127.0.0.1:9/hook",
            event_types=[EventType.CREDIT_NOTE_ISSUED],
            now=datetime.now(UTC),
        )


async def issued_events(db: Database) -> list[dict[str, Any]]:
    """The data of every `credit_note.issued` webhook message."""
    async with db.transaction() as session:
        rows = await session.scalars(
            select(WebhookMessage).where(WebhookMessage.event_type == "credit_note.issued")
        )
        return [row.payload for row in rows]


async def test_a_whole_credit_credits_every_line_with_an_amount(
    client: httpx.AsyncClient, billing: Billing
) -> None:
    headers = await admin_headers(billing)
    invoice_id = await finalized(billing)
    await subscribe_issued(billing.db)

    response = await client.post(
        f"/v1/invoices/{invoice_id}/credit-notes",
        json={"lines": None, "reason": "meter fault"},
        headers=headers,
    )

    assert response.status_code == 201, response.text
    note = response.json()
    assert note["number"] == "INV-CN-000001"
    assert (note["invoice_number"], note["whole"], note["reason"]) == (
        "INV-000001",
        True,
        "meter fault",
    )
    # lines 1 (10.00) and 3 (0.60); line 2 is 0.00 and not credited: net 10.60, positive
    assert [(line["credits_line"], line["amount"]) for line in note["lines"]] == [
        (1, "10.00"),
        (3, "0.60"),
    ]
    assert note["net"] == "10.60"
    assert note["lines"][1]["evidence"] == f"/v1/invoices/{invoice_id}/lines/3/evidence"
    shown = await client.get(f"/v1/invoices/{invoice_id}", headers=headers)
    assert shown.json()["credited"] == ["INV-CN-000001"]
    again = await client.get(f"/v1/credit-notes/{note['id']}", headers=headers)
    assert again.json() == note
    [event] = await issued_events(billing.db)
    assert (event["number"], event["invoice_id"], event["lines"], event["net"]) == (
        "INV-CN-000001",
        invoice_id,
        [1, 3],
        "10.60",
    )
    # the credited invoice's evidence still answers, and the credited invoice is unchanged
    evidence = await client.get(f"/v1/invoices/{invoice_id}/lines/3/evidence", headers=headers)
    assert evidence.status_code == 200


async def test_by_line_then_the_same_line_again_is_refused_and_writes_nothing(
    client: httpx.AsyncClient, billing: Billing
) -> None:
    headers = await admin_headers(billing)
    invoice_id = await finalized(billing)
    url = f"/v1/invoices/{invoice_id}/credit-notes"

    first = await client.post(url, json={"lines": [3], "reason": "double reading"}, headers=headers)
    before = await stored(billing.db)
    twice = await client.post(url, json={"lines": [1, 3], "reason": "again"}, headers=headers)
    whole = await client.post(url, json={"lines": None, "reason": "the rest"}, headers=headers)

    assert first.status_code == 201
    assert (first.json()["net"], first.json()["whole"]) == ("0.60", False)
    assert twice.status_code == 409
    error = twice.json()["error"]
    assert error["code"] == "line_already_credited"
    assert error["detail"]["lines"] == [3]
    assert error["detail"]["credit_notes"] == {"3": "INV-CN-000001"}
    # the whole-invoice credit takes what is left: line 1 (10.00), numbered next
    assert whole.status_code == 201
    assert ([line["credits_line"] for line in whole.json()["lines"]], whole.json()["number"]) == (
        [1],
        "INV-CN-000002",
    )
    assert before == (1, 1, [("INV-CN", 2)])
    everything = await client.post(url, json={"reason": "and again"}, headers=headers)
    assert everything.status_code == 409
    assert await stored(billing.db) == (2, 2, [("INV-CN", 3)])


@pytest.mark.parametrize(
    ("body", "status", "code", "detail"),
    [
        ({"lines": [7], "reason": "x"}, 422, "invalid_credit", {"unknown_lines": [7]}),
        ({"lines": [2], "reason": "x"}, 422, "invalid_credit", {"zero_lines": [2]}),
        ({"lines": [1, 1], "reason": "x"}, 422, "invalid_credit", {"repeated": [1]}),
        ({"lines": [1], "reason": "   "}, 422, "invalid_credit", {}),
        ({"lines": [], "reason": "x"}, 422, "invalid_parameters", {}),
        ({"lines": [1], "reason": "x" * 501}, 422, None, {}),
        ({"lines": [1]}, 422, None, {}),
        ({"lines": [0], "reason": "x"}, 422, None, {}),
    ],
)
async def test_bad_credits_are_refused_with_what_is_wrong_and_write_nothing(
    client: httpx.AsyncClient,
    billing: Billing,
    body: dict[str, Any],
    status: int,
    code: str | None,
    detail: dict[str, Any],
) -> None:
    headers = await admin_headers(billing)
    invoice_id = await finalized(billing)

    response = await client.post(
        f"/v1/invoices/{invoice_id}/credit-notes", json=body, headers=headers
    )

    assert response.status_code == status, response.text
    error = response.json()["error"]
    if code is not None:
        assert error["code"] == code
    for key, value in detail.items():
        assert error["detail"][key] == value
    if "unknown_lines" in detail:
        assert "no line 7" in error["message"]
    assert await stored(billing.db) == (0, 0, [])


async def test_a_draft_or_an_unknown_invoice_cannot_be_credited(
    client: httpx.AsyncClient, billing: Billing
) -> None:
    headers = await admin_headers(billing)
    await metered_account(billing)
    await billing.run("2026-10")
    draft = await billing.invoice("home-a", "2026-10")
    assert draft is not None

    refused = await client.post(
        f"/v1/invoices/{draft.id}/credit-notes", json={"reason": "x"}, headers=headers
    )
    unknown = await client.post(
        "/v1/invoices/999999/credit-notes", json={"reason": "x"}, headers=headers
    )

    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "invoice_not_finalized"
    assert unknown.status_code == 404
    assert await stored(billing.db) == (0, 0, [])


async def test_concurrent_credits_of_one_line_one_wins(billing: Billing) -> None:
    invoice_id = await finalized(billing)
    now = datetime.now(UTC)

    results = await asyncio.gather(
        *(
            issue_credit_note(db=billing.db, invoice_id=invoice_id, lines=[3], reason="r", now=now)
            for _ in range(4)
        ),
        return_exceptions=True,
    )

    assert sum(1 for r in results if isinstance(r, LineAlreadyCredited)) == 3
    assert await stored(billing.db) == (1, 1, [("INV-CN", 2)])


async def test_concurrent_credits_of_different_invoices_number_gap_free(billing: Billing) -> None:
    ids = [await finalized(billing, f"acct-{i}") for i in range(6)]
    now = datetime.now(UTC)

    notes = await asyncio.gather(
        *(
            issue_credit_note(db=billing.db, invoice_id=i, lines=None, reason="r", now=now)
            for i in ids
        )
    )

    assert sorted(n.printed_number for n in notes) == [f"INV-CN-{k:06d}" for k in range(1, 7)]


async def two_rates(billing: Billing) -> int:
    """home-a's October invoice with line 1 (base 10.00) at S 19% and line 3 (kwh 0.60) at S 7%,
    set on the draft before it is finalized."""
    await metered_account(billing)
    await billing.run("2026-10")
    invoice = await billing.invoice("home-a", "2026-10")
    assert invoice is not None
    async with billing.db.transaction(write=True) as session:
        for n, rate in ((1, D("19")), (2, D("19")), (3, D("7"))):
            await session.execute(
                update(InvoiceLine)
                .where(InvoiceLine.invoice_id == invoice.id, InvoiceLine.n == n)
                .values(tax_category="S", tax_rate=rate)
            )
    await finalize_invoice(db=billing.db, invoice_id=invoice.id, now=datetime.now(UTC), force=True)
    return invoice.id


async def test_totals_with_two_vat_rates_by_hand_and_the_json_and_html_exports(
    client: httpx.AsyncClient, billing: Billing
) -> None:
    headers = await admin_headers(billing)
    invoice_id = await two_rates(billing)
    created = await client.post(
        f"/v1/invoices/{invoice_id}/credit-notes", json={"reason": "goodwill"}, headers=headers
    )
    note = created.json()

    # S 19: taxable 10.00, tax 1.90; S 7: taxable 0.60, tax 0.042 -> 0.04; net 10.60,
    # tax 1.94, gross 12.54
    assert (note["net"], note["tax"], note["gross"]) == ("10.60", "1.94", "12.54")
    assert [(line["tax_category"], line["tax_rate"]) for line in note["lines"]] == [
        ("S", "19"),
        ("S", "7"),
    ]
    exported = await client.get(
        f"/v1/credit-notes/{note['id']}/export?format=json", headers=headers
    )
    assert exported.headers["content-type"].startswith("application/json")
    document = exported.json()
    assert (document["document_type"], document["type_code"]) == ("credit_note", "381")
    assert document["printed_number"] == "INV-CN-000001"
    assert document["references"] == [
        {
            "invoice_id": invoice_id,
            "printed_number": "INV-000001",
            "issue_date": document["references"][0]["issue_date"],
            "line": None,
        }
    ]
    assert document["tax"] == [
        {
            "category": "S",
            "rate": "19",
            "taxable": "10.00",
            "tax": "1.90",
            "exemption_reason": None,
        },
        {"category": "S", "rate": "7", "taxable": "0.60", "tax": "0.04", "exemption_reason": None},
    ]
    assert document["totals"] == {"net": "10.60", "tax": "1.94", "gross": "12.54", "due": "12.54"}
    assert [(line["n"], line["credits_line"], line["amount"]) for line in document["lines"]] == [
        (1, 1, "10.00"),
        (2, 3, "0.60"),
    ]
    page = await client.get(f"/v1/credit-notes/{note['id']}/export?format=html", headers=headers)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "INV-CN-000001" in page.text and "INV-000001" in page.text
    bad = await client.get(f"/v1/credit-notes/{note['id']}/export?format=csv", headers=headers)
    assert bad.status_code == 422
    missing = await client.get("/v1/credit-notes/999999/export", headers=headers)
    assert missing.status_code == 404


async def test_the_list_filters_and_pages_newest_first(
    client: httpx.AsyncClient, billing: Billing
) -> None:
    headers = await admin_headers(billing)
    a = await finalized(billing, "acct-a")
    b = await finalized(billing, "acct-b")
    for invoice_id, line in ((a, 1), (b, 1), (a, 3)):
        created = await client.post(
            f"/v1/invoices/{invoice_id}/credit-notes",
            json={"lines": [line], "reason": "r"},
            headers=headers,
        )
        assert created.status_code == 201

    first = (await client.get("/v1/credit-notes?limit=2", headers=headers)).json()
    rest = (
        await client.get(f"/v1/credit-notes?limit=2&cursor={first['next_cursor']}", headers=headers)
    ).json()
    of_a = (await client.get("/v1/credit-notes?account=acct-a", headers=headers)).json()
    of_b = (await client.get(f"/v1/credit-notes?invoice={b}", headers=headers)).json()
    bad = await client.get("/v1/credit-notes?cursor=abc", headers=headers)

    assert [n["number"] for n in first["credit_notes"]] == ["INV-CN-000003", "INV-CN-000002"]
    assert ([n["number"] for n in rest["credit_notes"]], rest["next_cursor"]) == (
        ["INV-CN-000001"],
        None,
    )
    assert [n["number"] for n in of_a["credit_notes"]] == ["INV-CN-000003", "INV-CN-000001"]
    assert [n["number"] for n in of_b["credit_notes"]] == ["INV-CN-000002"]
    assert bad.status_code == 422


async def test_a_credited_line_is_not_corrected_again_by_an_adjustment(billing: Billing) -> None:
    # September: 8 kWh, kwh line 3 = 1.60, finalized and credited; line 1 (base) not credited
    await billing.account("late")
    await billing.device("meter-l", "meter", "late")
    await billing.send(reading("meter-l", utc(2026, 9, 10), "8"))
    await billing.run("2026-09")
    september = await billing.invoice("late", "2026-09")
    assert september is not None
    await finalize_invoice(
        db=billing.db, invoice_id=september.id, now=datetime.now(UTC), force=True
    )
    await issue_credit_note(
        db=billing.db,
        invoice_id=september.id,
        lines=[3],
        reason="meter fault",
        now=datetime.now(UTC),
    )
    await billing.send(reading("meter-l", utc(2026, 9, 20), "4"))  # late: would be +0.60

    report = await billing.run("2026-10")

    # without the credit, October would carry a kwh adjustment of +0.60 (test_adjustments)
    assert report.accounts[0].adjustments == 0
    assert await billing.amounts("late", "2026-10") == [
        ("base_fee", None, D("10.00")),
        ("usage", "stream_hours", D("0.00")),
        ("usage", "kwh", D("0.00")),
    ]


async def _seed_finalized(url: str) -> int:
    async with Database(url) as db:
        await migrate(db.engine)
        return await finalized(await Billing(db).setup())


def test_the_cli_credits_lists_shows_and_exports(
    db_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    invoice_id = asyncio.run(_seed_finalized(db_url))

    main(
        [
            "invoice",
            "credit",
            str(invoice_id),
            "--line",
            "3",
            "--reason",
            "meter fault",
            "--db",
            db_url,
        ]
    )
    credited = capsys.readouterr().out
    main(["credit-note", "list", "--db", db_url])
    listed = capsys.readouterr().out
    main(["credit-note", "show", "1", "--db", db_url])
    shown = capsys.readouterr().out
    out = tmp_path / "cn.html"
    main(["credit-note", "export", "1", "--format", "html", "--out", str(out), "--db", db_url])
    main(["invoice", "show", str(invoice_id), "--db", db_url])
    invoice = capsys.readouterr().out
    status = main(
        ["invoice", "credit", str(invoice_id), "--line", "3", "--reason", "x", "--db", db_url]
    )
    refused = capsys.readouterr()

    assert credited.startswith(
        f"credit note 1 INV-CN-000001: invoice {invoice_id} (INV-000001), lines 3"
    )
    assert "credits line 3" in credited and "0.60 EUR" in credited
    assert "INV-CN-000001  home-a  invoice INV-000001" in listed
    assert shown == credited
    assert "INV-CN-000001" in out.read_text()
    assert "credited: INV-CN-000001" in invoice
    assert status != 0
    assert "already credited (line 3 by INV-CN-000001)" in refused.err


# --- no zero invoices, finalizing early needs force ------------------------------------------


async def test_no_plan_version_in_force_and_no_usage_gets_no_draft(
    client: httpx.AsyncClient, billing: Billing
) -> None:
    headers = await admin_headers(billing)
    # plan "later": its only version starts in 2027, so nothing is in force in October 2026
    async with billing.db.transaction(write=True) as session:
        await create_plan(session=session, plan_id="later", name="later", currency="EUR")
        await create_plan_version(
            session=session,
            plan_id="later",
            terms=terms({"effective_from": "2027-01-01T00:00:00+00:00", "base_fee": "5.00"}),
        )
    await billing.account("idle", plan="later")
    await metered_account(billing, "home-a")

    response = await client.post("/v1/invoice-runs", json={"period": "2026-10"}, headers=headers)

    body = response.json()
    assert (body["drafted"], body["nothing_to_bill"]) == (1, 1)
    outcomes = {a["account_id"]: (a["outcome"], a["invoice_id"]) for a in body["accounts"]}
    assert outcomes["idle"] == ("nothing_to_bill", None)
    assert await billing.invoice("idle", "2026-10") is None


async def test_a_plan_without_base_fee_and_no_usage_gets_no_draft_a_base_fee_does(
    billing: Billing,
) -> None:
    async with billing.db.transaction(write=True) as session:
        await create_plan(session=session, plan_id="metered", name="metered", currency="EUR")
        await create_plan_version(
            session=session,
            plan_id="metered",
            terms=terms(
                {
                    "effective_from": "2026-01-01T00:00:00+00:00",
                    "base_fee": "0",
                    "charges": [{"metric": "kwh", "model": "standard", "unit_price": "0.10"}],
                }
            ),
        )
    await billing.account("quiet", plan="metered")
    await billing.account("base-only")  # plan home: base 10.00, no usage

    report = await billing.run("2026-10")

    assert outcome(report, "quiet") == "nothing_to_bill"
    assert "1 drafted" in str(report) and "1 nothing to bill" in str(report)
    assert await billing.amounts("base-only", "2026-10") == [
        ("base_fee", None, D("10.00")),
        ("usage", "stream_hours", D("0.00")),
        ("usage", "kwh", D("0.00")),
    ]


async def test_a_rerun_deletes_an_earlier_zero_draft_and_a_draft_whose_plan_was_removed(
    billing: Billing,
) -> None:
    await metered_account(billing, "home-a")
    await billing.run("2026-10")
    drafted = await billing.invoice("home-a", "2026-10")
    assert drafted is not None
    # an earlier release drafted idle accounts at 0.00: such a draft, with no lines
    await billing.account("idle", plan=None)
    async with billing.db.transaction(write=True) as session:
        session.add(
            Invoice(
                account_id="idle",
                period="2026-10",
                period_start=utc(2026, 10, 1),
                period_end=utc(2026, 11, 1),
                currency="EUR",
                status="draft",
                series="INV",
                number=None,
                total=D("0"),
                computed_at=utc(2026, 11, 2),
                as_of=utc(2026, 11, 2),
                grace_until=utc(2026, 11, 6),
                finalized_at=None,
            )
        )
    # finalize_due never numbers it (belt and braces), even past its grace
    assert await finalize_due(db=billing.db, now=utc(2026, 11, 7)) == []
    async with billing.db.transaction(write=True) as session:
        await set_account_plan(session=session, account_id="home-a", plan_id=None)

    report = await billing.run("2026-10")

    assert outcome(report, "idle") == "skipped" and outcome(report, "home-a") == "skipped"
    assert await billing.invoice("idle", "2026-10") is None
    assert await billing.invoice("home-a", "2026-10") is None
    assert await billing.lines(drafted.id) == []


async def test_finalizing_in_the_grace_period_needs_force(
    client: httpx.AsyncClient, billing: Billing
) -> None:
    headers = await admin_headers(billing)
    await metered_account(billing)
    await billing.run("2026-10")
    draft = await billing.invoice("home-a", "2026-10")
    assert draft is not None
    before = await billing.snapshot(draft.id)

    refused = await client.post(f"/v1/invoices/{draft.id}/finalize", headers=headers)
    after_refusal = await billing.snapshot(draft.id)
    forced = await client.post(f"/v1/invoices/{draft.id}/finalize?force=true", headers=headers)

    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "grace_not_over"
    assert error["detail"]["grace_until"] == draft.grace_until.isoformat()
    assert "--force" in error["message"] and "adjustment lines" in error["message"]
    assert after_refusal == before
    assert forced.status_code == 200
    assert forced.json()["number"] == "INV-000001"


async def _seed_draft(url: str) -> int:
    async with Database(url) as db:
        await migrate(db.engine)
        billing = await Billing(db).setup()
        await metered_account(billing)
        await billing.run("2026-10")
        invoice = await billing.invoice("home-a", "2026-10")
        assert invoice is not None
        return invoice.id


def test_the_cli_finalizes_early_only_with_force(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    invoice_id = asyncio.run(_seed_draft(db_url))

    refused = main(["invoice", "finalize", "--id", str(invoice_id), "--db", db_url])
    said = capsys.readouterr()
    forced = main(["invoice", "finalize", "--id", str(invoice_id), "--force", "--db", db_url])

    assert refused != 0
    assert "in its grace period until" in said.err and "--force" in said.err
    assert forced == 0
    assert "finalized as INV-000001" in capsys.readouterr().out
