"""Invoice runs on SQLite and PostgreSQL: real ingest, real catalog, known totals by hand.

Plans used here (EUR unless said otherwise):

    home  v1 from 2026-01-01: base 10.00; stream_hours standard 0.50/h;
          kwh graduated (0, 10] at 0.20, above at 0.10
    biz   (USD) v1 from 2026-01-01: base 50.00; stream_hours standard 1.00/h; kwh standard 0.30
    shop  v1 from 2026-01-01: base 30.00, kwh standard 0.10;
          v2 from 2026-10-16T00:00Z: base 30.00, kwh standard 0.20

Runs use a real `now` (so that `received_at` of later ingests is after `computed_at`) and a long
grace period, so that no draft is finalized behind the test's back.
"""

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cloud.auth.service import create_api_key
from cloud.catalog.accounts import create_account
from cloud.catalog.bindings import create_binding
from cloud.catalog.devices import create_device, create_profile
from cloud.catalog.metrics import create_metric
from cloud.catalog.models import Account
from cloud.catalog.plan_terms import PlanTerms
from cloud.catalog.plans import create_plan, create_plan_version
from cloud.catalog.unbilled import unbilled_usage
from cloud.cli import main
from cloud.db import Database
from cloud.errors import AccountNotFound, InvalidBillingInput
from cloud.invoices.models import Invoice, InvoiceEvidence, InvoiceLine
from cloud.invoices.service import RunReport, run_invoices
from cloud.schema import migrate
from shared.events import EventDraft
from tests.support.usage import GatewayFeed, usage

# The tests bill past periods at the real `now` (ingest stamps received_at with the wall clock,
# which adjustments compare with computed_at): a century of grace keeps their drafts drafts.
GRACE = timedelta(days=36_500)
D = Decimal


def utc(*parts: int) -> datetime:
    """A UTC time."""
    return datetime(*parts, tzinfo=UTC)  # type: ignore[arg-type, misc]


def terms(document: dict[str, Any]) -> PlanTerms:
    """A validated plan version document."""
    return PlanTerms.model_validate(document)


HOME = terms(
    {
        "effective_from": "2026-01-01T00:00:00+00:00",
        "base_fee": "10.00",
        "charges": [
            {"metric": "stream_hours", "model": "standard", "unit_price": "0.50"},
            {
                "metric": "kwh",
                "model": "graduated",
                "tiers": [
                    {"up_to": "10", "unit_price": "0.20"},
                    {"up_to": None, "unit_price": "0.10"},
                ],
            },
        ],
    }
)
BIZ = terms(
    {
        "effective_from": "2026-01-01T00:00:00+00:00",
        "base_fee": "50.00",
        "charges": [
            {"metric": "stream_hours", "model": "standard", "unit_price": "1.00"},
            {"metric": "kwh", "model": "standard", "unit_price": "0.30"},
        ],
    }
)
SHOP_V1 = terms(
    {
        "effective_from": "2026-01-01T00:00:00+00:00",
        "base_fee": "30.00",
        "charges": [{"metric": "kwh", "model": "standard", "unit_price": "0.10"}],
    }
)
SHOP_V2 = terms(
    {
        "effective_from": "2026-10-16T00:00:00+00:00",
        "base_fee": "30.00",
        "charges": [{"metric": "kwh", "model": "standard", "unit_price": "0.20"}],
    }
)


BOUND_SINCE = datetime(2026, 1, 1, tzinfo=UTC)


