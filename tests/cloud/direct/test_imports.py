"""`POST /v1/imports` on the real app (SQLite and PostgreSQL): good rows stored once with their
origin, re-imports store nothing twice, dry runs store nothing, bad rows are reported by row,
field and reason while the good rows of the same file are stored, unreadable files are refused
whole, and only the source's ingest key or an admin key may import."""

import gzip
import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from cloud.db import Database
from cloud.direct.models import ImportRun
from cloud.ingest.models import StoredEvent
from tests.cloud.conftest import counts, error_code, http_client
from tests.cloud.direct.conftest import (
    MAPPING,
    SOURCE_ID,
    bearer,
    create_source,
    quantity_reason,
)

DATA = Path(__file__).parent / "data"
GATEWAY = f"source:{SOURCE_ID}"
LEGACY = "legacy"  # a source whose files carry a type column
LEGACY_MAPPING: dict[str, Any] = {
    "files": {"device": "meter", "time": "ts", "id": "txn", "type": "type"},
    "types": [
        {"type": "pour", "name": "pour", "kind": "measurement", "quantity": "kg", "unit": "kg"},
        {"type": "door", "name": "door", "kind": "activation"},
    ],
}
NO_ID_MAPPING: dict[str, Any] = {
    **MAPPING,
    "ce_sources": [],
    "files": {"device": "meter", "time": "ts"},
}
BERLIN_MAPPING: dict[str, Any] = {
    **MAPPING,
    "ce_sources": [],
    "files": {**MAPPING["files"], "time_zone": "Europe/Berlin"},
}
NOV_2 = datetime(2026, 11, 2, tzinfo=UTC)

METERS = [  # what data/meters.csv and data/meters.jsonl hold, in UTC
    ("bin-1", NOV_2.replace(hour=8), Decimal("1.5")),
    ("bin-1", NOV_2.replace(hour=8), Decimal("2.25")),
    ("bin-2", NOV_2.replace(hour=8, minute=30), Decimal("10")),
]
BAD_ROWS_CSV = [  # data/bad_rows.csv: rows 2 and 8 are good
    {"position": 3, "id": "r3", "field": "ts", "reason": "'yesterday' is not an RFC 3339 time"},
    {"position": 4, "id": "r4", "field": "meter", "reason": "a device id is required"},
    {"position": 5, "id": "r5", "field": "type", "reason": "no mapping for type 'spill'"},
    {
        "position": 6,
        "id": "r6",
        "field": "kg",
        "reason": quantity_reason("abc"),
    },
    {"position": 7, "id": None, "field": "row", "reason": "has 3 fields, the header has 5"},
]
BAD_ROWS_JSONL = [  # data/bad_rows.jsonl: lines 1 and 7 are good
    {"position": 2, "id": "l2", "field": "ts", "reason": "'yesterday' is not an RFC 3339 time"},
    {"position": 3, "id": "l3", "field": "meter", "reason": "a device id is required"},
    {"position": 4, "id": "l4", "field": "type", "reason": "no mapping for type 'spill'"},
    {
        "position": 5,
        "id": "l5",
        "field": "kg",
        "reason": quantity_reason("abc"),
    },
    {
        "position": 6,
        "id": None,
        "field": "line",
        "reason": "is not valid JSON: Expecting ',' delimiter: line 1 column 86 (char 85)",
    },
]


def without_id(error: dict[str, Any]) -> dict[str, Any]:
    """An error body without its id (each answer has its own, logged with it)."""
    assert error["id"].startswith("e-")
    return {name: value for name, value in error.items() if name != "id"}


def data(name: str) -> bytes:
    """A fixture file's bytes."""
    return (DATA / name).read_bytes()


async def upload(
    client: httpx.AsyncClient,
    body: bytes,
    *,
    filename: str,
    source: str = SOURCE_ID,
    headers: dict[str, str] | None = None,
    **params: str,
) -> httpx.Response:
    """POST a file to /v1/imports."""
    query = {"source": source, "filename": filename, **params}
    return await client.post("/v1/imports", params=query, content=body, headers=headers)


