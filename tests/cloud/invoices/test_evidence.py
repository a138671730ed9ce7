"""GET /v1/invoices/{id}/lines/{n}/evidence: exactly the billed items, their batches and keys.

The scenario (`billed_invoice`, reused by the verify and export tests): account `acme`
(Europe/Berlin, EUR) on plan `basic` v1: base fee 10.00, `stream_hours` (sum of camera session
hours) standard 0.50/h with 1 h included, `water` (sum of litres) graduated 0.01/l up to 100 l,
then 0.02/l. November 2026 usage, sent by one gateway in two signed batches:

    batch 1: cam-1 stream_start 11-03 10:00Z, stream_stop 12:30Z   -> session of 2.5 h
             meter-1 water 60 l 11-05 08:00Z
             stray-1 water 999 l (device bound to nobody: in the batch, never billed)
    batch 2: meter-1 water 70 l 11-06 08:00Z
             cam-1 stream_start 11-10 20:00Z, stream_stop 21:00Z   -> session of 1 h

    base fee  10.00                                                       (whole month)
    stream    3.5 h, 2.5 billable x 0.50                        = 1.25
    water     130 l: 100 x 0.01 + 30 x 0.02 = 1.00 + 0.60           = 1.60
    total                                                          12.85
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from fastapi import FastAPI

from cloud.auth.service import create_api_key
from cloud.catalog.accounts import create_account
from cloud.catalog.bindings import create_binding
from cloud.catalog.devices import create_device, create_profile
from cloud.catalog.metrics import create_metric
from cloud.catalog.plan_terms import PlanTerms
from cloud.catalog.plans import create_plan, create_plan_version
from cloud.db import Database
from cloud.invoices.service import run_invoices
from shared.events import EventKind, UsageEvent
from shared.signing import batch_header, public_key_pem, verify
from tests.cloud.conftest import error_code
from tests.support.usage import GatewayFeed, usage

GATEWAY = "gw-billing"
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
GRACE = timedelta(days=5)
ACCOUNT_NAME = "Acme <script>alert('x')</script> & Söhne"


def at(text: str) -> datetime:
    """A UTC instant from `MM-DD HH:MM` in 2026."""
    return datetime.strptime(f"2026-{text}", "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


@dataclass
class Billed:
    """The scenario's invoice, the key to read it and the gateway that sent its usage."""

    invoice_id: int
    api_key: str
    feed: GatewayFeed
    batches: list[list[UsageEvent]]

    @property
    def headers(self) -> dict[str, str]:
        """The admin key as a bearer header."""
        return {"Authorization": f"Bearer {self.api_key}"}


async def set_up_catalog(db: Database) -> str:
    """Profiles, devices, the account, its bindings, metrics and plan; the admin API key."""
    async with db.transaction(write=True) as session:
        await create_profile(
            session=session,
            profile_id="camera",
            name="Camera",
            start_on=["stream_start"],
            end_on=["stream_stop"],
        )
        await create_profile(session=session, profile_id="meter", name="Water meter")
        await create_device(session=session, device_id="cam-1", name="Cam", profile_id="camera")
        await create_device(session=session, device_id="meter-1", name="Tap", profile_id="meter")
        await create_device(session=session, device_id="stray-1", name="Lost", profile_id="meter")
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
            metric_id="water",
            name="Water",
            source="events",
            aggregation="sum",
            field="quantity",
            names=["water"],
            unit="l",
        )
        await create_plan(session=session, plan_id="basic", name="Basic", currency="EUR")
        await create_plan_version(session=session, plan_id="basic", terms=plan_terms())
        await create_account(
            session=session,
            account_id="acme",
            name=ACCOUNT_NAME,
            kind="household",
            currency="EUR",
            time_zone="Europe/Berlin",
            plan_id="basic",
        )
        for device in ("cam-1", "meter-1"):
            await create_binding(
                session=session, device_id=device, account_id="acme", valid_from=at("10-01 00:00")
            )
        issued = await create_api_key(session=session, name="billing-tests")
    return issued.secret


