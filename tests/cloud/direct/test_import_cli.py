"""`tollgate-cloud source add|list|show|key` and `tollgate-cloud import` against a real database
(SQLite and PostgreSQL), run in-process: exit 0 when every row is stored or known, 1 when rows
were rejected (each printed), 2 when the file or the mapping is refused (nothing stored)."""

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloudevents.core.bindings.http import to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from sqlalchemy import func, select

from cloud import cli as cloud_cli
from cloud.app import create_app
from cloud.db import Database
from cloud.direct import service
from cloud.direct.mapping import SourceMapping
from cloud.direct.models import ImportRun
from cloud.ingest.models import ReceivedBatch, StoredEvent
from cloud.settings import Settings
from tests.cloud.direct.conftest import (
    CE_SOURCE,
    EVENT_TYPE,
    MAPPING,
    SOURCE_ID,
    bearer,
    quantity_reason,
)
from tests.cloud.test_cli import plain_url

DATA = Path(__file__).parent / "data"
METERS = DATA / "meters.csv"
ERROR = "tollgate-cloud: error: "
BAD_ROWS_REPORT = """\
bad_rows.csv: 7 rows, stored 2, 0 already stored, 5 rejected
  row 3: ts: 'yesterday' is not an RFC 3339 time
  row 4: meter: a device id is required
  row 5: type: no mapping for type 'spill'
  row 6: kg: {quantity}
  row 7: row: has 3 fields, the header has 5
""".format(quantity=quantity_reason("abc"))


@pytest.fixture
def url(db_url: str) -> str:
    """A migrated database, as users type its URL."""
    url = plain_url(db_url)
    assert cloud_cli.main(["migrate", "--db", url]) == 0
    return url


@pytest.fixture
def acme(url: str, capsys: pytest.CaptureFixture[str]) -> str:
    """The migrated database with source `acme` created from data/mapping.toml."""
    assert (
        run(capsys, url, "source", "add", SOURCE_ID, "--mapping", str(DATA / "mapping.toml"))[0]
        == 0
    )
    return url


