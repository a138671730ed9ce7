"""Hostile and odd input on the real app (SQLite and PostgreSQL): every value beyond the
contract's bounds is refused with our JSON error body or rejected as its own record (index or row,
field, reason), the rest of the request or file is stored, and an import is recorded and can be
run again. Before these bounds each case here was a 500 on one backend or both, or was read
silently (a CloudEvents time that is not RFC 3339, nanoseconds dropped, a wall time that happens
twice)."""

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cloud.db import Database
from cloud.direct.files import MAX_CELL
from cloud.direct.models import ImportRun
from cloud.incidents.models import Incident
from cloud.ingest.models import StoredEvent
from shared.bounds import MAX_JSON_DEPTH
from tests.cloud.conftest import error_code
from tests.cloud.direct.conftest import (
    CE_SOURCE,
    EVENT_TYPE,
    MAPPING,
    SOURCE_ID,
    bearer,
    quantity_reason,
)

GATEWAY = f"source:{SOURCE_ID}"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
RFC3339_HINT = "is not an RFC 3339 time (YYYY-MM-DDTHH:MM:SS[.fraction] then Z or ±HH:MM)"
INT64 = "integer is outside the signed 64-bit range: send larger numbers as decimal strings"
CHANNEL_MAPPING: dict[str, Any] = {
    **MAPPING,
    "types": [{**MAPPING["types"][0], "channel": "chute"}],
}


def event(event_id: str, **changes: Any) -> dict[str, Any]:
    """A CloudEvent document of the test source (a pour of 1.5 kg), with `changes`."""
    document = {
        "specversion": "1.0",
        "id": event_id,
        "source": CE_SOURCE,
        "type": EVENT_TYPE,
        "subject": "bin-1",
        "time": "2026-11-01T08:00:00Z",
        "data": {"kg": "1.5"},
    }
    document.update(changes)
    return document


def nested_text(depth: int) -> str:
    """The JSON text of arrays `depth` deep (too deep for json.loads or json.dumps at 990)."""
    return "[" * depth + "]" * depth


def nested(depth: int) -> Any:
    """A JSON value `depth` arrays deep."""
    return json.loads(nested_text(depth))


async def create(admin: httpx.AsyncClient, mapping: dict[str, Any] = MAPPING) -> str:
    """The test source with `mapping`; the secret of an ingest key."""
    created = await admin.post("/v1/sources", json={"id": SOURCE_ID, "mapping": mapping})
    assert created.status_code == 201, created.text
    issued = await admin.post(f"/v1/sources/{SOURCE_ID}/keys", json={"name": "sender"})
    assert issued.status_code == 201, issued.text
    secret: str = issued.json()["secret"]
    return secret


async def post_events(
    admin: httpx.AsyncClient, key: str, body: bytes, content_type: str
) -> httpx.Response:
    """POST /v1/events with the ingest key."""
    headers = {"Content-Type": content_type, **bearer(key)}
    return await admin.post("/v1/events", content=body, headers=headers)


async def stored_events(db: Database) -> list[StoredEvent]:
    """The source's stored events in seq order."""
    async with db.transaction() as session:
        query = select(StoredEvent).where(StoredEvent.gateway_id == GATEWAY)
        return list(await session.scalars(query.order_by(StoredEvent.seq)))


async def import_runs(db: Database) -> list[ImportRun]:
    """The recorded imports, oldest first."""
    async with db.transaction() as session:
        return list(await session.scalars(select(ImportRun).order_by(ImportRun.id)))


async def incident_details(db: Database) -> list[str]:
    """The details of the source gateway's rejected-event incidents."""
    async with db.transaction() as session:
        query = select(Incident.detail).where(
            Incident.gateway_id == GATEWAY, Incident.kind == "rejected_event"
        )
        return list(await session.scalars(query.order_by(Incident.id)))


# -- CloudEvents ----------------------------------------------------------------------------------