class Billing:
    """The catalog of these tests, built through the catalog's own services."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.feed = GatewayFeed("billing-gw")

    async def setup(self) -> "Billing":
        """Profiles, metrics and the plans home, biz and shop; the gateway registered."""
        await self.feed.register(self.db)
        async with self.db.transaction(write=True) as session:
            await create_profile(
                session=session,
                profile_id="camera",
                name="Camera",
                start_on=["stream_start"],
                end_on=["stream_stop"],
            )
            await create_profile(session=session, profile_id="meter", name="Meter")
            await create_metric(
                session=session,
                metric_id="stream_hours",
                name="Streaming hours",
                source="sessions",
                aggregation="sum",
                field="duration",
                profiles=["camera"],
            )
            await create_metric(
                session=session,
                metric_id="kwh",
                name="Energy",
                source="events",
                aggregation="sum",
                field="quantity",
                profiles=["meter"],
                names=["reading"],
            )
            for plan_id, currency, versions in (
                ("home", "EUR", [HOME]),
                ("biz", "USD", [BIZ]),
                ("shop", "EUR", [SHOP_V1, SHOP_V2]),
            ):
                await create_plan(session=session, plan_id=plan_id, name=plan_id, currency=currency)
                for version in versions:
                    await create_plan_version(session=session, plan_id=plan_id, terms=version)
        return self

    async def account(
        self,
        account_id: str,
        *,
        plan: str | None = "home",
        time_zone: str = "UTC",
        currency: str = "EUR",
        series: str = "INV",
        kind: str = "household",
    ) -> None:
        """Create an account."""
        async with self.db.transaction(write=True) as session:
            await create_account(
                session=session,
                account_id=account_id,
                name=account_id,
                kind=kind,
                currency=currency,
                time_zone=time_zone,
                plan_id=plan,
                invoice_series=series,
            )

    async def device(
        self,
        device_id: str,
        profile: str,
        account_id: str | None,
        *,
        since: datetime = BOUND_SINCE,
    ) -> None:
        """Create a device, bound to `account_id` from `since` (None: unbound)."""
        async with self.db.transaction(write=True) as session:
            await create_device(
                session=session, device_id=device_id, name=device_id, profile_id=profile
            )
            if account_id is not None:
                await create_binding(
                    session=session, device_id=device_id, account_id=account_id, valid_from=since
                )

    async def send(self, *drafts: EventDraft) -> None:
        """Ingest events as one signed batch through the real ingest service."""
        await self.feed.send(self.db, list(drafts))

    async def run(self, period: str, account_id: str | None = None) -> RunReport:
        """Run a period now, with a long grace."""
        return await run_invoices(
            db=self.db, period=period, now=datetime.now(UTC), grace=GRACE, account_id=account_id
        )

    async def invoice(self, account_id: str, period: str) -> Invoice | None:
        """The account's invoice of the period."""
        async with self.db.transaction() as session:
            query = select(Invoice).where(
                Invoice.account_id == account_id, Invoice.period == period
            )
            return (await session.scalars(query)).one_or_none()

    async def lines(self, invoice_id: int) -> list[InvoiceLine]:
        """The invoice's lines in order."""
        async with self.db.transaction() as session:
            query = select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id)
            return list(await session.scalars(query.order_by(InvoiceLine.n)))

    async def amounts(self, account_id: str, period: str) -> list[tuple[str, str | None, Decimal]]:
        """(kind, metric, amount) of each line of the account's invoice of the period."""
        invoice = await self.invoice(account_id, period)
        assert invoice is not None
        return [(line.kind, line.metric, line.amount) for line in await self.lines(invoice.id)]

    async def evidence(self, invoice_id: int, line_n: int) -> list[tuple[Any, ...]]:
        """(session_id, piece_start, piece_end, gateway_id, seq) of a line's evidence."""
        async with self.db.transaction() as session:
            query = select(
                InvoiceEvidence.session_id,
                InvoiceEvidence.piece_start,
                InvoiceEvidence.piece_end,
                InvoiceEvidence.gateway_id,
                InvoiceEvidence.seq,
            ).where(InvoiceEvidence.invoice_id == invoice_id, InvoiceEvidence.line_n == line_n)
            return sorted((await session.execute(query)).all(), key=repr)

    async def snapshot(self, invoice_id: int) -> tuple[Sequence[Any], ...]:
        """Every stored column of an invoice, its lines and its evidence."""
        async with self.db.transaction() as session:
            header = (
                await session.execute(select(*Invoice.__table__.c).where(Invoice.id == invoice_id))
            ).all()
            lines = (
                await session.execute(
                    select(*InvoiceLine.__table__.c)
                    .where(InvoiceLine.invoice_id == invoice_id)
                    .order_by(InvoiceLine.n)
                )
            ).all()
            evidence = (
                await session.execute(
                    select(*InvoiceEvidence.__table__.c)
                    .where(InvoiceEvidence.invoice_id == invoice_id)
                    .order_by(InvoiceEvidence.id)
                )
            ).all()
        return (header, lines, evidence)


def reading(device: str, at: datetime, kwh: str) -> EventDraft:
    """A meter reading of `kwh`."""
    return usage(device, "reading", at, quantity=kwh, unit="kWh")


def stream(device: str, start: datetime, stop: datetime) -> list[EventDraft]:
    """A camera stream from `start` to `stop`."""
    return [usage(device, "stream_start", start), usage(device, "stream_stop", stop)]


