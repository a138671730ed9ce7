"""Direct events are billed like gateway events: sessions, invoices, evidence and verify-invoice.

The scenario (`direct`), on SQLite and PostgreSQL, through the real app over ASGI: account `acme`
(UTC, EUR) on plan `basic` v1 (from 2026-01-01): base fee 10.00, `stream_hours` (sum of camera
session hours) standard 0.50/h with 1 h included, `water` (sum of litres) graduated 0.01/l up to
100 l, then 0.02/l. Devices cam-1 (camera) and meter-1 (meter) are bound to acme; stray-1 (meter)
is in the catalog but bound to nobody; ghost-9 is not in the catalog at all. Source `acme-direct`
sends September 2026 usage, sealed by the collector into the chain `source:acme-direct`:

    seq 1    CloudEvent (structured)  cam-1 stream started  09-03 10:00Z
    seq 2-5  CloudEvents (batch)      cam-1 stream stopped  09-03 12:30Z  -> session of 2.5 h
                                      cam-1 stream started  09-10 20:00Z
                                      cam-1 stream stopped  09-10 21:00Z  -> session of 1 h
                                      meter-1 water 15.5 l  09-07 18:00Z
    seq 6-9  CSV import (rows 2-5)    meter-1 water 60 l    09-05 08:00Z
                                      meter-1 water 70 l    09-06 10:00+02:00 (08:00Z)
                                      stray-1 water 999 l   09-05 09:00Z  (no binding: unbilled)
                                      ghost-9 water 5 l     09-06 09:00Z  (unknown device)

    base fee  10.00                                                  (whole month)
    stream    3.5 h, 2.5 billable x 0.50                        =  1.25
    water     145.5 l: 100 x 0.01 + 45.5 x 0.02 = 1.00 + 0.91   =  1.91
    total                                                          13.16

Runs use the real `now` (ingest stamps received_at with the wall clock) and a century of grace,
so that no draft is finalized behind the test's back.
"""

import copy
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from cloudevents.core.bindings.http import to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy import func, select

from cloud.auth.service import create_api_key
from cloud.catalog.bindings import create_binding
from cloud.catalog.loader import load_catalog, parse_catalog
from cloud.catalog.unbilled import UnbilledDevice, unbilled_usage
from cloud.db import Database
from cloud.direct.models import Source
from cloud.domain import CloseReason
from cloud.ingest.models import StoredEvent
from cloud.invoices.finalization import finalize_invoice
from cloud.invoices.service import RunReport, run_invoices
from cloud.invoices.verify import Problem, verify_invoice
from cloud.session_work import EPOCH
from cloud.sessions.service import StoredSession, refresh_sessions, sessions_overlapping
from shared.signing import load_private_key, public_key_pem
from tests.cloud.conftest import http_client

D = Decimal
GRACE = timedelta(days=36_500)
SOURCE = "acme-direct"
GATEWAY = "source:acme-direct"
CE_SOURCE = "urn:acme:devices"
STARTED, STOPPED, POURED = "com.acme.stream.started", "com.acme.stream.stopped", "com.acme.water"
FAR = datetime(9999, 1, 1, tzinfo=UTC)
SEPTEMBER = (datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC))

CATALOG = """
[[profiles]]
id = "camera"
name = "Camera"
start_on = ["stream_start"]
end_on = ["stream_stop"]

[[profiles]]
id = "meter"
name = "Water meter"

[[metrics]]
id = "stream_hours"
name = "Streaming hours"
source = "sessions"
aggregation = "sum"
field = "duration"
profiles = ["camera"]

[[metrics]]
id = "water"
name = "Water"
source = "events"
aggregation = "sum"
field = "quantity"
names = ["water"]
unit = "l"

[[plans]]
id = "basic"
name = "Basic"
currency = "EUR"

[[plans.versions]]
effective_from = 2026-01-01T00:00:00Z
base_fee = "10.00"

[[plans.versions.charges]]
metric = "stream_hours"
model = "standard"
unit_price = "0.50"
included_units = "1"

[[plans.versions.charges]]
metric = "water"
model = "graduated"
tiers = [{ up_to = "100", unit_price = "0.01" }, { unit_price = "0.02" }]

[[accounts]]
id = "acme"
name = "Acme"
kind = "household"
currency = "EUR"
time_zone = "UTC"
plan_id = "basic"

[[devices]]
id = "cam-1"
name = "Cam"
profile_id = "camera"

[[devices]]
id = "meter-1"
name = "Tap"
profile_id = "meter"

[[devices]]
id = "stray-1"
name = "Lost tap"
profile_id = "meter"

[[bindings]]
device_id = "cam-1"
account_id = "acme"
valid_from = 2026-01-01T00:00:00Z

[[bindings]]
device_id = "meter-1"
account_id = "acme"
valid_from = 2026-01-01T00:00:00Z
"""