async def imported(client: httpx.AsyncClient, body: bytes, **kwargs: Any) -> dict[str, Any]:
    """The report of an import that must succeed."""
    response = await upload(client, body, **kwargs)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def totals(report: dict[str, Any]) -> tuple[int, int, int, int]:
    """(rows, stored, duplicates, rejected) of a report."""
    return report["rows"], report["stored"], report["duplicates"], report["rejected"]


async def events(db: Database, gateway_id: str = GATEWAY) -> list[StoredEvent]:
    """A gateway's stored events, in seq order."""
    async with db.transaction() as session:
        query = select(StoredEvent).where(StoredEvent.gateway_id == gateway_id)
        return list(await session.scalars(query.order_by(StoredEvent.seq)))


async def import_runs(db: Database) -> list[ImportRun]:
    """The recorded imports, oldest first."""
    async with db.transaction() as session:
        return list(await session.scalars(select(ImportRun).order_by(ImportRun.id)))


async def event_count(db: Database) -> int:
    """All stored events, of any gateway."""
    async with db.transaction() as session:
        return await session.scalar(select(func.count()).select_from(StoredEvent)) or 0


def meaning(event: StoredEvent) -> tuple[str, datetime, Decimal | None]:
    """(device, occurred_at, quantity) of a stored event."""
    return event.device_id, event.occurred_at, event.quantity


# -- storing ---------------------------------------------------------------------------------------


async def test_a_csv_import_stores_each_row_once_with_its_origin(
    admin: httpx.AsyncClient, ingest_key: str, db: Database
) -> None:
    """Three CSV rows: three events of gateway source:acme carrying file, row and id."""
    body = data("meters.csv")

    report = await imported(admin, body, filename="meters.csv", headers=bearer(ingest_key))

    assert report == {
        "source": SOURCE_ID,
        "filename": "meters.csv",
        "file_format": "csv",
        "sha256": hashlib.sha256(body).hexdigest(),
        "dry_run": False,
        "rows": 3,
        "stored": 3,
        "duplicates": 0,
        "rejected": 0,
        "errors": [],
        "errors_truncated": False,
        "import_id": 1,
        "queued": False,
    }
    stored = await events(db)
    assert [(e.seq, *meaning(e)) for e in stored] == [(n, *m) for n, m in enumerate(METERS, 1)]
    assert [e.attrs for e in stored] == [
        {"origin": "import", "origin_id": txn, "import_file": "meters.csv", "import_row": row}
        for txn, row in (("t1", 2), ("t2", 3), ("t3", 4))
    ]
    assert {(e.name, e.kind, e.unit, e.clock) for e in stored} == {
        ("pour", "measurement", "kg", "device")
    }
    (run,) = await import_runs(db)
    assert (run.source_id, run.filename, run.file_format, run.sha256) == (
        SOURCE_ID,
        "meters.csv",
        "csv",
        report["sha256"],
    )
    assert (run.rows, run.stored, run.duplicates, run.rejected, run.errors) == (3, 3, 0, 0, [])
    view = (await admin.get(f"/v1/sources/{SOURCE_ID}")).json()
    assert (view["gateway_id"], view["events_stored"], view["last_seq"]) == (GATEWAY, 3, 3)


async def test_a_jsonl_import_numbers_rows_by_line(admin: httpx.AsyncClient, db: Database) -> None:
    """JSON Lines: the same three events, rows numbered by line (line 3 is blank)."""
    await create_source(admin)

    report = await imported(admin, data("meters.jsonl"), filename="meters.jsonl")

    assert (report["file_format"], totals(report), report["errors"]) == ("jsonl", (3, 3, 0, 0), [])
    stored = await events(db)
    assert [meaning(e) for e in stored] == METERS
    assert [(e.attrs["origin_id"], e.attrs["import_row"]) for e in stored] == [
        ("j1", 1),
        ("j2", 2),
        ("j3", 4),
    ]
    assert {e.attrs["origin"] for e in stored} == {"import"}
    assert {e.attrs["import_file"] for e in stored} == {"meters.jsonl"}


