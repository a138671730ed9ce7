"""Billable sessions across devices through the real API, ingest, invoice run and verify-invoice.

Site `home` of account `acme` (UTC, EUR) has two alarm panels and a camera; two gateways send
their events. Profiles: `panel` (armed / disarmed), `camera` (stream_start / stream_stop).
Combined rules (POST /v1/combined-rules): `site-armed` = union of `panel` per site;
`cam-armed` = intersection of `camera` and `panel` over the account.

    panel-a (gw-a) armed 11-03 18:00 - 23:00
    panel-b (gw-b) armed 11-03 22:00 - 11-04 07:00     union: 18:00 - 07:00 = 13 h
    cam-1   (gw-b) streams 19:00 - 20:00 and 21:00 - 22:30 (both inside the armed night)
                                                        intersection: 1 h + 1.5 h = 2.5 h
    plan: armed_hours 1.00/h -> 13 x 1.00 = 13.00; cam_armed_hours 2.00/h -> 2.5 x 2.00 = 5.00
    total 18.00
"""

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from cloud.auth.service import create_api_key
from cloud.catalog.combined_rules import CombinedSessionRule
from cloud.catalog.models import DeviceProfile
from cloud.db import Database
from cloud.gateways.enrollment import add_site
from cloud.invoices.exports import daily_usage, invoice_document
from cloud.invoices.service import run_invoices
from cloud.invoices.verify import verify_invoice
from shared.events import EventKind
from tests.cloud.conftest import error_code
from tests.support.usage import GatewayFeed, usage

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
GRACE = timedelta(days=5)