def outcome(report: RunReport, account_id: str) -> str:
    """What the run did for one account."""
    return next(r.outcome for r in report.accounts if r.account_id == account_id)


@pytest.fixture
async def billing(db: Database) -> Billing:
    """The test catalog on a fresh database (both backends)."""
    return await Billing(db).setup()


async def household_and_company(billing: Billing) -> None:
    """home-1 (Europe/Berlin, EUR, plan home) and acme (America/New_York, USD, plan biz)."""
    await billing.account("home-1", time_zone="Europe/Berlin")
    await billing.device("cam-1", "camera", "home-1")
    await billing.device("meter-1", "meter", "home-1")
    await billing.account(
        "acme", plan="biz", time_zone="America/New_York", currency="USD", kind="company"
    )
    await billing.device("cam-2", "camera", "acme")
    await billing.device("meter-2", "meter", "acme")
    await billing.send(
        # home-1, Berlin: October 2026 is 2026-09-30T22:00Z .. 2026-10-31T23:00Z (CET from 25th)
        *stream("cam-1", utc(2026, 10, 10, 10), utc(2026, 10, 10, 13, 30)),  # 3.5 h
        *stream("cam-1", utc(2026, 10, 31, 21), utc(2026, 11, 1, 1)),  # 2 h Oct + 2 h Nov
        reading("meter-1", utc(2026, 10, 5, 12), "8"),
        reading("meter-1", utc(2026, 10, 31, 22, 30), "5"),  # 23:30 local Oct 31: October
        reading("meter-1", utc(2026, 10, 31, 23, 30), "100"),  # 00:30 local Nov 1: November
        # acme, New York: October is 2026-10-01T04:00Z .. 2026-11-01T04:00Z (EDT)
        reading("meter-2", utc(2026, 10, 1, 3, 59), "1000"),  # Sep 30 23:59 local: September
        *stream("cam-2", utc(2026, 10, 15, 12), utc(2026, 10, 15, 12, 45)),  # 0.75 h
        reading("meter-2", utc(2026, 11, 1, 3, 30), "2"),  # Oct 31 23:30 EDT: October
        reading("meter-2", utc(2026, 11, 1, 4, 30), "7"),  # Nov 1 00:30 EDT: November
        reading("meter-2", utc(2026, 12, 1, 4, 30), "3"),  # Nov 30 23:30 EST: November
        reading("meter-2", utc(2026, 12, 1, 5), "1000"),  # Dec 1 00:00 EST: December
    )


async def test_household_and_company_known_totals(billing: Billing) -> None:
    await household_and_company(billing)
    await billing.account("nobody", plan=None)

    report = await billing.run("2026-10")

    assert (report.drafted, report.updated, report.skipped, report.failed) == (2, 0, 1, 0)
    assert outcome(report, "nobody") == "skipped"
    # home-1: base 10.00; stream 3.5 h + 2 h (up to Berlin midnight) = 5.5 h x 0.50 = 2.75;
    # kwh 8 + 5 = 13: 10 x 0.20 + 3 x 0.10 = 2.30; total 15.05
    assert await billing.amounts("home-1", "2026-10") == [
        ("base_fee", None, D("10.00")),
        ("usage", "stream_hours", D("2.75")),
        ("usage", "kwh", D("2.30")),
    ]
    home = await billing.invoice("home-1", "2026-10")
    assert home is not None
    assert (home.total, home.currency, home.status, home.number) == (
        D("15.05"),
        "EUR",
        "draft",
        None,
    )
    assert home.period_start == utc(2026, 9, 30, 22)
    assert home.period_end == utc(2026, 10, 31, 23)
    assert home.grace_until == utc(2026, 10, 31, 23) + GRACE
    # acme: base 50.00; stream 0.75 h x 1.00 = 0.75; kwh 2 (not the September 1000) x 0.30 = 0.60
    assert await billing.amounts("acme", "2026-10") == [
        ("base_fee", None, D("50.00")),
        ("usage", "stream_hours", D("0.75")),
        ("usage", "kwh", D("0.60")),
    ]
    acme = await billing.invoice("acme", "2026-10")
    assert acme is not None
    assert (acme.total, acme.currency) == (D("51.35"), "USD")
    assert acme.period_start == utc(2026, 10, 1, 4)
    assert acme.period_end == utc(2026, 11, 1, 4)
    assert await billing.invoice("nobody", "2026-10") is None