def plan_terms() -> PlanTerms:
    """Plan `basic` v1 (see the module docstring)."""
    return PlanTerms.model_validate(
        {
            "effective_from": "2026-10-01T00:00:00+02:00",
            "base_fee": "10.00",
            "charges": [
                {
                    "metric": "stream_hours",
                    "model": "standard",
                    "unit_price": "0.50",
                    "included_units": "1",
                },
                {
                    "metric": "water",
                    "model": "graduated",
                    "tiers": [
                        {"up_to": "100", "unit_price": "0.01"},
                        {"up_to": None, "unit_price": "0.02"},
                    ],
                },
            ],
        }
    )


async def send_usage(db: Database) -> tuple[GatewayFeed, list[list[UsageEvent]]]:
    """The two signed batches of the scenario."""
    feed = await GatewayFeed(GATEWAY).register(db)
    first = await feed.send(
        db,
        [
            usage("cam-1", "stream_start", at("11-03 10:00"), kind=EventKind.ACTIVATION),
            usage("cam-1", "stream_stop", at("11-03 12:30"), kind=EventKind.DEACTIVATION),
            usage("meter-1", "water", at("11-05 08:00"), kind=EventKind.MEASUREMENT,
                  quantity="60", unit="l"),
            usage("stray-1", "water", at("11-05 09:00"), kind=EventKind.MEASUREMENT,
                  quantity="999", unit="l"),
        ],
    )  # fmt: skip
    second = await feed.send(
        db,
        [
            usage("meter-1", "water", at("11-06 08:00"), kind=EventKind.MEASUREMENT,
                  quantity="70", unit="l"),
            usage("cam-1", "stream_start", at("11-10 20:00"), kind=EventKind.ACTIVATION),
            usage("cam-1", "stream_stop", at("11-10 21:00"), kind=EventKind.DEACTIVATION),
        ],
    )  # fmt: skip
    return feed, [first, second]


async def billed_invoice(db: Database, *, now: datetime = NOW) -> Billed:
    """The scenario's November draft invoice, through the real catalog, ingest and invoice run."""
    secret = await set_up_catalog(db)
    feed, batches = await send_usage(db)
    report = await run_invoices(db=db, period="2026-11", now=now, grace=GRACE, account_id="acme")
    (result,) = report.accounts
    assert result.outcome == "drafted" and result.invoice_id is not None, report
    return Billed(invoice_id=result.invoice_id, api_key=secret, feed=feed, batches=batches)