SURROGATE_ID = "\\ud800"  # JSON text of a lone surrogate: orjson refuses it, json reads it

# (name, the event's JSON text, field, reason): each was a 500 or was taken as it should not be.
BAD_EVENTS = [
    ("time-overflow", json.dumps(event("b", time="0001-01-01T00:00:00+01:00")), "time",
     "'0001-01-01T00:00:00+01:00': time is outside the supported range"),
    ("time-9999", json.dumps(event("b", time="9999-12-31T23:59:59-01:00")), "time",
     "'9999-12-31T23:59:59-01:00': time is outside the supported range"),
    ("time-1900", json.dumps(event("b", time="1900-01-01T00:00:00Z")), "time",
     "'1900-01-01T00:00:00Z': time must lie in [1970, 9000)"),
    ("time-space", json.dumps(event("b", time="2026-11-01 08:00:00Z")), "time",
     f"'2026-11-01 08:00:00Z' {RFC3339_HINT}"),
    ("time-no-seconds", json.dumps(event("b", time="2026-11-01T08:00Z")), "time",
     f"'2026-11-01T08:00Z' {RFC3339_HINT}"),
    ("time-basic", json.dumps(event("b", time="20261101T080000Z")), "time",
     f"'20261101T080000Z' {RFC3339_HINT}"),
    ("nul-id", json.dumps(event("b\x00")), "id", "text may not contain U+0000 (at character 1)"),
    ("nul-subject", json.dumps(event("b", subject="bin\x00")), "subject",
     "text may not contain U+0000 (at character 3)"),
    ("nul-type", json.dumps(event("b", type="t\x00")), "type",
     "text may not contain U+0000 (at character 1)"),
    ("nul-source", json.dumps(event("b", source="urn:\x00")), "source",
     "text may not contain U+0000 (at character 4)"),
    ("nul-data", json.dumps(event("b", data={"kg": "1", "note": "a\x00"})), "data.note",
     "text may not contain U+0000 (at character 1)"),
    ("nul-quantity", json.dumps(event("b", data={"kg": "1\x00"})), "data.kg",
     "text may not contain U+0000 (at character 1)"),
    ("surrogate-id", json.dumps(event("b")).replace('"b"', f'"{SURROGATE_ID}"', 1), "id",
     "text may not contain U+D800 (at character 0)"),
    ("big-int", json.dumps(event("b", data={"kg": "1", "n": 10**30})), "data.n", INT64),
    ("u64", json.dumps(event("b", data={"kg": "1", "n": 2**64 - 1})), "data.n", INT64),
    ("big-int-quantity", json.dumps(event("b", data={"kg": 2**70})), "data.kg", INT64),
    ("deep-data", json.dumps(event("b", data={"kg": "1", "n": nested(40)})),
     "data.n" + "[0]" * (MAX_JSON_DEPTH - 1), f"is nested deeper than {MAX_JSON_DEPTH} levels"),
    ("underscore", json.dumps(event("b", data={"kg": "1_000"})), "kg",
     quantity_reason("1_000")),
    ("arabic-indic", json.dumps(event("b", data={"kg": "\u0661\u0662"})), "kg",
     quantity_reason("\u0661\u0662")),
]  # fmt: skip
BAD_IDS = [case[0] for case in BAD_EVENTS]


@pytest.mark.parametrize(("name", "text", "field", "reason"), BAD_EVENTS, ids=BAD_IDS)
async def test_a_structured_event_beyond_the_bounds_is_invalid_event(
    admin: httpx.AsyncClient, db: Database, name: str, text: str, field: str, reason: str
) -> None:
    """Structured mode: 422 invalid_event naming the attribute; nothing stored; the refusal is
    a data-quality incident whose text can be stored."""
    key = await create(admin)

    response = await post_events(admin, key, text.encode(), STRUCTURED)

    assert response.status_code == 422, response.text
    assert error_code(response) == "invalid_event"
    detail = response.json()["error"]["detail"]
    assert (detail["field"], detail["reason"]) == (field, reason)
    assert detail["id"] == (None if name in ("nul-id", "surrogate-id") else "b")
    assert await stored_events(db) == []
    assert [
        d.startswith(f"1 record(s) rejected: #0 {field}: ") for d in await incident_details(db)
    ] == [True]