def run(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> tuple[int, str, str]:
    """Run one command against `url`; (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = cloud_cli.main([*argv, "--db", url])
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> str:
    """Run a command that must be refused: exit 2, nothing on stdout; its one stderr line."""
    code, out, err = run(capsys, url, *argv)
    assert (code, out) == (2, ""), err
    assert err.startswith(ERROR) and err.count("\n") == 1 and "Traceback" not in err
    return err.removeprefix(ERROR).removesuffix("\n")


def stored(db_url: str) -> dict[str, int]:
    """How many events, batches and recorded imports the database holds."""

    async def count() -> dict[str, int]:
        async with Database(Settings(db_url=db_url).db_url) as db, db.transaction() as session:
            return {
                name: await session.scalar(select(func.count()).select_from(model)) or 0
                for name, model in (
                    ("events", StoredEvent),
                    ("batches", ReceivedBatch),
                    ("imports", ImportRun),
                )
            }

    return asyncio.run(count())


NOTHING = {"events": 0, "batches": 0, "imports": 0}


# -- sources ---------------------------------------------------------------------------------------


def test_source_add_then_show_prints_the_mapping_and_quality(
    capsys: pytest.CaptureFixture[str], url: str
) -> None:
    """`source add` from TOML creates gateway source:acme; `show` prints the stored mapping."""
    code, out, _ = run(
        capsys, url, "source", "add", "acme", "--mapping", str(DATA / "mapping.toml")
    )
    assert (code, out) == (
        0,
        "source acme created; its events are chained as gateway source:acme\n",
    )

    code, out, _ = run(capsys, url, "source", "show", "acme")

    shown = json.loads(out)
    assert code == 0
    assert shown["mapping"] == SourceMapping.model_validate(MAPPING).model_dump(mode="json")
    assert (shown["id"], shown["gateway_id"]) == ("acme", "source:acme")
    assert (shown["events_stored"], shown["last_seq"], shown["incidents"]) == (0, None, {})
    assert run(capsys, url, "source", "list") == (0, "acme\n", "")


def test_source_key_prints_a_key_that_sends_events(
    capsys: pytest.CaptureFixture[str], acme: str, db_url: str
) -> None:
    """`source key` prints the secret once; a CloudEvent sent with it is stored for acme."""
    code, out, err = run(capsys, acme, "source", "key", "acme", "--name", "meter gateway")
    secret = out.strip()
    assert code == 0 and out == secret + "\n" and secret.startswith("tg_")
    assert err == f"ingest key {secret[:11]}… for source acme: it is shown only now\n"

    response = asyncio.run(send_cloudevent(db_url, secret))

    assert response.status_code == 200, response.text
    assert (response.json()["stored"], response.json()["gateway_id"]) == (1, "source:acme")
    shown = json.loads(run(capsys, acme, "source", "show", "acme")[1])
    assert (shown["events_stored"], shown["last_seq"]) == (1, 1)


async def send_cloudevent(db_url: str, secret: str) -> httpx.Response:
    """POST one structured-mode CloudEvent (official SDK) to a collector on `db_url`."""
    event = CloudEvent(
        attributes={
            "type": EVENT_TYPE,
            "source": CE_SOURCE,
            "id": "e-1",
            "subject": "bin-1",
            "time": datetime(2026, 11, 2, 8, tzinfo=UTC),
        },
        data={"kg": "1.5"},
    )
    message = to_structured(event, JSONFormat())
    app = create_app(Settings(db_url=db_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://collector") as client:
            headers = {**message.headers, **bearer(secret)}
            return await client.post("/v1/events", content=message.body, headers=headers)


def test_source_add_twice_is_refused(capsys: pytest.CaptureFixture[str], acme: str) -> None:
    """A second `source add acme` exits 2."""
    mapping = str(DATA / "mapping.toml")
    assert refused(capsys, acme, "source", "add", "acme", "--mapping", mapping) == (
        "source 'acme' exists"
    )


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("types = [\n", "{path} is not valid TOML: Invalid value (at end of document)"),
        (
            '[[types]]\ntype = "a"\nname = "a"\nkind = "flow"\n',
            "{path}: mapping.types.0.kind: "
            "Input should be 'activation', 'deactivation', 'activity' or 'measurement'",
        ),
        (
            '[files]\ndevice = "m"\ntime = "t"\ntime_zone = "Mars/Base"\n'
            '[[types]]\ntype = "a"\nname = "a"\nkind = "activity"\n',
            "{path}: mapping.files.time_zone: unknown time zone 'Mars/Base'",
        ),
        ("ce_sources = []\n", "{path}: mapping.types: Field required"),
    ],
    ids=["syntax", "unknown-kind", "unknown-zone", "no-types"],
)
def test_a_bad_mapping_file_is_refused(
    capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path, toml: str, message: str
) -> None:
    """A mapping that is not TOML or not a valid mapping: exit 2 naming the file and field."""
    path = tmp_path / "mapping.toml"
    path.write_text(toml)

    assert refused(capsys, url, "source", "add", "b", "--mapping", str(path)) == message.format(
        path=path
    )
    assert run(capsys, url, "source", "list") == (0, "", "")


def test_a_missing_mapping_file_is_refused(
    capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path
) -> None:
    """`--mapping` naming no file: exit 2 saying so."""
    path = tmp_path / "absent.toml"
    assert refused(capsys, url, "source", "add", "b", "--mapping", str(path)) == (
        f"cannot read {path}: No such file or directory"
    )


@pytest.mark.parametrize("action", [("show", "nope"), ("key", "nope", "--name", "n")])
def test_an_unknown_source_is_refused(
    capsys: pytest.CaptureFixture[str], acme: str, action: tuple[str, ...]
) -> None:
    """`source show|key` of a source that does not exist: exit 2."""
    assert refused(capsys, acme, "source", *action) == "no source 'nope'"


# -- import ----------------------------------------------------------------------------------------


def test_import_stores_the_rows_and_a_second_run_stores_nothing(
    capsys: pytest.CaptureFixture[str], acme: str, db_url: str
) -> None:
    """Exit 0 both times: first 3 stored, then 3 already stored; one batch, two import runs."""
    first = run(capsys, acme, "import", str(METERS), "--source", "acme")
    again = run(capsys, acme, "import", str(METERS), "--source", "acme")

    assert first[:2] == (0, "meters.csv: 3 rows, stored 3, 0 already stored, 0 rejected\n")
    assert again[:2] == (0, "meters.csv: 3 rows, stored 0, 3 already stored, 0 rejected\n")
    assert stored(db_url) == {"events": 3, "batches": 1, "imports": 2}


def test_import_with_rejected_rows_exits_1_and_prints_each(
    capsys: pytest.CaptureFixture[str], url: str, db_url: str
) -> None:
    """Bad rows: exit 1, the totals then `row N: field: reason` per row; good rows stored."""
    assert (
        run(capsys, url, "source", "add", "legacy", "--mapping", str(DATA / "legacy.toml"))[0] == 0
    )

    code, out, _ = run(capsys, url, "import", str(DATA / "bad_rows.csv"), "--source", "legacy")

    assert (code, out) == (1, BAD_ROWS_REPORT)
    assert stored(db_url) == {"events": 2, "batches": 1, "imports": 1}


def test_import_json_prints_the_whole_report(capsys: pytest.CaptureFixture[str], acme: str) -> None:
    """`--json`: stdout is the report as JSON and nothing else."""
    code, out, _ = run(
        capsys, acme, "import", str(DATA / "meters.jsonl"), "--source", "acme", "--json"
    )

    report: dict[str, Any] = json.loads(out)
    assert code == 0
    assert report["import_id"] == 1 and report["file_format"] == "jsonl"
    assert (report["rows"], report["stored"], report["duplicates"], report["rejected"]) == (
        3,
        3,
        0,
        0,
    )
    assert (report["filename"], report["dry_run"], report["errors"]) == ("meters.jsonl", False, [])


def test_import_dry_run_reports_and_stores_nothing(
    capsys: pytest.CaptureFixture[str], acme: str, db_url: str
) -> None:
    """`--dry-run`: says what would be stored, exit 0, no events and no import recorded."""
    code, out, _ = run(capsys, acme, "import", str(METERS), "--source", "acme", "--dry-run")

    assert (code, out) == (
        0,
        "meters.csv: 3 rows, would store 3, 0 already stored, 0 rejected "
        "(dry run: nothing was stored)\n",
    )
    assert stored(db_url) == NOTHING


def test_import_dry_run_with_bad_rows_exits_1(
    capsys: pytest.CaptureFixture[str], url: str, db_url: str
) -> None:
    """A dry run of a file with bad rows reports them like the real import, exit 1, no writes."""
    assert (
        run(capsys, url, "source", "add", "legacy", "--mapping", str(DATA / "legacy.toml"))[0] == 0
    )
    argv = ("import", str(DATA / "bad_rows.csv"), "--source", "legacy")

    code, out, _ = run(capsys, url, *argv, "--dry-run")

    head, rest = BAD_ROWS_REPORT.split("\n", 1)
    wanted = head.replace("stored 2", "would store 2") + " (dry run: nothing was stored)\n" + rest
    assert (code, out) == (1, wanted)
    assert stored(db_url) == NOTHING


def test_import_shows_progress_on_stderr(
    capsys: pytest.CaptureFixture[str],
    acme: str,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not a terminal: one `rows: N% (done/total)` line per chunk stored, up to 100%."""
    monkeypatch.setattr(service, "IMPORT_CHUNK_ROWS", 3)
    lines = [f"t{n},bin-1,2026-11-02T08:{n:02d}:00Z,{n}" for n in range(10)]
    path = tmp_path / "ten.csv"
    path.write_text("txn,meter,ts,kg\n" + "\n".join(lines) + "\n")

    code, out, err = run(capsys, acme, "import", str(path), "--source", "acme")

    assert (code, out) == (0, "ten.csv: 10 rows, stored 10, 0 already stored, 0 rejected\n")
    assert err == "rows: 36% (4/11)\nrows: 64% (7/11)\nrows: 91% (10/11)\nrows: 100% (11/11)\n"
    assert stored(db_url) == {"events": 10, "batches": 4, "imports": 1}


def test_import_of_a_file_with_a_non_utf8_header_exits_2(
    capsys: pytest.CaptureFixture[str], acme: str, db_url: str, tmp_path: Path
) -> None:
    """A latin-1 byte in the header: exit 2 with the reason, nothing stored."""
    path = tmp_path / "latin1.csv"
    path.write_bytes(METERS.read_bytes().replace(b"meter", b"m\xe8ter", 1))

    message = refused(capsys, acme, "import", str(path), "--source", "acme")

    assert message == "the header row is not valid UTF-8 (1 column name(s))"
    assert stored(db_url) == NOTHING


def test_import_of_a_file_with_a_latin1_row_exits_1(
    capsys: pytest.CaptureFixture[str], acme: str, db_url: str, tmp_path: Path
) -> None:
    """A latin-1 byte in one row: that row rejected as not UTF-8, exit 1, the others stored."""
    path = tmp_path / "latin1.csv"
    path.write_bytes(METERS.read_bytes().replace(b"t3,bin-2", b"t3,bin-\xb2"))

    code, out, _ = run(capsys, acme, "import", str(path), "--source", "acme")

    assert (code, out) == (
        1,
        "latin1.csv: 3 rows, stored 2, 0 already stored, 1 rejected\n"
        "  row 4: meter: is not valid UTF-8 (byte 0xB2)\n",
    )
    assert stored(db_url) == {"events": 2, "batches": 1, "imports": 1}


def test_import_of_a_file_missing_a_mapped_column_exits_2(
    capsys: pytest.CaptureFixture[str], acme: str, db_url: str, tmp_path: Path
) -> None:
    """No `txn` column: exit 2 naming it, nothing stored."""
    path = tmp_path / "no-id.csv"
    path.write_text("meter,ts,kg\nbin-1,2026-11-02T08:00:00Z,1.5\n")

    message = refused(capsys, acme, "import", str(path), "--source", "acme")

    assert message == "the file has no column 'txn' (the mapping needs meter, ts, txn, kg)"
    assert stored(db_url) == NOTHING


def test_import_for_an_unknown_source_exits_2(
    capsys: pytest.CaptureFixture[str], acme: str, db_url: str
) -> None:
    """`--source nope`: exit 2, nothing stored."""
    assert refused(capsys, acme, "import", str(METERS), "--source", "nope") == "no source 'nope'"
    assert stored(db_url) == NOTHING


def test_import_format_follows_the_name_or_the_option(
    capsys: pytest.CaptureFixture[str], acme: str, db_url: str, tmp_path: Path
) -> None:
    """A `.txt` file is refused (exit 2) unless `--format csv` says what it is."""
    path = tmp_path / "meters.txt"
    path.write_bytes(METERS.read_bytes())

    message = refused(capsys, acme, "import", str(path), "--source", "acme")
    assert message == (
        "cannot tell the format of 'meters.txt': name it .csv or .jsonl, or give the format"
    )
    assert stored(db_url) == NOTHING

    code, out, _ = run(capsys, acme, "import", str(path), "--source", "acme", "--format", "csv")
    assert (code, out) == (0, "meters.txt: 3 rows, stored 3, 0 already stored, 0 rejected\n")


def test_import_of_a_missing_file_exits_2(
    capsys: pytest.CaptureFixture[str], acme: str, tmp_path: Path
) -> None:
    """A path that does not exist: exit 2 saying so."""
    path = tmp_path / "absent.csv"
    assert refused(capsys, acme, "import", str(path), "--source", "acme") == (
        f"cannot read {path}: No such file or directory"
    )


def test_import_refuses_an_unknown_format_option(
    capsys: pytest.CaptureFixture[str], acme: str
) -> None:
    """`--format xml` is a usage error (exit 2) listing the choices."""
    with pytest.raises(SystemExit) as exited:
        cloud_cli.main(["import", str(METERS), "--source", "acme", "--format", "xml", "--db", acme])

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "tollgate-cloud import: error: argument --format: invalid choice: 'xml'" in err
    assert "[--format {csv,jsonl}]" in err