# -- idempotency -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["meters.csv", "meters.jsonl"])
async def test_reimporting_a_file_stores_nothing_twice(
    admin: httpx.AsyncClient, db: Database, name: str
) -> None:
    """The same file again: stored 0, every row a duplicate, the chain unchanged."""
    await create_source(admin)
    await imported(admin, data(name), filename=name)
    before = [e.hash for e in await events(db)]

    again = await imported(admin, data(name), filename=name)

    assert totals(again) == (3, 0, 3, 0)
    assert [e.hash for e in await events(db)] == before and len(before) == 3
    assert [(r.stored, r.duplicates) for r in await import_runs(db)] == [(3, 0), (0, 3)]


async def test_without_an_id_column_a_row_is_known_by_its_meaning(
    admin: httpx.AsyncClient, db: Database
) -> None:
    """No id column: the id is the SHA-256 of the row's meaning, so a re-import stores nothing."""
    await create_source(admin, mapping=NO_ID_MAPPING)
    body = data("meters.csv").replace(b"txn,", b"ref,")  # a column the mapping does not read

    first = await imported(admin, body, filename="meters.csv")
    again = await imported(admin, body, filename="meters.csv")

    assert (totals(first), totals(again)) == ((3, 3, 0, 0), (3, 0, 3, 0))
    stored = await events(db)
    assert [e.attrs["origin_id"] for e in stored] == [content_sha256(e) for e in stored]
    assert len({e.attrs["origin_id"] for e in stored}) == 3