@pytest.mark.parametrize(("name", "text", "field", "reason"), BAD_EVENTS, ids=BAD_IDS)
async def test_a_bad_event_in_a_batch_is_rejected_alone(
    admin: httpx.AsyncClient, db: Database, name: str, text: str, field: str, reason: str
) -> None:
    """Batch mode: the bad event is listed (index, id when storable, field, reason) and the
    good events before and after it are stored."""
    key = await create(admin)
    body = f"[{json.dumps(event('a'))}, {text}, {json.dumps(event('c'))}]".encode()

    response = await post_events(admin, key, body, BATCH)

    assert response.status_code == 200, response.text
    receipt = response.json()
    assert (receipt["received"], receipt["stored"]) == (3, 2)
    bad_id = None if name in ("nul-id", "surrogate-id") else "b"
    assert receipt["rejected"] == [{"position": 1, "id": bad_id, "field": field, "reason": reason}]
    assert [e.attrs["origin_id"] for e in await stored_events(db)] == ["a", "c"]


async def test_a_body_nested_too_deep_is_refused_whole(
    admin: httpx.AsyncClient, db: Database
) -> None:
    """data nested 500 deep (in a body with a float, so read by the exact parser): 400
    malformed_json before any event is read, and nothing stored."""
    key = await create(admin)
    text = json.dumps(event("b", data={"kg": 1.5, "n": "N"})).replace('"N"', nested_text(500))

    for body, content_type in ((text, STRUCTURED), (f"[{json.dumps(event('a'))}, {text}]", BATCH)):
        response = await post_events(admin, key, body.encode(), content_type)
        assert response.status_code == 400, response.text
        assert error_code(response) == "malformed_json"
        assert response.json()["error"]["message"] == (
            "body is nested 502 levels deep; at most 64 are read"
            if content_type == STRUCTURED
            else "body is nested 503 levels deep; at most 64 are read"
        )
    assert await stored_events(db) == []


async def test_a_nul_channel_is_rejected_on_both_backends(
    admin: httpx.AsyncClient, db: Database
) -> None:
    """A channel read from data with NUL (PostgreSQL cannot store it) is rejected by name."""
    key = await create(admin, CHANNEL_MAPPING)
    bad = event("b", data={"kg": "1", "chute": "A\x00"})
    body = json.dumps([event("a", data={"kg": "1", "chute": "A"}), bad]).encode()

    response = await post_events(admin, key, body, BATCH)

    assert response.status_code == 200, response.text
    assert response.json()["rejected"] == [
        {"position": 1, "id": "b", "field": "data.chute",
         "reason": "text may not contain U+0000 (at character 1)"}
    ]  # fmt: skip
    assert [e.channel for e in await stored_events(db)] == ["A"]


@pytest.mark.parametrize(
    ("sent", "instant", "kept"),
    [
        ("2026-11-01T08:00:00.123456789Z", datetime(2026, 11, 1, 8, 0, 0, 123456, tzinfo=UTC),
         "2026-11-01T08:00:00.123456789Z"),
        ("2026-11-01t09:00:00.000000001+01:00", datetime(2026, 11, 1, 8, tzinfo=UTC),
         "2026-11-01t09:00:00.000000001+01:00"),
        ("2026-11-01T08:00:00.123456000z", datetime(2026, 11, 1, 8, 0, 0, 123456, tzinfo=UTC),
         None),
        ("2026-11-01T08:00:00-00:00", datetime(2026, 11, 1, 8, tzinfo=UTC), None),
    ],
    ids=["nanoseconds", "lower-case-and-offset", "zero-nanoseconds", "unknown-offset"],
)  # fmt: skip
async def test_a_time_finer_than_microseconds_keeps_its_text(
    admin: httpx.AsyncClient, db: Database, sent: str, instant: datetime, kept: str | None
) -> None:
    """Stored truncated to microseconds; the text as sent is in attrs ce_time unless the extra
    digits are zeros."""
    key = await create(admin)

    response = await post_events(admin, key, json.dumps(event("a", time=sent)).encode(), STRUCTURED)

    assert response.status_code == 200, response.text
    [stored] = await stored_events(db)
    assert stored.occurred_at == instant
    assert stored.attrs.get("ce_time") == kept