async def test_next_month_gets_the_rest_of_the_boundary_session(billing: Billing) -> None:
    await household_and_company(billing)

    await billing.run("2026-11")

    # home-1 November: base 10.00; stream 23:00Z..01:00Z = 2 h x 0.50 = 1.00;
    # kwh 100: 10 x 0.20 + 90 x 0.10 = 11.00; total 22.00
    assert await billing.amounts("home-1", "2026-11") == [
        ("base_fee", None, D("10.00")),
        ("usage", "stream_hours", D("1.00")),
        ("usage", "kwh", D("11.00")),
    ]
    # acme November (2026-11-01T04:00Z .. 2026-12-01T05:00Z, EST from Nov 1):
    # kwh 7 + 3 = 10 x 0.30 = 3.00; no stream
    assert await billing.amounts("acme", "2026-11") == [
        ("base_fee", None, D("50.00")),
        ("usage", "stream_hours", D("0.00")),
        ("usage", "kwh", D("3.00")),
    ]
    acme = await billing.invoice("acme", "2026-11")
    assert acme is not None
    assert (acme.period_start, acme.period_end) == (utc(2026, 11, 1, 4), utc(2026, 12, 1, 5))


async def test_lines_link_to_their_sessions_and_events(billing: Billing) -> None:
    await household_and_company(billing)

    await billing.run("2026-10", account_id="home-1")

    home = await billing.invoice("home-1", "2026-10")
    assert home is not None
    stream_evidence = await billing.evidence(home.id, 2)
    assert [(start, end) for _, start, end, _, _ in stream_evidence] == sorted(
        [
            (utc(2026, 10, 10, 10), utc(2026, 10, 10, 13, 30)),
            (utc(2026, 10, 31, 21), utc(2026, 10, 31, 23)),  # clipped at the period end
        ],
        key=repr,
    )
    assert all(session_id is not None for session_id, *_ in stream_evidence)
    # kwh: the readings of seq 5 and 6 (seq 1-4 are the two streams' start/stop events)
    assert [(gw, seq) for _, _, _, gw, seq in await billing.evidence(home.id, 3)] == [
        ("billing-gw", 5),
        ("billing-gw", 6),
    ]
    assert await billing.evidence(home.id, 1) == []  # the base fee has no usage behind it


async def test_a_rerun_before_finalization_updates_the_draft_in_place(billing: Billing) -> None:
    await household_and_company(billing)
    first = await billing.run("2026-10", account_id="home-1")
    draft = await billing.invoice("home-1", "2026-10")
    assert draft is not None

    await billing.send(reading("meter-1", utc(2026, 10, 12), "2"))  # a late event
    second = await billing.run("2026-10", account_id="home-1")

    assert outcome(first, "home-1") == "drafted"
    assert outcome(second, "home-1") == "updated"
    updated = await billing.invoice("home-1", "2026-10")
    assert updated is not None
    assert updated.id == draft.id
    # kwh 15: 10 x 0.20 + 5 x 0.10 = 2.50; total 10.00 + 2.75 + 2.50 = 15.25
    assert updated.total == D("15.25")
    assert (await billing.amounts("home-1", "2026-10"))[2] == ("usage", "kwh", D("2.50"))
    assert len(await billing.evidence(updated.id, 3)) == 3  # old evidence replaced, not doubled


async def test_a_device_rebound_mid_month_bills_each_part_to_its_account(
    billing: Billing,
) -> None:
    await billing.account("flat-a")
    await billing.account("flat-b")
    await billing.device("meter-r", "meter", "flat-a", since=utc(2026, 9, 1))
    async with billing.db.transaction(write=True) as session:
        await create_binding(
            session=session,
            device_id="meter-r",
            account_id="flat-b",
            valid_from=utc(2026, 10, 16),
            move=True,
        )
    await billing.send(
        reading("meter-r", utc(2026, 10, 10), "4"),
        reading("meter-r", utc(2026, 10, 15, 23, 59), "1"),
        reading("meter-r", utc(2026, 10, 16), "6"),  # exactly at the move: flat-b
    )

    await billing.run("2026-10")

    # flat-a: kwh 5 x 0.20 = 1.00; flat-b: kwh 6 x 0.20 = 1.20 (each also pays its base 10.00)
    assert (await billing.amounts("flat-a", "2026-10"))[2] == ("usage", "kwh", D("1.00"))
    assert (await billing.amounts("flat-b", "2026-10"))[2] == ("usage", "kwh", D("1.20"))