def content_sha256(event: StoredEvent) -> str:
    """The SHA-256 of an event's meaning as canonical JSON (sorted keys, no spaces)."""
    document = {
        "device_id": event.device_id,
        "channel": event.channel,
        "name": event.name,
        "kind": event.kind,
        "quantity": None if event.quantity is None else str(event.quantity),
        "unit": event.unit,
        "occurred_at": event.occurred_at.isoformat(),
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def test_without_an_id_column_the_same_events_written_otherwise_are_duplicates(
    admin: httpx.AsyncClient, db: Database
) -> None:
    """The JSONL file holds the CSV's events (other offsets, file name, row numbers): all known."""
    await create_source(admin, mapping=NO_ID_MAPPING)
    await imported(admin, data("meters.csv"), filename="meters.csv")

    other = await imported(admin, data("meters.jsonl"), filename="export-2.jsonl")

    assert totals(other) == (3, 0, 3, 0)
    assert {e.attrs["import_file"] for e in await events(db)} == {"meters.csv"}


@pytest.mark.parametrize(
    ("mapping", "body"),
    [
        (
            MAPPING,
            b"txn,meter,ts,kg\nt1,bin-1,2026-11-02T08:00:00Z,1.5\nt1,bin-1,2026-11-02T08:00:00Z,1.5\n",
        ),
        (
            NO_ID_MAPPING,
            b"meter,ts,kg\nbin-1,2026-11-02T08:00:00Z,1.5\nbin-1,2026-11-02T09:00:00+01:00,1.50\n",
        ),
    ],
    ids=["id-column", "no-id-column"],
)
async def test_the_same_row_twice_in_one_file_is_stored_once(
    admin: httpx.AsyncClient, db: Database, mapping: dict[str, Any], body: bytes
) -> None:
    """A file repeating a row (by id, or by meaning): stored once, the repeat a duplicate."""
    await create_source(admin, mapping=mapping)

    report = await imported(admin, body, filename="twice.csv")

    assert totals(report) == (2, 1, 1, 0)
    assert [(e.attrs["import_row"], *meaning(e)) for e in await events(db)] == [
        (2, "bin-1", NOV_2.replace(hour=8), Decimal("1.5"))
    ]


# -- dry runs --------------------------------------------------------------------------------------


async def test_a_dry_run_reports_what_the_import_stores_and_stores_nothing(
    admin: httpx.AsyncClient, db: Database
) -> None:
    """Dry run on a file with stored, repeated and bad rows: the real import's report, no writes."""
    await create_source(admin, LEGACY, LEGACY_MAPPING)
    await imported(  # row r8 is known before
        admin,
        b"txn,meter,ts,type,kg\nr8,bin-2,2026-11-02T08:05:00Z,door,\n",
        filename="early.csv",
        source=LEGACY,
    )
    body = data("bad_rows.csv") + b"r2,bin-1,2026-11-02T08:00:00Z,pour,1.5\n"  # row 9 repeats 2
    before, runs = await counts(db), len(await import_runs(db))

    dry = await imported(admin, body, filename="bad_rows.csv", source=LEGACY, dry_run="true")

    assert (await counts(db), len(await import_runs(db))) == (before, runs)
    assert dry["dry_run"] is True and dry["import_id"] is None
    assert (totals(dry), dry["errors"]) == ((8, 1, 2, 5), BAD_ROWS_CSV)
    real = await imported(admin, body, filename="bad_rows.csv", source=LEGACY)
    assert {**real, "dry_run": True, "import_id": None} == dry
    assert len(await events(db, f"source:{LEGACY}")) == 2


async def test_a_dry_run_of_a_fresh_file_counts_every_good_row(
    admin: httpx.AsyncClient, db: Database
) -> None:
    """Nothing stored yet: a dry run would store every row; afterwards still no events, no run."""
    await create_source(admin)

    dry = await imported(admin, data("meters.csv"), filename="meters.csv", dry_run="true")

    assert (totals(dry), dry["dry_run"]) == ((3, 3, 0, 0), True)
    assert (await event_count(db), await import_runs(db)) == (0, [])


# -- bad rows --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "errors", "good_rows"),
    [("bad_rows.csv", BAD_ROWS_CSV, [2, 8]), ("bad_rows.jsonl", BAD_ROWS_JSONL, [1, 7])],
)
async def test_each_bad_row_is_reported_and_the_good_rows_stored(
    admin: httpx.AsyncClient,
    db: Database,
    name: str,
    errors: list[dict[str, Any]],
    good_rows: list[int],
) -> None:
    """Bad time, no device, unknown type, bad quantity, bad shape: row, field, reason each."""
    await create_source(admin, LEGACY, LEGACY_MAPPING)

    report = await imported(admin, data(name), filename=name, source=LEGACY)

    assert (totals(report), report["errors"], report["errors_truncated"]) == (
        (7, 2, 0, 5),
        errors,
        False,
    )
    stored = await events(db, f"source:{LEGACY}")
    assert [(e.attrs["import_row"], e.name, e.quantity) for e in stored] == [
        (good_rows[0], "pour", Decimal("1.5")),
        (good_rows[1], "door", None),
    ]
    (run,) = await import_runs(db)
    assert (run.rejected, run.errors) == (5, errors)
    view = (await admin.get(f"/v1/sources/{LEGACY}")).json()
    assert view["incidents"]["rejected_event"] == 1


async def test_a_row_with_a_latin1_byte_is_rejected_alone(
    admin: httpx.AsyncClient, db: Database
) -> None:
    """A latin-1 'é' in one row: that row is rejected as not UTF-8 (its id still named), the
    others are stored."""
    await create_source(admin)
    body = data("meters.csv").replace(b"t2,bin-1", b"t2,bin-\xe9")

    report = await imported(admin, body, filename="meters.csv")

    assert totals(report) == (3, 2, 0, 1)
    assert report["errors"] == [
        {"position": 3, "id": "t2", "field": "meter", "reason": "is not valid UTF-8 (byte 0xE9)"}
    ]
    assert [e.attrs["origin_id"] for e in await events(db)] == ["t1", "t3"]