# -- imports ---------------------------------------------------------------------------------------

GOOD_ROW = "t{n},bin-1,2026-11-02T08:00:00Z,1"


async def upload(
    admin: httpx.AsyncClient, body: bytes, filename: str, **params: str
) -> dict[str, Any]:
    """POST a file to /v1/imports; the report of an import that must be answered."""
    query = {"source": SOURCE_ID, "filename": filename, **params}
    response = await admin.post("/v1/imports", params=query, content=body)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def csv_file(rows: list[str]) -> bytes:
    """A CSV of the test mapping's columns (txn, meter, ts, kg) with `rows`."""
    return ("txn,meter,ts,kg\n" + "\n".join(rows) + "\n").encode()


def jsonl_file(lines: list[str]) -> bytes:
    """A JSON Lines file of `lines`."""
    return ("\n".join(lines) + "\n").encode()


def jsonl_row(number: int, **changes: Any) -> str:
    """One good JSON Lines row (id j<number>), with `changes`."""
    row = {"txn": f"j{number}", "meter": "bin-1", "ts": "2026-11-02T08:00:00Z", "kg": "1"}
    return json.dumps({**row, **changes})


LONG_ID = "i" * 300
BAD_CSV_ROWS = [
    ("time-overflow", "b1,bin-1,0001-01-01T00:00:00+01:00,1", "b1", "ts",
     "'0001-01-01T00:00:00+01:00': time is outside the supported range"),
    ("time-1900", "b1,bin-1,1900-01-01T00:00:00Z,1", "b1", "ts",
     "'1900-01-01T00:00:00Z': time must lie in [1970, 9000)"),
    ("long-cell", f"b1,{'x' * (MAX_CELL + 5)},2026-11-02T08:00:00Z,1", "b1", "meter",
     f"is {MAX_CELL + 5:,} characters long, at most {MAX_CELL:,} are read"),
    ("nul-id", "b\x001,bin-1,2026-11-02T08:00:00Z,1", None, "txn",
     "text may not contain U+0000 (at character 1)"),
    ("nul-quantity", "b1,bin-1,2026-11-02T08:00:00Z,1\x00", "b1", "kg",
     "text may not contain U+0000 (at character 1)"),
    ("long-id", f"{LONG_ID},bin-1,2026-11-02T08:00:00Z,1", None, "txn",
     "is 300 characters long; a row id may have 255"),
    ("id-1024", f"{'i' * 1024},bin-1,2026-11-02T08:00:00Z,1", None, "txn",
     "is 1,024 characters long; a row id may have 255"),
    ("underscore", "b1,bin-1,2026-11-02T08:00:00Z,1_000", "b1", "kg",
     quantity_reason("1_000")),
    ("arabic-indic", "b1,bin-1,2026-11-02T08:00:00Z,\u0661\u0662", "b1", "kg",
     quantity_reason("\u0661\u0662")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "bad", "bad_id", "field", "reason"), BAD_CSV_ROWS, ids=[c[0] for c in BAD_CSV_ROWS]
)
async def test_a_bad_csv_row_is_rejected_and_the_import_recorded(
    admin: httpx.AsyncClient, db: Database, name: str, bad: str, bad_id: str | None, field: str,
    reason: str,
) -> None:  # fmt: skip
    """The bad row (row 3) is rejected with its number, the rows before and after it stored,
    the import recorded with the row error; a re-import repeats the report and stores nothing."""
    await create(admin)
    body = csv_file([GOOD_ROW.format(n=1), bad, GOOD_ROW.format(n=2)])
    error = {"position": 3, "id": bad_id, "field": field, "reason": reason}

    report = await upload(admin, body, "bad.csv")
    again = await upload(admin, body, "bad.csv")

    assert (report["rows"], report["stored"], report["rejected"], report["errors"]) == (
        3, 2, 1, [error]
    )  # fmt: skip
    assert (again["stored"], again["duplicates"], again["errors"]) == (0, 2, [error])
    assert [e.attrs["origin_id"] for e in await stored_events(db)] == ["t1", "t2"]
    assert [(run.stored, run.rejected, run.errors) for run in await import_runs(db)] == [
        (2, 1, [error]),
        (0, 1, [error]),
    ]


