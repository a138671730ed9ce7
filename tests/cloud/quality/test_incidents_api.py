"""The incident lifecycle over HTTP: list with filters and keyset pages, show, acknowledge and
resolve with notes, 409 for steps the state does not allow (nothing changes), 404 and 422 as
JSON errors; on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from cloud.auth.service import create_api_key
from cloud.db import Database
from cloud.incidents.models import IncidentKind
from cloud.incidents.sink import record_incident
from tests.cloud.conftest import JSON, READER, error_code

T0 = datetime(2026, 11, 20, 8, tzinfo=UTC)


@pytest.fixture
async def billing(app: FastAPI, db: Database) -> dict[str, str]:
    """A billing key's header (its holder is named `ops`)."""
    async with db.transaction(write=True) as session:
        issued = await create_api_key(session=session, name="ops", scope="billing")
    return {"Authorization": f"Bearer {issued.secret}"}


async def file(
    db: Database,
    kind: IncidentKind,
    *,
    device: str | None = None,
    gateway: str = "gw-a",
    at: datetime = T0,
) -> int:
    """Record one incident through the sink; its id."""
    return await db.run_write(
        lambda session: record_incident(
            session, kind=kind, gateway_id=gateway, device_id=device, detail=f"{kind} seen", at=at
        )
    )


async def test_list_filters_and_pages_newest_first(client: httpx.AsyncClient, db: Database) -> None:
    ids = [
        await file(db, IncidentKind.CLOCK_SKEW, device="lock-1"),
        await file(db, IncidentKind.CLOCK_SKEW, device="lock-2", at=T0 + timedelta(hours=1)),
        await file(db, IncidentKind.SEQ_GAP, gateway="gw-b", at=T0 + timedelta(hours=2)),
    ]

    async def listed(**params: str) -> dict[str, object]:
        response = await client.get("/v1/quality/incidents", headers=READER, params=params)
        assert response.status_code == 200, response.text
        page: dict[str, object] = response.json()
        return page

    def id_list(page: dict[str, object]) -> list[int]:
        assert isinstance(page["incidents"], list)
        return [item["id"] for item in page["incidents"]]

    assert id_list(await listed()) == ids[::-1]
    assert id_list(await listed(kind="clock_skew")) == [ids[1], ids[0]]
    assert id_list(await listed(device="lock-1")) == [ids[0]]
    assert id_list(await listed(gateway="gw-b")) == [ids[2]]
    assert id_list(await listed(state="open")) == ids[::-1]
    assert id_list(await listed(state="resolved")) == []
    assert id_list(await listed(since=(T0 + timedelta(minutes=30)).isoformat())) == ids[:0:-1]
    first = await listed(limit="2")
    assert id_list(first) == [ids[2], ids[1]] and isinstance(first["next_cursor"], str)
    rest = await listed(limit="2", cursor=first["next_cursor"])  # type: ignore[arg-type]
    assert id_list(rest) == [ids[0]] and rest["next_cursor"] is None


@pytest.mark.parametrize(
    "params",
    [{"cursor": "abc"}, {"cursor": "-1"}, {"limit": "1001"}, {"state": "gone"}, {"kind": "k" * 33}],
)
async def test_bad_list_parameters_are_422(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await client.get("/v1/quality/incidents", headers=READER, params=params)

    assert response.status_code == 422 and error_code(response) == "invalid_parameters"


async def test_acknowledge_then_resolve_with_notes(
    client: httpx.AsyncClient, db: Database, billing: dict[str, str]
) -> None:
    incident_id = await file(db, IncidentKind.COUNTER_RESET, device="meter-1")
    url = f"/v1/quality/incidents/{incident_id}"

    acked = await client.post(
        f"{url}/acknowledge", headers={**billing, **JSON}, json={"note": "on it"}
    )
    assert acked.status_code == 200, acked.text
    assert acked.json()["state"] == "acknowledged"
    assert (acked.json()["acknowledged_by"], acked.json()["acknowledged_note"]) == (
        "key ops",
        "on it",
    )

    resolved = await client.post(f"{url}/resolve", headers=billing)  # no body: no note
    assert resolved.status_code == 200, resolved.text
    body = resolved.json()
    assert (body["state"], body["resolved_by"], body["resolved_reason"]) == (
        "resolved",
        "key ops",
        "resolved by key ops",
    )
    shown = await client.get(url, headers=READER)
    assert shown.status_code == 200 and shown.json() == body


@pytest.mark.parametrize(
    ("first", "second"),
    [("resolve", "resolve"), ("resolve", "acknowledge"), ("acknowledge", "acknowledge")],
)
async def test_an_illegal_step_is_409_and_changes_nothing(
    client: httpx.AsyncClient, db: Database, billing: dict[str, str], first: str, second: str
) -> None:
    incident_id = await file(db, IncidentKind.UNBOUND_USAGE, device="d-1")
    url = f"/v1/quality/incidents/{incident_id}"
    assert (await client.post(f"{url}/{first}", headers=billing)).status_code == 200
    before = (await client.get(url, headers=READER)).json()

    response = await client.post(
        f"{url}/{second}", headers={**billing, **JSON}, json={"note": "again"}
    )

    assert response.status_code == 409 and error_code(response) == "incident_transition"
    assert response.json()["error"]["detail"]["state"] == before["state"]
    assert (await client.get(url, headers=READER)).json() == before


async def test_a_new_occurrence_after_resolution_opens_a_new_incident(
    client: httpx.AsyncClient, db: Database, billing: dict[str, str]
) -> None:
    old = await file(db, IncidentKind.CLOCK_SKEW, device="lock-1")
    assert (
        await client.post(f"/v1/quality/incidents/{old}/resolve", headers=billing)
    ).status_code == 200

    new = await file(db, IncidentKind.CLOCK_SKEW, device="lock-1")

    assert new != old
    assert (await client.get(f"/v1/quality/incidents/{new}", headers=READER)).json()[
        "state"
    ] == "open"


async def test_unknown_ids_are_404_and_bad_bodies_422(
    client: httpx.AsyncClient, db: Database, billing: dict[str, str]
) -> None:
    incident_id = await file(db, IncidentKind.CLOCK_SKEW, device="lock-1")
    url = f"/v1/quality/incidents/{incident_id}"

    missing = await client.get("/v1/quality/incidents/999999", headers=READER)
    missing_step = await client.post("/v1/quality/incidents/999999/resolve", headers=billing)
    too_long = await client.post(
        f"{url}/resolve", headers={**billing, **JSON}, json={"note": "x" * 1001}
    )
    extra = await client.post(f"{url}/acknowledge", headers={**billing, **JSON}, json={"by": "me"})
    nul = await client.post(
        f"{url}/acknowledge", headers={**billing, **JSON}, json={"note": "a\u0000"}
    )

    assert missing.status_code == 404 and error_code(missing) == "incident_not_found"
    assert missing_step.status_code == 404 and error_code(missing_step) == "incident_not_found"
    for response in (too_long, extra, nul):
        assert response.status_code == 422, response.text
    assert (await client.get(url, headers=READER)).json()["state"] == "open"


async def test_a_reading_key_may_not_step_an_incident(
    client: httpx.AsyncClient, db: Database
) -> None:
    incident_id = await file(db, IncidentKind.CLOCK_SKEW, device="lock-1")

    response = await client.post(f"/v1/quality/incidents/{incident_id}/resolve", headers=READER)

    assert response.status_code == 403 and error_code(response) == "forbidden"
    shown = await client.get(f"/v1/quality/incidents/{incident_id}", headers=READER)
    assert shown.json()["state"] == "open"