def at(text: str) -> datetime:
    """A UTC instant from `MM-DD HH:MM` in 2026."""
    return datetime.strptime(f"2026-{text}", "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


async def admin_headers(db: Database) -> dict[str, str]:
    async with db.transaction(write=True) as session:
        issued = await create_api_key(session=session, name="combined-tests")
    return {"Authorization": f"Bearer {issued.secret}"}


async def post(client: httpx.AsyncClient, headers: dict[str, str], path: str, body: Any) -> Any:
    answer = await client.post(path, json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    return answer.json()


async def set_up(client: httpx.AsyncClient, db: Database) -> dict[str, str]:
    """The catalog above, through the API (the site through the service)."""
    headers = await admin_headers(db)
    async with db.transaction(write=True) as session:
        await add_site(session=session, site_id="home", name="Home")
    profiles = [
        {"id": "panel", "name": "Panel", "start_on": ["armed"], "end_on": ["disarmed"]},
        {"id": "camera", "name": "Camera", "start_on": ["stream_start"], "end_on": ["stream_stop"]},
    ]
    for profile in profiles:
        await post(client, headers, "/v1/profiles", profile)
    for device, profile in (("panel-a", "panel"), ("panel-b", "panel"), ("cam-1", "camera")):
        body = {"id": device, "name": device, "profile_id": profile, "site_id": "home"}
        await post(client, headers, "/v1/devices", body)
    site_armed = {
        "id": "site-armed",
        "name": "Site armed",
        "scope": "site",
        "combine": "union",
        "members": [{"profile": "panel"}],
    }
    created = await post(client, headers, "/v1/combined-rules", site_armed)
    assert created["members"] == [{"profile": "panel", "channels": []}]
    cam_armed = {
        "id": "cam-armed",
        "name": "Camera streaming while armed",
        "scope": "account",
        "combine": "intersection",
        "members": [{"profile": "camera"}, {"profile": "panel"}],
    }
    await post(client, headers, "/v1/combined-rules", cam_armed)
    for metric, rule in (("armed_hours", "site-armed"), ("cam_armed_hours", "cam-armed")):
        body = {
            "id": metric,
            "name": metric,
            "source": "sessions",
            "aggregation": "sum",
            "field": "duration",
            "profiles": [rule],
        }
        await post(client, headers, "/v1/metrics", body)
    await post(client, headers, "/v1/plans", {"id": "alarm", "name": "Alarm", "currency": "EUR"})
    terms = {
        "effective_from": "2026-10-01T00:00:00+00:00",
        "charges": [
            {"metric": "armed_hours", "model": "standard", "unit_price": "1.00"},
            {"metric": "cam_armed_hours", "model": "standard", "unit_price": "2.00"},
        ],
    }
    await post(client, headers, "/v1/plans/alarm/versions", terms)
    account = {
        "id": "acme",
        "name": "Acme",
        "kind": "household",
        "currency": "EUR",
        "time_zone": "UTC",
        "plan_id": "alarm",
    }
    await post(client, headers, "/v1/accounts", account)
    for device in ("panel-a", "panel-b", "cam-1"):
        binding = {"account_id": "acme", "valid_from": "2026-10-01T00:00:00+00:00"}
        await post(client, headers, f"/v1/devices/{device}/bindings", binding)
    return headers


def batches() -> dict[str, list[list[Any]]]:
    """Each gateway's events in batches, as the scenario describes them."""
    on, off = EventKind.ACTIVATION, EventKind.DEACTIVATION
    return {
        "gw-a": [
            [usage("panel-a", "armed", at("11-03 18:00"), kind=on)],
            [usage("panel-a", "disarmed", at("11-03 23:00"), kind=off)],
        ],
        "gw-b": [
            [
                usage("cam-1", "stream_start", at("11-03 19:00"), kind=on),
                usage("cam-1", "stream_stop", at("11-03 20:00"), kind=off),
                usage("panel-b", "armed", at("11-03 22:00"), kind=on),
            ],
            [
                usage("cam-1", "stream_start", at("11-03 21:00"), kind=on),
                usage("cam-1", "stream_stop", at("11-03 22:30"), kind=off),
                usage("panel-b", "disarmed", at("11-04 07:00"), kind=off),
            ],
        ],
    }


async def ingest(db: Database, order: str) -> None:
    """Every batch, gateway by gateway in `order` ("ab": gw-a first), each chain in seq order;
    in "ba" gw-b's late batch (occurred before gw-a's) arrives after a refresh-worthy gap."""
    sent = batches()
    feeds = {gateway: await GatewayFeed(gateway).register(db) for gateway in sent}
    gateways = ["gw-a", "gw-b"] if order == "ab" else ["gw-b", "gw-a"]
    if order == "ab":
        for gateway in gateways:
            for batch in sent[gateway]:
                await feeds[gateway].send(db, batch)
    else:  # interleaved: b1, a1, b2, a2
        for index in range(2):
            for gateway in gateways:
                await feeds[gateway].send(db, sent[gateway][index])


async def documents(client: httpx.AsyncClient, headers: dict[str, str], invoice_id: int) -> Any:
    url = f"/v1/invoices/{invoice_id}"
    invoice = (await client.get(f"{url}/export?format=json", headers=headers)).json()
    evidence = []
    for line in invoice["lines"]:
        answer = await client.get(f"{url}/lines/{line['n']}/evidence", headers=headers)
        assert answer.status_code == 200, answer.text
        evidence.append(answer.json())
    return invoice, evidence


async def invoiced(client: httpx.AsyncClient, db: Database, order: str) -> Any:
    headers = await set_up(client, db)
    await ingest(db, order)
    report = await run_invoices(db=db, period="2026-11", now=NOW, grace=GRACE, account_id="acme")
    (result,) = report.accounts
    assert result.outcome == "drafted" and result.invoice_id is not None, report
    return await documents(client, headers, result.invoice_id)


def usage_line(invoice: dict[str, Any], metric: str) -> dict[str, Any]:
    (line,) = [line for line in invoice["lines"] if line["metric"] == metric]
    return line


def evidence_for(docs: Any, metric: str) -> dict[str, Any]:
    invoice, evidence = docs
    n = usage_line(invoice, metric)["n"]
    (document,) = [doc for doc in evidence if doc["line"]["n"] == n]
    return document


def pieces(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    return sorted((s["device_id"], s["piece_start"], s["piece_end"]) for s in document["sessions"])


@pytest.mark.parametrize("order", ["ab", "ba"])
async def test_combined_lines_bill_the_union_and_intersection(
    app: FastAPI, client: httpx.AsyncClient, db: Database, order: str
) -> None:
    docs = await invoiced(client, db, order)
    invoice, evidence = docs
    armed, cam = usage_line(invoice, "armed_hours"), usage_line(invoice, "cam_armed_hours")
    # union 18:00-07:00 = 13 h x 1.00; intersection 1 h + 1.5 h = 2.5 h x 2.00
    assert (Decimal(armed["quantity"]), armed["amount"]) == (Decimal(13), "13.00")
    assert (Decimal(cam["quantity"]), cam["amount"]) == (Decimal("2.5"), "5.00")
    assert invoice["total"] == "18.00"
    # the evidence names every member device session the combined line used
    assert pieces(evidence_for(docs, "armed_hours")) == [
        ("panel-a", "2026-11-03T18:00:00+00:00", "2026-11-03T23:00:00+00:00"),
        ("panel-b", "2026-11-03T22:00:00+00:00", "2026-11-04T07:00:00+00:00"),
    ]
    assert pieces(evidence_for(docs, "cam_armed_hours")) == [
        ("cam-1", "2026-11-03T19:00:00+00:00", "2026-11-03T20:00:00+00:00"),
        ("cam-1", "2026-11-03T21:00:00+00:00", "2026-11-03T22:30:00+00:00"),
        ("panel-a", "2026-11-03T18:00:00+00:00", "2026-11-03T23:00:00+00:00"),
        ("panel-b", "2026-11-03T22:00:00+00:00", "2026-11-04T07:00:00+00:00"),  # 22:00-22:30
    ]
    rule = evidence_for(docs, "armed_hours")["combined_rule"]
    assert rule == {
        "id": "site-armed",
        "scope": "site",
        "combine": "union",
        "members": [{"profile": "panel", "channels": []}],
    }
    assert evidence_for(docs, "armed_hours")["device_sites"] == {
        "panel-a": "home",
        "panel-b": "home",
    }
    assert verify_invoice(invoice, evidence) == []


async def test_a_tampered_member_session_fails_verification(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    docs = copy.deepcopy(await invoiced(client, db, "ab"))
    armed = evidence_for(docs, "armed_hours")
    n = armed["line"]["n"]
    # panel-b's session claimed to end at 05:00 instead of 07:00: union 11 h, not 13 h
    (panel_b,) = [s for s in armed["sessions"] if s["device_id"] == "panel-b"]
    panel_b["ended_at"] = panel_b["piece_end"] = "2026-11-04T05:00:00+00:00"
    problems = verify_invoice(*docs)
    assert [(p.line, p.what) for p in problems] == [
        (n, "each session recomputes from the signed events under its profile's rules"),
        (n, "quantity and amount recompute from the evidence"),
    ]
    assert problems[1].detail.startswith("quantity 11.000000 (stored 13")


async def test_a_tampered_rule_fails_verification(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    docs = copy.deepcopy(await invoiced(client, db, "ab"))
    cam = evidence_for(docs, "cam_armed_hours")
    cam["combined_rule"]["combine"] = "union"  # 18:00-23:00 union of cam-1 and panel-a = 5 h
    problems = verify_invoice(*docs)
    assert [(p.line, p.what) for p in problems] == [
        (cam["line"]["n"], "quantity and amount recompute from the evidence")
    ]


async def test_combined_rules_are_listed_and_read(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    headers = await set_up(client, db)
    listed = (await client.get("/v1/combined-rules", headers=headers)).json()
    assert [rule["id"] for rule in listed] == ["cam-armed", "site-armed"]
    one = await client.get("/v1/combined-rules/cam-armed", headers=headers)
    assert one.json()["members"] == [
        {"profile": "camera", "channels": []},
        {"profile": "panel", "channels": []},
    ]
    missing = await client.get("/v1/combined-rules/nope", headers=headers)
    assert missing.status_code == 404 and error_code(missing) == "profile_not_found"


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"members": [{"profile": "ghost"}]}, 404, "profile_not_found"),
        ({"members": []}, 422, "invalid_billing_input"),
        (
            {"combine": "intersection", "members": [{"profile": "panel"}]},
            422,
            "invalid_billing_input",
        ),
        ({"members": [{"profile": "panel"}, {"profile": "panel"}]}, 422, "invalid_billing_input"),
        ({"members": [{"profile": "site-armed"}]}, 422, "invalid_billing_input"),
        ({"id": "panel"}, 409, "already_exists"),  # a profile's id: one namespace
        ({"scope": "planet"}, 422, "invalid_parameters"),
        ({"members": [{"profile": "panel", "channels": ["x"] * 33}]}, 422, "invalid_parameters"),
    ],
)
async def test_bad_rules_are_refused_with_nothing_written(
    app: FastAPI,
    client: httpx.AsyncClient,
    db: Database,
    change: dict[str, Any],
    status: int,
    code: str,
) -> None:
    headers = await set_up(client, db)
    async with db.transaction() as session:
        before = (
            await session.scalar(select(func.count()).select_from(CombinedSessionRule)),
            await session.scalar(select(func.count()).select_from(DeviceProfile)),
        )
    body = {"id": "new-rule", "name": "New", "scope": "site", "combine": "union"}
    body |= {"members": [{"profile": "panel"}]} | change
    answer = await client.post("/v1/combined-rules", json=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert error_code(answer) == code
    async with db.transaction() as session:
        after = (
            await session.scalar(select(func.count()).select_from(CombinedSessionRule)),
            await session.scalar(select(func.count()).select_from(DeviceProfile)),
        )
    assert after == before


async def test_a_combined_lines_daily_chart_adds_up_to_the_line(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    invoice, _ = await invoiced(client, db, "ab")
    async with db.transaction() as session:
        document = await invoice_document(session=session, invoice_id=int(invoice["id"]))
        charts = await daily_usage(session=session, document=document)
    armed, cam = usage_line(invoice, "armed_hours"), usage_line(invoice, "cam_armed_hours")
    by_day = {
        metric: {p.start.date().isoformat(): p.value for p in charts[line["n"]] if p.value}
        for metric, line in (("armed_hours", armed), ("cam_armed_hours", cam))
    }
    # union 11-03 18:00-24:00 = 6 h, 11-04 00:00-07:00 = 7 h (13 h); intersection 19-20 and
    # 21-22:30 on 11-03 = 2.5 h; every other day of November is 0
    assert by_day == {
        "armed_hours": {"2026-11-03": Decimal(6), "2026-11-04": Decimal(7)},
        "cam_armed_hours": {"2026-11-03": Decimal("2.5")},
    }
    for line in (armed, cam):
        assert len(charts[line["n"]]) == 30  # one point per day of November
        assert sum(p.value for p in charts[line["n"]]) == Decimal(line["quantity"])