BAD_JSONL_ROWS = [
    ("990-deep", '{"txn": "b1", "x": ' + nested_text(990) + "}", None, "line",
     "is nested 991 levels deep; at most 32 are read"),
    ("time-overflow", jsonl_row(0, txn="b1", ts="0001-01-01T00:00:00+01:00"), "b1", "ts",
     "'0001-01-01T00:00:00+01:00': time is outside the supported range"),
    ("big-int", jsonl_row(0, txn="b1", n=2**64), "b1", "n", INT64),
    ("big-int-quantity", jsonl_row(0, txn="b1", kg=10**25), "b1", "kg", INT64),
    ("nul-meter", jsonl_row(0, txn="b1", meter="bin\x00"), "b1", "meter",
     "text may not contain U+0000 (at character 3)"),
    ("surrogate-id", jsonl_row(0, txn="b1").replace('"b1"', '"\\udfff"'), None, "txn",
     "text may not contain U+DFFF (at character 0)"),
    ("int-id-too-long", jsonl_row(0, txn=LONG_ID), None, "txn",
     "is 300 characters long; a row id may have 255"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "bad", "bad_id", "field", "reason"), BAD_JSONL_ROWS, ids=[c[0] for c in BAD_JSONL_ROWS]
)
async def test_a_bad_jsonl_row_is_rejected_and_the_import_recorded(
    admin: httpx.AsyncClient, db: Database, name: str, bad: str, bad_id: str | None, field: str,
    reason: str,
) -> None:  # fmt: skip
    """The bad line (line 2) is rejected with its number; lines 1 and 3 are stored; recorded."""
    await create(admin)
    body = jsonl_file([jsonl_row(1), bad, jsonl_row(3)])

    report = await upload(admin, body, "bad.jsonl")

    error = {"position": 2, "id": bad_id, "field": field, "reason": reason}
    assert (report["rows"], report["stored"], report["rejected"], report["errors"]) == (
        3, 2, 1, [error]
    )  # fmt: skip
    assert [e.attrs["origin_id"] for e in await stored_events(db)] == ["j1", "j3"]
    assert [(run.stored, run.rejected) for run in await import_runs(db)] == [(2, 1)]