async def test_a_header_that_is_not_utf8_refuses_the_whole_file(
    admin: httpx.AsyncClient, db: Database
) -> None:
    """A latin-1 byte in the header: 422 invalid_import, nothing stored, no import recorded."""
    await create_source(admin)
    before = await counts(db)
    body = data("meters.csv").replace(b"meter", b"m\xe8ter", 1)

    response = await upload(admin, body, filename="meters.csv")

    assert response.status_code == 422
    assert without_id(response.json()["error"]) == {
        "code": "invalid_import",
        "message": "the header row is not valid UTF-8 (1 column name(s))",
        "detail": {"row": 1},
    }
    assert (await counts(db), await import_runs(db)) == (before, [])


async def test_a_missing_mapped_column_refuses_the_whole_file(
    admin: httpx.AsyncClient, db: Database
) -> None:
    """No `ts` column: 422 invalid_import naming it, nothing stored."""
    await create_source(admin)
    before = await counts(db)
    body = b"txn,meter,kg\nt1,bin-1,1.5\n"

    response = await upload(admin, body, filename="meters.csv", dry_run="true")
    real = await upload(admin, body, filename="meters.csv")

    assert response.status_code == real.status_code == 422
    assert without_id(response.json()["error"]) == without_id(real.json()["error"])
    assert without_id(real.json()["error"]) == {
        "code": "invalid_import",
        "message": "the file has no column 'ts' (the mapping needs meter, ts, txn, kg)",
        "detail": {"missing_columns": ["ts"], "columns": ["txn", "meter", "kg"]},
    }
    assert (await counts(db), await import_runs(db)) == (before, [])


async def test_a_missing_quantity_column_every_row_needs_refuses_the_file(
    admin: httpx.AsyncClient, db: Database
) -> None:
    """No `kg` column while the only type rule reads `kg`: refused whole, naming `kg`."""
    await create_source(admin)

    response = await upload(
        admin, b"txn,meter,ts\nt1,bin-1,2026-11-02T08:00:00Z\n", filename="meters.csv"
    )

    assert response.status_code == 422, response.text
    assert error_code(response) == "invalid_import" and "'kg'" in response.text
    assert await import_runs(db) == []


# -- time zones ------------------------------------------------------------------------------------


async def test_naive_times_are_read_in_the_files_time_zone(
    admin: httpx.AsyncClient, db: Database
) -> None:
    """files.time_zone = Europe/Berlin: winter +1, summer +2, both sides of both DST switches."""
    await create_source(admin, mapping=BERLIN_MAPPING)

    report = await imported(admin, data("berlin.csv"), filename="berlin.csv")

    assert totals(report) == (6, 6, 0, 0)
    assert [(e.attrs["origin_id"], e.occurred_at) for e in await events(db)] == [
        ("w1", datetime(2026, 1, 15, 8, tzinfo=UTC)),
        ("s1", datetime(2026, 7, 15, 7, tzinfo=UTC)),
        ("d1", datetime(2026, 3, 29, 0, 30, tzinfo=UTC)),  # before the spring switch (02:00)
        ("d2", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),  # after it
        ("o1", datetime(2026, 10, 25, 2, 30, tzinfo=UTC)),  # after the autumn switch (03:00)
        ("z1", datetime(2026, 7, 15, 9, tzinfo=UTC)),  # an explicit offset wins over the zone
    ]


async def test_naive_times_without_a_time_zone_are_rejected(
    admin: httpx.AsyncClient, db: Database
) -> None:
    """Without files.time_zone a time without offset is rejected; the row with one is stored."""
    await create_source(admin)

    report = await imported(admin, data("berlin.csv"), filename="berlin.csv")

    assert totals(report) == (6, 1, 0, 5)
    assert report["errors"][0] == {
        "position": 2,
        "id": "w1",
        "field": "ts",
        "reason": "'2026-01-15 09:00:00' has no UTC offset (set files.time_zone in the mapping)",
    }
    assert [(e["position"], e["field"]) for e in report["errors"]] == [
        (2, "ts"),
        (3, "ts"),
        (4, "ts"),
        (5, "ts"),
        (6, "ts"),
    ]
    assert [e.attrs["origin_id"] for e in await events(db)] == ["z1"]