async def fetch_documents(
    client: httpx.AsyncClient, billed: Billed
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The invoice's JSON export and every line's evidence, over HTTP."""
    invoice_url = f"/v1/invoices/{billed.invoice_id}"
    response = await client.get(f"{invoice_url}/export?format=json", headers=billed.headers)
    assert response.status_code == 200, response.text
    invoice: dict[str, Any] = response.json()
    evidence = []
    for line in invoice["lines"]:
        answer = await client.get(
            f"{invoice_url}/lines/{line['n']}/evidence", headers=billed.headers
        )
        assert answer.status_code == 200, answer.text
        evidence.append(answer.json())
    return invoice, evidence


def line_of(invoice: dict[str, Any], kind: str, metric: str | None = None) -> dict[str, Any]:
    """The one line of that kind (and metric)."""
    (line,) = [x for x in invoice["lines"] if x["kind"] == kind and x["metric"] == metric]
    return line


def keys(events: list[UsageEvent]) -> list[list[Any]]:
    """Event keys as the evidence lists them."""
    return [[event.gateway_id, event.seq] for event in events]


async def test_session_line_evidence_holds_its_sessions_events_and_signed_batches(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    billed = await billed_invoice(db)
    invoice, evidence = await fetch_documents(client, billed)
    assert Decimal(invoice["total"]) == Decimal("12.85")
    line = line_of(invoice, "usage", "stream_hours")
    assert (Decimal(line["quantity"]), Decimal(line["amount"])) == (Decimal("3.5"), Decimal("1.25"))
    document = evidence[line["n"] - 1]

    assert document["line"] == line
    assert document["invoice"]["id"] == billed.invoice_id
    assert document["time_zone"] == "Europe/Berlin"
    assert document["metric"]["id"] == "stream_hours"
    assert document["plan_version"]["plan_id"] == "basic"
    assert document["plan_version"]["version"] == 1
    assert document["device_profiles"] == {"cam-1": "camera"}
    first, second = billed.batches
    sessions = document["sessions"]
    assert [(s["started_at"], s["piece_end"], s["close_reason"]) for s in sessions] == [
        ("2026-11-03T10:00:00+00:00", "2026-11-03T12:30:00+00:00", "deactivated"),
        ("2026-11-10T20:00:00+00:00", "2026-11-10T21:00:00+00:00", "deactivated"),
    ]
    assert [s["events"] for s in sessions] == [keys(first[0:2]), keys(second[1:3])]
    # Billed events: exactly the four session events, in wire form; no line events of its own.
    assert document["line_events"] == []
    assert document["events"] == [e.to_wire() for e in [*first[0:2], *second[1:3]]]
    assert_batches(document, billed)


async def test_event_line_evidence_holds_exactly_the_billed_events(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    billed = await billed_invoice(db)
    invoice, evidence = await fetch_documents(client, billed)
    line = line_of(invoice, "usage", "water")
    assert (Decimal(line["quantity"]), Decimal(line["amount"])) == (Decimal(130), Decimal("1.60"))
    document = evidence[line["n"] - 1]

    first, second = billed.batches
    billed_events = [first[2], second[0]]  # the stray device's 999 l is not billed
    assert document["sessions"] == []
    assert document["line_events"] == keys(billed_events)
    assert document["events"] == [event.to_wire() for event in billed_events]
    assert document["device_profiles"] == {"meter-1": "meter"}
    assert_batches(document, billed)


async def test_base_fee_line_has_no_usage_evidence(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    billed = await billed_invoice(db)
    invoice, evidence = await fetch_documents(client, billed)
    line = line_of(invoice, "base_fee")
    document = evidence[line["n"] - 1]
    assert Decimal(line["amount"]) == Decimal("10.00")
    assert (document["sessions"], document["events"], document["batches"]) == ([], [], [])
    assert document["plan_version"]["terms"]["base_fee"] == "10.00"


def assert_batches(document: dict[str, Any], billed: Billed) -> None:
    """Both batches, each whole (stray event included), with the signature and the gateway key."""
    batches = document["batches"]
    assert [[e["seq"] for e in b["events"]] for b in batches] == [[1, 2, 3, 4], [5, 6, 7]]
    pem = public_key_pem(billed.feed.key.public_key())
    for batch, sent in zip(batches, billed.batches, strict=True):
        assert batch["events"] == [event.to_wire() for event in sent]
        assert (batch["first_seq"], batch["last_seq"]) == (sent[0].seq, sent[-1].seq)
        assert (batch["prev_hash"], batch["last_hash"]) == (sent[0].prev_hash, sent[-1].hash)
        assert batch["public_key_pem"] == pem
        header = batch_header(
            gateway_id=GATEWAY,
            first_seq=batch["first_seq"],
            last_seq=batch["last_seq"],
            prev_hash=batch["prev_hash"],
            last_hash=batch["last_hash"],
        )
        verify(billed.feed.key.public_key(), header, batch["signature"])  # raises if wrong


async def test_evidence_of_unknown_invoice_or_line_is_404_and_needs_an_admin_key(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    billed = await billed_invoice(db)
    url = f"/v1/invoices/{billed.invoice_id}"
    missing_invoice = await client.get(
        "/v1/invoices/999999/lines/1/evidence", headers=billed.headers
    )
    missing_line = await client.get(f"{url}/lines/99/evidence", headers=billed.headers)
    anonymous = await client.get(f"{url}/lines/1/evidence")
    wrong_key = await client.get(
        f"{url}/lines/1/evidence", headers={"Authorization": "Bearer tg_not_a_key"}
    )
    assert (missing_invoice.status_code, error_code(missing_invoice)) == (404, "invoice_not_found")
    assert (missing_line.status_code, error_code(missing_line)) == (404, "invoice_line_not_found")
    assert (anonymous.status_code, error_code(anonymous)) == (401, "unauthorized")
    assert wrong_key.status_code == 401