MAPPING: dict[str, Any] = {
    "ce_sources": [CE_SOURCE],
    "files": {"device": "meter", "time": "read_at", "type": "type", "id": "reading_id"},
    "types": [
        {"type": STARTED, "name": "stream_start", "kind": "activation"},
        {"type": STOPPED, "name": "stream_stop", "kind": "deactivation"},
        {"type": POURED, "name": "water", "kind": "measurement", "quantity": "litres", "unit": "l"},
    ],
}

READINGS_CSV = (
    "reading_id,meter,read_at,type,litres\n"
    f"r-1,meter-1,2026-09-05T08:00:00Z,{POURED},60\n"
    f"r-2,meter-1,2026-09-06T10:00:00+02:00,{POURED},70\n"
    f"r-3,stray-1,2026-09-05T09:00:00Z,{POURED},999\n"
    f"r-4,ghost-9,2026-09-06T09:00:00Z,{POURED},5\n"
).encode()


def at(text: str) -> datetime:
    """A UTC instant from `MM-DD HH:MM` in 2026."""
    return datetime.strptime(f"2026-{text}", "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


def cloud_event(
    event_id: str, event_type: str, subject: str, when: datetime, data: Any = None
) -> CloudEvent:
    """A CloudEvent of the source, built with the official SDK."""
    attributes = {
        "id": event_id,
        "source": CE_SOURCE,
        "type": event_type,
        "subject": subject,
        "time": when,
    }
    return CloudEvent(attributes=attributes, data=data)


def batch_body(events: Sequence[CloudEvent]) -> bytes:
    """A batch-mode body (the SDK has no batch writer: a JSON array of its JSON events)."""
    return b"[" + b",".join(JSONFormat().write(event) for event in events) + b"]"


SCENARIO_BATCH = [
    cloud_event("cam-1-0002", STOPPED, "cam-1", at("09-03 12:30")),
    cloud_event("cam-1-0003", STARTED, "cam-1", at("09-10 20:00")),
    cloud_event("cam-1-0004", STOPPED, "cam-1", at("09-10 21:00")),
    cloud_event("meter-1-ce-1", POURED, "meter-1", at("09-07 18:00"), {"litres": 15.5}),
]


@dataclass
class Direct:
    """The scenario's app: its database, an admin client and the source's ingest key."""

    db: Database
    api: httpx.AsyncClient
    ingest_key: str

    async def post_events(self, body: bytes, content_type: str) -> dict[str, Any]:
        """POST /v1/events with the ingest key; the receipt (200 expected)."""
        response = await self.api.post(
            "/v1/events",
            content=body,
            headers={"content-type": content_type, "authorization": f"Bearer {self.ingest_key}"},
        )
        assert response.status_code == 200, response.text
        receipt: dict[str, Any] = response.json()
        return receipt

    async def send_structured(self, event: CloudEvent) -> dict[str, Any]:
        """One event in structured mode, written by the SDK's HTTP binding."""
        message = to_structured(event, JSONFormat())
        return await self.post_events(message.body, message.headers["content-type"])

    async def send_batch(self, events: Sequence[CloudEvent]) -> dict[str, Any]:
        """Events in batch mode."""
        return await self.post_events(batch_body(events), "application/cloudevents-batch+json")

    async def import_csv(self, data: bytes, filename: str = "readings.csv") -> dict[str, Any]:
        """POST /v1/imports of a CSV with the ingest key; the report (200 expected)."""
        response = await self.api.post(
            "/v1/imports",
            params={"source": SOURCE, "filename": filename},
            content=data,
            headers={"authorization": f"Bearer {self.ingest_key}"},
        )
        assert response.status_code == 200, response.text
        report: dict[str, Any] = response.json()
        return report

    async def run(self, period: str) -> RunReport:
        """Run a period for acme now, with a century of grace."""
        return await run_invoices(
            db=self.db, period=period, now=datetime.now(UTC), grace=GRACE, account_id="acme"
        )

    async def documents(self, invoice_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """What `tollgate-cloud verify-invoice --url` fetches: the invoice and each line's
        evidence."""
        invoice = await self.get_json(f"/v1/invoices/{invoice_id}")
        evidence = [
            await self.get_json(f"/v1/invoices/{invoice_id}/lines/{line['n']}/evidence")
            for line in invoice["lines"]
        ]
        return invoice, evidence

    async def get_json(self, path: str) -> dict[str, Any]:
        """GET with the admin key; the JSON answer (200 expected)."""
        response = await self.api.get(path)
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
        return document

    async def source_public_key(self) -> str:
        """The PEM public half of the key the collector seals the source's batches with."""
        async with self.db.transaction() as session:
            source = await session.get(Source, SOURCE)
            assert source is not None
            key = load_private_key(source.private_key_pem.encode("ascii"))
        return public_key_pem(key.public_key())


@pytest.fixture
async def direct(app: FastAPI, db: Database) -> AsyncIterator[Direct]:
    """The catalog loaded, the source created over the API with its ingest key."""
    async with db.transaction(write=True) as session:
        await load_catalog(session=session, catalog=parse_catalog(CATALOG))
        admin = await create_api_key(session=session, name="direct-billing")
    async with http_client(app) as api:
        api.headers["authorization"] = f"Bearer {admin.secret}"
        created = await api.post("/v1/sources", json={"id": SOURCE, "mapping": MAPPING})
        assert created.status_code == 201, created.text
        issued = await api.post(f"/v1/sources/{SOURCE}/keys", json={"name": "acme devices"})
        assert issued.status_code == 201, issued.text
        yield Direct(db=db, api=api, ingest_key=issued.json()["secret"])


async def send_scenario(direct: Direct) -> None:
    """The scenario's usage: one structured event, one batch, one CSV (see the module doc)."""
    first = await direct.send_structured(
        cloud_event("cam-1-0001", STARTED, "cam-1", at("09-03 10:00"))
    )
    assert (first["stored"], first["first_seq"], first["last_seq"]) == (1, 1, 1)
    batch = await direct.send_batch(SCENARIO_BATCH)
    assert (batch["stored"], batch["rejected"]) == (4, [])
    assert (batch["first_seq"], batch["last_seq"]) == (2, 5)
    report = await direct.import_csv(READINGS_CSV)
    assert (report["rows"], report["stored"], report["rejected"]) == (4, 4, 0)


async def drafted_september(direct: Direct) -> int:
    """The scenario sent and September run: the draft's id."""
    await send_scenario(direct)
    report = await direct.run("2026-09")
    (result,) = report.accounts
    assert result.outcome == "drafted" and result.invoice_id is not None, report
    return result.invoice_id


async def current_sessions(db: Database, device_id: str) -> list[StoredSession]:
    """The device's current sessions."""
    async with db.transaction() as session:
        return await sessions_overlapping(
            session=session, start=EPOCH, end=FAR, device_ids=[device_id]
        )


def line_of(invoice: dict[str, Any], kind: str, metric: str | None = None) -> dict[str, Any]:
    """The one line of that kind (and metric)."""
    (line,) = [x for x in invoice["lines"] if x["kind"] == kind and x["metric"] == metric]
    found: dict[str, Any] = line
    return found


def evidence_of(docs: tuple[dict[str, Any], list[dict[str, Any]]], metric: str) -> dict[str, Any]:
    """The evidence document of the usage line of `metric`."""
    invoice, evidence = docs
    n = line_of(invoice, "usage", metric)["n"]
    (document,) = [doc for doc in evidence if doc["line"]["n"] == n]
    return document


def amounts(invoice: dict[str, Any]) -> list[tuple[str, str | None, Decimal]]:
    """(kind, metric, amount) of each line, in order."""
    return [(x["kind"], x["metric"], D(x["amount"])) for x in invoice["lines"]]


def whats(problems: list[Problem]) -> list[tuple[int | None, str]]:
    """(line, what) of each problem, without the batch names."""
    return [(p.line, p.what.split(": ")[-1]) for p in problems]


def keys(*seqs: int) -> list[list[Any]]:
    """Event keys of the source's chain as evidence lists them."""
    return [[GATEWAY, seq] for seq in seqs]


# -- sessions ------------------------------------------------------------------------------------


async def test_sessions_are_computed_from_direct_events(direct: Direct) -> None:
    """CloudEvents activations and deactivations make the camera's sessions, keyed in the
    source's chain."""
    await send_scenario(direct)

    report = await refresh_sessions(db=direct.db, as_of=datetime.now(UTC))

    assert (report.written, report.retired) == (2, 0)
    sessions = await current_sessions(direct.db, "cam-1")
    assert [(s.name, s.started_at, s.ended_at, s.close_reason, s.events) for s in sessions] == [
        (
            "stream_start",
            at("09-03 10:00"),
            at("09-03 12:30"),
            CloseReason.DEACTIVATED,
            ((GATEWAY, 1), (GATEWAY, 2)),
        ),
        (
            "stream_start",
            at("09-10 20:00"),
            at("09-10 21:00"),
            CloseReason.DEACTIVATED,
            ((GATEWAY, 3), (GATEWAY, 4)),
        ),
    ]
    assert await current_sessions(direct.db, "meter-1") == []  # a meter has no session rule


# -- invoices ------------------------------------------------------------------------------------


async def test_invoice_bills_direct_events_to_the_cent(direct: Direct) -> None:
    """Sessions from CloudEvents and readings from CloudEvents and a CSV are rated exactly."""
    invoice_id = await drafted_september(direct)

    invoice = await direct.get_json(f"/v1/invoices/{invoice_id}")
    assert amounts(invoice) == [
        ("base_fee", None, D("10.00")),
        ("usage", "stream_hours", D("1.25")),
        ("usage", "water", D("1.91")),
    ]
    stream, water = line_of(invoice, "usage", "stream_hours"), line_of(invoice, "usage", "water")
    assert (D(stream["quantity"]), D(stream["billable"])) == (D("3.5"), D("2.5"))
    assert (D(water["quantity"]), D(water["billable"])) == (D("145.5"), D("145.5"))
    assert D(invoice["total"]) == D("13.16")


async def test_resent_events_and_reimported_file_bill_nothing_twice(direct: Direct) -> None:
    """The same batch and the same file again are duplicates; the re-run invoice is unchanged."""
    invoice_id = await drafted_september(direct)
    before = await direct.get_json(f"/v1/invoices/{invoice_id}")

    again = await direct.send_batch(SCENARIO_BATCH)
    reimport = await direct.import_csv(READINGS_CSV)
    report = await direct.run("2026-09")

    assert (again["stored"], again["duplicates"]) == (0, 4)
    assert (reimport["stored"], reimport["duplicates"]) == (0, 4)
    assert report.accounts[0].outcome == "updated"
    after = await direct.get_json(f"/v1/invoices/{invoice_id}")
    assert amounts(after) == amounts(before)
    assert D(after["total"]) == D("13.16")
    async with direct.db.transaction() as session:
        stored = await session.scalar(
            select(func.count()).select_from(StoredEvent).where(StoredEvent.gateway_id == GATEWAY)
        )
    assert stored == 9


# -- evidence and verify-invoice -------------------------------------------------------------------


async def test_evidence_of_collector_sealed_events_verifies(direct: Direct) -> None:
    """Evidence of direct events holds the source's sealed batches; verify_invoice accepts it."""
    invoice_id = await drafted_september(direct)
    docs = await direct.documents(invoice_id)
    pem = await direct.source_public_key()

    assert verify_invoice(*docs) == []
    assert verify_invoice(*docs, trusted_keys={GATEWAY: pem}) == []
    water = evidence_of(docs, "water")
    assert water["line_events"] == keys(6, 7, 5)  # in time order: 09-05, 09-06, 09-07
    assert [[e["seq"] for e in b["events"]] for b in water["batches"]] == [
        [2, 3, 4, 5],
        [6, 7, 8, 9],
    ]
    assert {b["gateway_id"] for b in water["batches"]} == {GATEWAY}
    assert {b["public_key_pem"] for b in water["batches"]} == {pem}
    assert [(e["quantity"], e["attrs"]) for e in water["events"]] == [
        (
            "15.5",
            {
                "origin": "cloudevents",
                "origin_id": "meter-1-ce-1",
                "ce_source": CE_SOURCE,
                "ce_type": POURED,
            },
        ),
        ("60", {"origin": "import", "origin_id": "r-1", "import_file": "readings.csv",
                "import_row": 2}),
        ("70", {"origin": "import", "origin_id": "r-2", "import_file": "readings.csv",
                "import_row": 3}),
    ]  # fmt: skip
    stream = evidence_of(docs, "stream_hours")
    assert [s["events"] for s in stream["sessions"]] == [keys(1, 2), keys(3, 4)]
    assert [[e["seq"] for e in b["events"]] for b in stream["batches"]] == [[1], [2, 3, 4, 5]]


async def test_tampered_quantity_of_a_direct_event_fails_verification(direct: Direct) -> None:
    """A CSV reading changed in the evidence breaks the sealed chain and the recomputed amount."""
    invoice_id = await drafted_september(direct)
    tampered = copy.deepcopy(await direct.documents(invoice_id))
    water = evidence_of(tampered, "water")
    for event in [*water["events"], *water["batches"][1]["events"]]:
        if event["quantity"] == "60":
            event["quantity"] = "6"

    problems = verify_invoice(*tampered)

    n = water["line"]["n"]
    assert whats(problems) == [
        (n, "chain recomputes"),
        (n, "all 3 billed events are signed batch events, unchanged"),
        (n, "quantity and amount recompute from the evidence"),
    ]
    assert problems[0].what.startswith(f"batch {GATEWAY} 6..9")
    # 15.5 + 6 + 70 = 91.5 l at 0.01: 0.915, not 1.91
    assert "quantity 91.5 (stored 145.5)" in problems[2].detail


async def test_tampered_origin_of_a_direct_event_fails_verification(direct: Direct) -> None:
    """The origin attributes are sealed too: naming another import row breaks the chain."""
    invoice_id = await drafted_september(direct)
    tampered = copy.deepcopy(await direct.documents(invoice_id))
    water = evidence_of(tampered, "water")
    for event in [*water["events"], *water["batches"][1]["events"]]:
        if event["attrs"].get("origin_id") == "r-2":
            event["attrs"]["import_row"] = 99

    problems = verify_invoice(*tampered)

    n = water["line"]["n"]
    assert whats(problems) == [
        (n, "chain recomputes"),
        (n, "all 3 billed events are signed batch events, unchanged"),
    ]


async def test_evidence_under_another_pinned_key_fails(direct: Direct) -> None:
    """Pinning a key that is not the source's makes every batch of the source fail its
    signature."""
    invoice_id = await drafted_september(direct)
    docs = await direct.documents(invoice_id)
    other = public_key_pem(Ed25519PrivateKey.generate().public_key())

    problems = verify_invoice(*docs, trusted_keys={GATEWAY: other})

    stream, water = evidence_of(docs, "stream_hours"), evidence_of(docs, "water")
    assert whats(problems) == [
        (stream["line"]["n"], "signature verifies"),
        (stream["line"]["n"], "signature verifies"),
        (stream["line"]["n"], "all 4 billed events are signed batch events, unchanged"),
        # the stream line's sessions are recomputed from the signed events, which fail here
        (
            stream["line"]["n"],
            "each session recomputes from the signed events under its profile's rules",
        ),
        (water["line"]["n"], "signature verifies"),
        (water["line"]["n"], "signature verifies"),
        (water["line"]["n"], "all 3 billed events are signed batch events, unchanged"),
    ]


# -- unbilled usage --------------------------------------------------------------------------------


async def test_direct_events_without_binding_are_unbilled_not_dropped(direct: Direct) -> None:
    """A bound-to-nobody device and an unknown one are listed as unbilled, and stored."""
    await drafted_september(direct)

    async with direct.db.transaction() as session:
        unbilled = await unbilled_usage(session=session, start=SEPTEMBER[0], end=SEPTEMBER[1])
        stored = (
            await session.execute(
                select(StoredEvent.device_id, StoredEvent.seq, StoredEvent.quantity)
                .where(StoredEvent.device_id.in_(["stray-1", "ghost-9"]))
                .order_by(StoredEvent.seq)
            )
        ).all()
    assert unbilled == [
        UnbilledDevice("ghost-9", False, 1, at("09-06 09:00"), at("09-06 09:00"), ("water",)),
        UnbilledDevice("stray-1", True, 1, at("09-05 09:00"), at("09-05 09:00"), ("water",)),
    ]
    assert [tuple(row) for row in stored] == [("stray-1", 8, D("999")), ("ghost-9", 9, D("5"))]
    source = await direct.get_json(f"/v1/sources/{SOURCE}")
    assert source["incidents"]["unknown_device"] == 1


async def test_binding_an_unbilled_device_bills_its_direct_events(direct: Direct) -> None:
    """Once stray-1 is bound, the next run bills its 999 l and it leaves the unbilled list."""
    invoice_id = await drafted_september(direct)
    async with direct.db.transaction(write=True) as session:
        await create_binding(
            session=session, device_id="stray-1", account_id="acme", valid_from=at("09-01 00:00")
        )

    await direct.run("2026-09")

    async with direct.db.transaction() as session:
        unbilled = await unbilled_usage(session=session, start=SEPTEMBER[0], end=SEPTEMBER[1])
    assert [device.device_id for device in unbilled] == ["ghost-9"]
    invoice = await direct.get_json(f"/v1/invoices/{invoice_id}")
    # 1144.5 l: 100 x 0.01 + 1044.5 x 0.02 = 1.00 + 20.89
    assert amounts(invoice) == [
        ("base_fee", None, D("10.00")),
        ("usage", "stream_hours", D("1.25")),
        ("usage", "water", D("21.89")),
    ]
    assert D(invoice["total"]) == D("33.14")
    assert verify_invoice(*await direct.documents(invoice_id)) == []


# -- late events after finalization ----------------------------------------------------------------


async def test_late_direct_event_after_finalization_is_an_adjustment(direct: Direct) -> None:
    """A September reading sent after September was finalized corrects it on October's
    invoice."""
    september_id = await drafted_september(direct)
    await finalize_invoice(db=direct.db, invoice_id=september_id, now=datetime.now(UTC), force=True)
    before = await direct.get_json(f"/v1/invoices/{september_id}")

    late = await direct.send_structured(
        cloud_event("meter-1-ce-2", POURED, "meter-1", at("09-20 07:00"), {"litres": "10"})
    )
    assert (late["stored"], late["first_seq"]) == (1, 10)
    await direct.run("2026-09")  # changes nothing: September is final
    report = await direct.run("2026-10")

    assert await direct.get_json(f"/v1/invoices/{september_id}") == before
    (result,) = report.accounts
    assert (result.outcome, result.adjustments) == ("drafted", 1)
    assert result.invoice_id is not None
    october = await direct.get_json(f"/v1/invoices/{result.invoice_id}")
    water_n = line_of(before, "usage", "water")["n"]
    adjustment = line_of(october, "adjustment", "water")
    # water 155.5 l: 1.00 + 55.5 x 0.02 = 2.11, billed 1.91: +0.20
    assert (D(adjustment["amount"]), D(adjustment["quantity"])) == (D("0.20"), D("155.5"))
    assert (adjustment["corrects_invoice_id"], adjustment["corrects_line"]) == (
        september_id,
        water_n,
    )
    assert D(october["total"]) == D("10.20")
    docs = await direct.documents(result.invoice_id)
    assert verify_invoice(*docs) == []
    (adjusted,) = [doc for doc in docs[1] if doc["line"]["n"] == adjustment["n"]]
    assert adjusted["line_events"] == keys(6, 7, 5, 10)  # in time order
