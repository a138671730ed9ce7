"""The data-quality pages: incidents filtered as the API filters them, one incident with its
evidence, acknowledge and resolve through the lifecycle's own steps (a viewer sees no form and
is refused)."""

import re
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI

from cloud.db import Database
from cloud.incidents.models import Incident
from tests.cloud.conftest import READER, http_client
from tests.cloud.console.helpers import ORIGIN, add_users, logged_in

EVIDENCE = {"batch_ids": ["b-17", "b-18"], "seqs": [40, 41, 42], "missing": 3}


async def seed_incidents(db: Database) -> dict[str, int]:
    """Five incidents of two gateways, kinds and states; their ids by a short name."""
    now = datetime.now(UTC)
    rows = {
        "gap": ("gw-a", "seq_gap", "panel-1", "open", EVIDENCE),
        "battery": ("gw-a", "low_battery", "panel-1", "open", None),
        "battery-b": ("gw-b", "low_battery", "panel-2", "open", None),
        "acked": ("gw-b", "low_battery", "panel-2", "acknowledged", None),
        "done": ("gw-a", "seq_gap", "panel-1", "resolved", None),
    }
    ids: dict[str, int] = {}
    async with db.transaction(write=True) as session:
        for name, (gateway, kind, device, state, evidence) in rows.items():
            row = Incident(
                gateway_id=gateway,
                kind=kind,
                device_id=device,
                state=state,
                detail=f"{kind} on {device}",
                first_seq=40 if evidence else None,
                last_seq=42 if evidence else None,
                first_seen=now - timedelta(hours=1),
                last_seen=now,
                count=3,
                evidence=evidence,
            )
            session.add(row)
            await session.flush()
            ids[name] = row.id
    return ids


def listed_ids(page: str) -> list[int]:
    """The incident ids of the list page's rows, in order."""
    return [int(found) for found in re.findall(r'<tr data-incident="(\d+)">', page)]


async def test_filters_list_what_the_api_lists(app: FastAPI, db: Database) -> None:
    await add_users(db)
    ids = await seed_incidents(db)
    filters = [
        {},
        {"state": "open"},
        {"state": "open", "kind": "low_battery"},
        {"kind": "seq_gap", "device": "panel-1"},
        {"gateway": "gw-b"},
        {"gateway": "gw-b", "state": "resolved"},
    ]
    async with http_client(app) as client:
        await logged_in(client, "viewer")
        for params in filters:
            page = await client.get("/console/quality", params=params)
            api = await client.get(
                "/v1/quality/incidents",
                params=params,
                headers=READER,
            )
            assert page.status_code == 200, page.text
            assert listed_ids(page.text) == [row["id"] for row in api.json()["incidents"]]
        open_battery = await client.get(
            "/console/quality", params={"state": "open", "kind": "low_battery"}
        )
        pages = [(await client.get("/console/quality", params={"limit": 2})).text]
        while older := re.search(r'id="next-page" href="([^"]+)"', pages[-1]):
            pages.append((await client.get(older[1].replace("&amp;", "&"))).text)
        bad_state = await client.get("/console/quality", params={"state": "closed"})
        long_device = await client.get("/console/quality", params={"device": "d" * 129})
        bad_limit = await client.get("/console/quality", params={"limit": 1000})

    assert listed_ids(open_battery.text) == [ids["battery-b"], ids["battery"]]
    assert [len(listed_ids(page)) for page in pages] == [2, 2, 1]
    assert [i for page in pages for i in listed_ids(page)] == sorted(ids.values(), reverse=True)
    for refused in (bad_state, long_device, bad_limit):
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "invalid_parameters"


async def test_billing_acknowledges_then_resolves_an_incident(app: FastAPI, db: Database) -> None:
    await add_users(db)
    ids = await seed_incidents(db)
    incident = ids["battery"]
    async with http_client(app) as client:
        csrf = await logged_in(client, "billing")
        before = (await client.get(f"/console/quality/{incident}")).text
        acked = await client.post(
            f"/console/quality/{incident}/acknowledge",
            data={"csrf_token": csrf, "note": "on it"},
            headers=ORIGIN,
        )
        after_ack = (await client.get(f"/console/quality/{incident}")).text
        again = await client.post(
            f"/console/quality/{incident}/acknowledge",
            data={"csrf_token": csrf, "note": ""},
            headers=ORIGIN,
        )
        resolved = await client.post(
            f"/console/quality/{incident}/resolve",
            data={"csrf_token": csrf, "note": "battery replaced"},
            headers=ORIGIN,
        )
        after = (await client.get(f"/console/quality/{incident}")).text

    assert 'id="acknowledge-form"' in before and 'id="resolve-form"' in before
    assert acked.status_code == 303
    assert acked.headers["location"] == f"/console/quality/{incident}"
    assert 'id="acknowledge-form"' not in after_ack and 'id="resolve-form"' in after_ack
    assert again.status_code == 409 and 'id="step-error"' in again.text
    assert "cannot be acknowledged" in again.text
    assert resolved.status_code == 303
    assert "by console billing: battery replaced" in after
    assert 'id="resolve-form"' not in after
    async with db.transaction() as session:
        row = await session.get(Incident, incident)
    assert row is not None and row.state == "resolved"
    assert (row.acknowledged_by, row.acknowledged_note) == ("console billing", "on it")
    assert row.resolved_reason == "battery replaced"


async def test_a_viewer_sees_the_evidence_as_the_api_does_and_no_forms(
    app: FastAPI, db: Database
) -> None:
    await add_users(db)
    ids = await seed_incidents(db)
    incident = ids["gap"]
    async with http_client(app) as client:
        csrf = await logged_in(client, "viewer")
        shown = await client.get(f"/console/quality/{incident}")
        api = (await client.get(f"/v1/quality/incidents/{incident}", headers=READER)).json()
        missing = await client.get("/console/quality/999999")
        answers = [
            await client.post(
                f"/console/quality/{incident}/{step}",
                data={"csrf_token": csrf, "note": "x"},
                headers=ORIGIN,
            )
            for step in ("acknowledge", "resolve")
        ]
    async with http_client(app) as client:
        await logged_in(client, "billing")
        no_token = await client.post(
            f"/console/quality/{incident}/resolve", data={"note": "x"}, headers=ORIGIN
        )

    page = shown.text
    assert shown.status_code == 200
    for key, value in api["evidence"].items():
        json_text = str(value).replace("'", "&#34;") if isinstance(value, list) else str(value)
        assert f"<td>{key}</td><td><code>{json_text}</code></td>" in page
    assert "seq_gap on panel-1" in page
    assert f"GET /v1/quality/incidents/{incident}" in page
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "incident_not_found"
    assert no_token.status_code == 403
    assert "<form" in page  # the logout form only
    assert 'id="acknowledge-form"' not in page and 'id="resolve-form"' not in page
    assert [answer.status_code for answer in answers] == [403, 403]
    async with db.transaction() as session:
        row = await session.get(Incident, incident)
    assert row is not None and row.state == "open"