async def test_a_plan_change_mid_period_rates_each_part_under_its_version(
    billing: Billing,
) -> None:
    await billing.account("shop", plan="shop")
    await billing.device("meter-s", "meter", "shop")
    await billing.send(
        reading("meter-s", utc(2026, 10, 10), "10"), reading("meter-s", utc(2026, 10, 20), "10")
    )

    await billing.run("2026-10")

    invoice = await billing.invoice("shop", "2026-10")
    assert invoice is not None
    lines = await billing.lines(invoice.id)
    # October (UTC) = 744 h; v1 for 360 h: base 30 x 360/744 = 14.516.. -> 14.52, kwh 10 x 0.10;
    # v2 for 384 h: 30 x 384/744 = 15.483.. -> 15.48, kwh 10 x 0.20; total 33.00
    assert [(ln.plan_version, ln.kind, ln.amount) for ln in lines] == [
        (1, "base_fee", D("14.52")),
        (1, "usage", D("1.00")),
        (2, "base_fee", D("15.48")),
        (2, "usage", D("2.00")),
    ]
    assert lines[2].part_start == utc(2026, 10, 16)
    assert invoice.total == D("33.00")


async def test_unbound_usage_is_not_invoiced_and_stays_listed(billing: Billing) -> None:
    await billing.account("home-2")
    await billing.device("meter-u", "meter", None)  # in the catalog, never bound
    await billing.device("meter-h", "meter", "home-2")
    await billing.send(
        reading("meter-u", utc(2026, 10, 3), "50"), reading("meter-h", utc(2026, 10, 3), "1")
    )

    await billing.run("2026-10")

    # home-2: only its own 1 kWh x 0.20
    assert (await billing.amounts("home-2", "2026-10"))[2] == ("usage", "kwh", D("0.20"))
    async with billing.db.transaction() as session:
        unbilled = await unbilled_usage(
            session=session, start=utc(2026, 10, 1), end=utc(2026, 11, 1)
        )
    assert [(u.device_id, u.event_count) for u in unbilled] == [("meter-u", 1)]


async def test_bad_runs_are_refused_and_write_nothing(billing: Billing) -> None:
    await billing.account("home-3")

    with pytest.raises(InvalidBillingInput):
        await billing.run("2026-13")
    with pytest.raises(AccountNotFound):
        await billing.run("2026-10", account_id="no-such-account")

    async with billing.db.transaction() as session:
        assert list(await session.scalars(select(Invoice))) == []


async def test_an_account_whose_plan_cannot_rate_is_reported_failed(billing: Billing) -> None:
    # a plan whose version is in another currency than the account cannot be rated
    await billing.account("home-4")
    await billing.account("home-5")
    async with billing.db.transaction(write=True) as session:
        account = await session.get_one(Account, "home-5")
        account.plan_id = "biz"  # USD plan on an EUR account, bypassing the catalog's check

    report = await billing.run("2026-10")

    assert outcome(report, "home-4") == "drafted"
    assert outcome(report, "home-5") == "failed"
    assert report.failed == 1
    assert await billing.invoice("home-5", "2026-10") is None


LARGEST_QUANTITY = "9" * 30  # the largest integer quantity the event contract admits
FLAT = terms(
    {
        "effective_from": "2026-01-01T00:00:00+00:00",
        "base_fee": "10.00",
        "charges": [{"metric": "kwh", "model": "standard", "unit_price": "0"}],
    }
)


async def three_accounts_the_middle_one_overflowing(billing: Billing) -> None:
    """acct-a (3 kWh), acct-b (10^30 - 1 kWh: about 10^29 EUR, beyond the 10^18 line bound)
    and acct-c (4 kWh), all on plan home; plan flat (kwh free) for the retry."""
    for account_id in ("acct-a", "acct-b", "acct-c"):
        await billing.account(account_id)
        await billing.device(f"meter-{account_id}", "meter", account_id)
    await billing.send(
        reading("meter-acct-a", utc(2026, 10, 3), "3"),
        reading("meter-acct-b", utc(2026, 10, 3), LARGEST_QUANTITY),
        reading("meter-acct-c", utc(2026, 10, 3), "4"),
    )
    async with billing.db.transaction(write=True) as session:
        await create_plan(session=session, plan_id="flat", name="flat", currency="EUR")
        await create_plan_version(session=session, plan_id="flat", terms=FLAT)