async def test_bad_rows_across_a_chunk_boundary_do_not_abort_the_import(
    admin: httpx.AsyncClient, db: Database
) -> None:
    """6,000 rows (chunks of 5,000): an out-of-range time as the last row of the first chunk and
    a cell beyond the csv limit as the first of the second; every other row is stored, both are
    reported, the import is recorded, and a second run stores nothing and reports the same."""
    await create(admin)
    rows = [GOOD_ROW.format(n=n) for n in range(6_000)]
    rows[4_999] = "b1,bin-1,0001-01-01T00:00:00+01:00,1"  # row 5,001: the first chunk's last
    rows[5_000] = f"b2,bin-1,{'2' * (MAX_CELL + 1)},1"  # row 5,002: the second chunk's first
    body = csv_file(rows)
    errors = [
        {"position": 5_001, "id": "b1", "field": "ts",
         "reason": "'0001-01-01T00:00:00+01:00': time is outside the supported range"},
        {"position": 5_002, "id": "b2", "field": "ts",
         "reason": f"is {MAX_CELL + 1:,} characters long, at most {MAX_CELL:,} are read"},
    ]  # fmt: skip

    report = await upload(admin, body, "big.csv")
    again = await upload(admin, body, "big.csv")

    assert (report["rows"], report["stored"], report["rejected"], report["errors"]) == (
        6_000, 5_998, 2, errors
    )  # fmt: skip
    assert (again["stored"], again["duplicates"], again["errors"]) == (0, 5_998, errors)
    assert len(await stored_events(db)) == 5_998
    assert [(run.rows, run.stored, run.rejected) for run in await import_runs(db)] == [
        (6_000, 5_998, 2),
        (6_000, 0, 2),
    ]


async def test_a_deep_jsonl_line_across_a_chunk_boundary(
    admin: httpx.AsyncClient, db: Database
) -> None:
    """JSON Lines: a line nested 990 deep as line 5,000 (a RecursionError before) is rejected;
    the 5,999 other lines of both chunks are stored."""
    await create(admin)
    lines = [jsonl_row(n) for n in range(6_000)]
    lines[4_999] = '{"txn": "deep", "x": ' + nested_text(990) + "}"

    report = await upload(admin, jsonl_file(lines), "big.jsonl")

    assert (report["rows"], report["stored"], report["rejected"]) == (6_000, 5_999, 1)
    assert report["errors"] == [
        {"position": 5_000, "id": None, "field": "line",
         "reason": "is nested 991 levels deep; at most 32 are read"}
    ]  # fmt: skip
    assert [(run.stored, run.rejected) for run in await import_runs(db)] == [(5_999, 1)]


async def test_a_nul_channel_cell_is_rejected_on_both_backends(
    admin: httpx.AsyncClient, db: Database
) -> None:
    """A channel column with NUL (PostgreSQL cannot store it) is rejected by column."""
    await create(admin, {**CHANNEL_MAPPING, "ce_sources": []})
    body = (
        b"txn,meter,ts,kg,chute\n"
        b"t1,bin-1,2026-11-02T08:00:00Z,1,A\n"
        b"t2,bin-1,2026-11-02T08:00:00Z,1,B\x00\n"
    )

    report = await upload(admin, body, "chutes.csv")

    assert report["errors"] == [
        {"position": 3, "id": "t2", "field": "chute",
         "reason": "text may not contain U+0000 (at character 1)"}
    ]  # fmt: skip
    assert [e.channel for e in await stored_events(db)] == ["A"]


# -- local times around DST changes ----------------------------------------------------------------

BERLIN_FILES = {"device": "meter", "time": "ts", "time_zone": "Europe/Berlin"}


def berlin_mapping(**rules: str) -> dict[str, Any]:
    """A files-only mapping without an id column, Berlin wall time, and `rules`."""
    return {**MAPPING, "ce_sources": [], "files": {**BERLIN_FILES, **rules}}


TWO_POURS = (  # two real pours of the repeated hour: CEST 02:30 (00:30Z), then CET 02:30 (01:30Z)
    b"meter,ts,kg\n"
    b"bin-1,2026-10-25T01:00:00,1\n"
    b"bin-1,2026-10-25T02:30:00,2\n"
    b"bin-1,2026-10-25T02:30:00+01:00,2\n"
    b"bin-1,2026-03-29T02:30:00,3\n"
    b"bin-1,2026-10-25T04:00:00,4\n"
)