# -- who may import --------------------------------------------------------------------------------


async def test_an_ingest_key_of_another_source_is_forbidden(
    admin: httpx.AsyncClient, ingest_key: str, db: Database
) -> None:
    """The key of source `other` cannot import for `acme` (403); acme's own key can."""
    other_key = await create_source(admin, "other", {**MAPPING, "ce_sources": []})

    refused = await upload(admin, data("meters.csv"), filename="m.csv", headers=bearer(other_key))

    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == (
        "an ingest key of source 'other' cannot import for source 'acme'"
    )
    assert (await event_count(db), await import_runs(db)) == (0, [])
    accepted = await imported(
        admin, data("meters.csv"), filename="m.csv", headers=bearer(ingest_key)
    )
    assert accepted["stored"] == 3


async def test_an_import_without_a_key_is_unauthorized(
    app: FastAPI, admin: httpx.AsyncClient, db: Database
) -> None:
    """No Authorization header, or an unknown key: 401, nothing stored."""
    await create_source(admin)
    async with http_client(app) as anonymous:
        missing = await upload(anonymous, data("meters.csv"), filename="m.csv")
        unknown = await upload(
            anonymous, data("meters.csv"), filename="m.csv", headers=bearer("tg_not-a-key")
        )

    assert (missing.status_code, error_code(missing)) == (401, "unauthorized")
    assert (unknown.status_code, error_code(unknown)) == (401, "unauthorized")
    assert (await event_count(db), await import_runs(db)) == (0, [])


async def test_an_admin_key_may_import_for_any_source(
    admin: httpx.AsyncClient, db: Database
) -> None:
    """The admin key imports for a source without needing its ingest key."""
    await create_source(admin, "other", {**MAPPING, "ce_sources": []})

    report = await imported(admin, data("meters.csv"), filename="m.csv", source="other")

    assert totals(report) == (3, 3, 0, 0)
    assert len(await events(db, "source:other")) == 3


async def test_a_gzip_body_is_inflated(
    admin: httpx.AsyncClient, ingest_key: str, db: Database
) -> None:
    """A gzip-encoded upload is the same file: its rows stored, the digest of the plain file."""
    body = data("meters.jsonl")
    headers = {**bearer(ingest_key), "Content-Encoding": "gzip"}

    report = await imported(admin, gzip.compress(body), filename="m.jsonl", headers=headers)

    assert (totals(report), report["sha256"]) == ((3, 3, 0, 0), hashlib.sha256(body).hexdigest())
    assert [meaning(e) for e in await events(db)] == METERS


async def test_an_unknown_source_is_not_found(admin: httpx.AsyncClient, db: Database) -> None:
    """Importing for a source that does not exist: 404 source_not_found, nothing recorded."""
    response = await upload(admin, data("meters.csv"), filename="m.csv", source="nope")

    assert (response.status_code, error_code(response)) == (404, "source_not_found")
    assert await import_runs(db) == []


@pytest.mark.parametrize(
    "query",
    [
        {"source": SOURCE_ID, "filename": "meters.xml"},
        {"source": SOURCE_ID, "filename": "meters.csv", "format": "xml"},
    ],
    ids=["extension", "format-parameter"],
)
async def test_an_unknown_format_is_refused(
    admin: httpx.AsyncClient, ingest_key: str, db: Database, query: dict[str, str]
) -> None:
    """A format that is neither csv nor jsonl: 422 invalid_import, nothing stored."""
    response = await admin.post("/v1/imports", params=query, content=data("meters.csv"))

    assert response.status_code == 422
    assert error_code(response) == "invalid_import"
    assert response.json()["error"]["detail"] == {"formats": ["csv", "jsonl"]}
    assert (await event_count(db), await import_runs(db)) == (0, [])