def assert_names_acct_b(code: str | None, message: str | None, detail: Any) -> None:
    """The failure of acct-b: our error code, a message naming account, plan and charge."""
    assert code == "rating_out_of_bounds"
    assert message is not None
    assert message.startswith("account 'acct-b', plan 'home' v1, charge 'kwh': the amount ")
    assert "beyond the bound of 1E+18 per line" in message
    assert (detail["account_id"], detail["plan"], detail["version"], detail["charge"]) == (
        "acct-b",
        "home",
        1,
        "kwh",
    )


async def test_an_amount_beyond_the_bound_fails_that_account_alone(billing: Billing) -> None:
    await three_accounts_the_middle_one_overflowing(billing)

    report = await billing.run("2026-10")

    assert [(r.account_id, r.outcome) for r in report.accounts] == [
        ("acct-a", "drafted"),
        ("acct-b", "failed"),
        ("acct-c", "drafted"),
    ]
    assert (report.drafted, report.failed) == (2, 1)
    [failure] = report.failures
    assert failure.account_id == "acct-b"
    assert_names_acct_b(failure.error_code, failure.error, failure.error_detail)
    assert "1 failed (acct-b)" in str(report)
    # base 10.00, no stream, kwh 3 x 0.20 (and 4 x 0.20)
    for account_id, kwh in (("acct-a", D("0.60")), ("acct-c", D("0.80"))):
        assert await billing.amounts(account_id, "2026-10") == [
            ("base_fee", None, D("10.00")),
            ("usage", "stream_hours", D("0.00")),
            ("usage", "kwh", kwh),
        ]
    assert await billing.invoice("acct-b", "2026-10") is None


async def test_a_later_run_retries_a_failed_account(billing: Billing) -> None:
    await three_accounts_the_middle_one_overflowing(billing)
    await billing.run("2026-10")

    again = await billing.run("2026-10")
    assert [r.outcome for r in again.accounts] == ["updated", "failed", "updated"]

    async with billing.db.transaction(write=True) as session:
        account = await session.get_one(Account, "acct-b")
        account.plan_id = "flat"  # kwh free: 10^30 - 1 kWh x 0 is within the bound
    fixed = await billing.run("2026-10")

    assert [r.outcome for r in fixed.accounts] == ["updated", "drafted", "updated"]
    assert fixed.failures == []
    assert await billing.amounts("acct-b", "2026-10") == [
        ("base_fee", None, D("10.00")),
        ("usage", "kwh", D("0.00")),
    ]


async def test_the_run_api_lists_the_failed_account(
    client: httpx.AsyncClient, billing: Billing
) -> None:
    await three_accounts_the_middle_one_overflowing(billing)
    async with billing.db.transaction(write=True) as session:
        issued = await create_api_key(session=session, name="test admin")

    response = await client.post(
        "/v1/invoice-runs",
        json={"period": "2026-10"},
        headers={"Authorization": f"Bearer {issued.secret}"},
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["drafted"], body["failed"]) == (2, 1)
    [failure] = body["failures"]
    assert failure["account_id"] == "acct-b"
    assert failure["invoice_id"] is None
    assert_names_acct_b(failure["code"], failure["message"], failure["detail"])
    by_account = {a["account_id"]: a for a in body["accounts"]}
    assert by_account["acct-b"]["outcome"] == "failed"
    assert by_account["acct-b"]["error_code"] == "rating_out_of_bounds"
    assert by_account["acct-a"]["total"] == "10.60"


async def _seed_three(url: str) -> None:
    async with Database(url) as db:
        await migrate(db.engine)
        await three_accounts_the_middle_one_overflowing(await Billing(db).setup())


def test_the_run_command_prints_the_failed_account(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_seed_three(db_url))

    status = main(["invoice", "run", "--period", "2026-10", "--grace", "36500d", "--db", db_url])

    out = capsys.readouterr().out
    assert status == 1  # finished, but an account was not invoiced: a scheduler must notice
    assert "acct-b   failed" in out and "rating_out_of_bounds" in out
    assert (
        "failed: acct-b: rating_out_of_bounds: account 'acct-b', plan 'home' v1, charge 'kwh':"
        in out
    )
    assert "2 drafted, 0 updated" in out and "1 failed (acct-b)" in out