async def test_wall_times_that_happen_twice_or_never_are_refused_by_default(
    admin: httpx.AsyncClient, db: Database
) -> None:
    """Without a rule the repeated and the skipped wall time are rejected with a clear reason;
    the rest (an explicit offset included) is stored."""
    await create(admin, berlin_mapping())

    report = await upload(admin, TWO_POURS, "dst.csv")

    assert report["errors"] == [
        {"position": 3, "id": None, "field": "ts",
         "reason": "02:30 on 2026-10-25 happens twice in Europe/Berlin (at +02:00 and +01:00); "
                   "add an offset or set files.ambiguous_times"},
        {"position": 5, "id": None, "field": "ts",
         "reason": "02:30 on 2026-03-29 does not exist in Europe/Berlin (the clocks skip it); "
                   "add an offset or set files.missing_times"},
    ]  # fmt: skip
    assert [e.occurred_at for e in await stored_events(db)] == [
        datetime(2026, 10, 24, 23, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 3, tzinfo=UTC),
    ]


@pytest.mark.parametrize(
    ("rules", "repeated", "skipped", "notes"),
    [
        ({"ambiguous_times": "earlier", "missing_times": "shift_forward"},
         datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
         ["ambiguous_times = earlier", "missing_times = shift_forward"]),
        ({"ambiguous_times": "later", "missing_times": "shift_forward"},
         datetime(2026, 10, 25, 1, 30, tzinfo=UTC), datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
         ["ambiguous_times = later", "missing_times = shift_forward"]),
    ],
    ids=["earlier", "later"],
)  # fmt: skip
async def test_a_rule_resolves_wall_times_and_the_events_say_so(
    admin: httpx.AsyncClient,
    db: Database,
    rules: dict[str, str],
    repeated: datetime,
    skipped: datetime,
    notes: list[str],
) -> None:
    """earlier reads the repeated 02:30 as CEST, later as CET; shift_forward reads the skipped
    02:30 as 03:30 CEST. Resolved events keep the wall time and the rule in attrs. With
    `earlier` the CET pour (given with its offset) stays a second event: the content key is
    the instant, not the wall time."""
    await create(admin, berlin_mapping(**rules))

    report = await upload(admin, TWO_POURS, "dst.csv")

    stored = await stored_events(db)
    assert (report["stored"], report["duplicates"], report["rejected"]) == (
        (5, 0, 0) if rules["ambiguous_times"] == "earlier" else (4, 1, 0)
    )
    times = [e.occurred_at for e in stored]
    assert repeated in times and skipped in times
    assert [
        (e.attrs["local_time"], e.attrs["local_time_rule"])
        for e in stored
        if "local_time" in e.attrs
    ] == [
        ("2026-10-25T02:30:00", notes[0]),
        ("2026-03-29T02:30:00", notes[1]),
    ]


async def test_two_pours_resolved_differently_keep_distinct_keys(
    admin: httpx.AsyncClient, db: Database
) -> None:
    """The earlier and the later occurrence of 02:30 become two events with two content keys
    (no id column), and a re-import knows both."""
    await create(admin, berlin_mapping(ambiguous_times="earlier"))
    body = b"meter,ts,kg\nbin-1,2026-10-25T02:30:00,2\nbin-1,2026-10-25T02:30:00+01:00,2\n"

    first = await upload(admin, body, "pours.csv")
    again = await upload(admin, body, "pours.csv")

    stored = await stored_events(db)
    assert [e.occurred_at for e in stored] == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
    ]
    assert len({e.attrs["origin_id"] for e in stored}) == 2
    assert (first["stored"], again["stored"], again["duplicates"]) == (2, 0, 2)


async def test_local_time_rules_need_a_time_zone(admin: httpx.AsyncClient) -> None:
    """ambiguous_times without files.time_zone is a mapping error (422), not silently unused."""
    mapping = {**MAPPING, "files": {"device": "meter", "time": "ts", "ambiguous_times": "later"}}
    response = await admin.post("/v1/sources", json={"id": SOURCE_ID, "mapping": mapping})
    assert response.status_code == 422, response.text
    assert "ambiguous_times and missing_times apply only with a time_zone" in response.text
