"""Reading import files into numbered records (`cloud.direct.files`), with byte tables: rows are
numbered as a person counts them, a bad row is an error of that row only, and a file that cannot
be read at all is refused before its first row is read."""

import csv
import json
from decimal import Decimal
from typing import Any

import pytest

from cloud.direct.files import MAX_CELL, FileFormat, FileRow, guess_format, read_rows
from cloud.direct.mapping import RowError, SourceMapping
from cloud.errors import InvalidImport

MAPPING = SourceMapping.model_validate(
    {
        "files": {"device": "meter", "time": "ts", "id": "txn"},
        "types": [
            {"type": "pour", "name": "pour", "kind": "measurement", "quantity": "kg", "unit": "kg"}
        ],
    }
)
GOOD = {"txn": "t1", "meter": "bin-1", "ts": "2026-11-02T08:00:00Z", "kg": "1.5"}

Row = tuple[int, dict[str, Any] | None, tuple[str, str] | None]


def rows(data: bytes, file_format: FileFormat) -> list[Row]:
    """The file's rows as (row, record, (field, reason) or None)."""
    return [described(row) for row in read_rows(data, file_format, MAPPING)]


def described(row: FileRow) -> Row:
    """A row with its error as plain (field, reason), and its record only if it is good."""
    if row.error is None:
        return row.row, row.record, None
    return row.row, None, (row.error.field, row.error.reason)


def refusal(data: bytes, mapping: SourceMapping = MAPPING) -> InvalidImport:
    """The `InvalidImport` that calling `read_rows` on a CSV raises, before any row is read."""
    with pytest.raises(InvalidImport) as caught:
        read_rows(data, FileFormat.CSV, mapping)  # not iterated: refused on the call itself
    return caught.value


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b"txn,meter,ts,kg\nt1,bin-1,2026-11-02T08:00:00Z,1.5\n",
            [(2, GOOD, None)],
        ),
        (  # CRLF line ends, a UTF-8 byte order mark, spaces around values
            b"\xef\xbb\xbftxn, meter ,ts,kg\r\n t1 ,bin-1,2026-11-02T08:00:00Z, 1.5\r\n",
            [(2, GOOD, None)],
        ),
        (  # blank lines are not rows but still count: row 4 is the fourth line
            b"txn,meter,ts,kg\n\n ,  , , \nt1,bin-1,2026-11-02T08:00:00Z,1.5",
            [(4, GOOD, None)],
        ),
        (  # an empty cell is None; non-ASCII UTF-8 is kept
            "txn,meter,ts,kg\nt1,bin-ä,,1.5\n".encode(),
            [(2, {"txn": "t1", "meter": "bin-ä", "ts": None, "kg": "1.5"}, None)],
        ),
        (
            b"txn,meter,ts,kg\nt1,bin-1\nt2,bin-1,2026-11-02T08:00:00Z,1.5,extra\n",
            [
                (2, None, ("row", "has 2 fields, the header has 4")),
                (3, None, ("row", "has 5 fields, the header has 4")),
            ],
        ),
        (  # a latin-1 byte: that row only
            b"txn,meter,ts,kg\nt0,bin-\xe9,2026-11-02T08:00:00Z,1\nt1,bin-1,2026-11-02T08:00:00Z,1.5\n",
            [(2, None, ("meter", "is not valid UTF-8 (byte 0xE9)")), (3, GOOD, None)],
        ),
        (  # a UTF-8 sequence cut short
            b"txn,meter,ts,kg\nt1,bin-1,2026-11-02T08:00:00Z,1\xc3\n",
            [(2, None, ("kg", "is not valid UTF-8 (byte 0xC3)"))],
        ),
        (  # a quoted field spanning two lines is one spreadsheet row
            b'txn,meter,ts,kg\n"t\n0",bin-1,2026-11-02T08:00:00Z,2\nt1,bin-1,2026-11-02T08:00:00Z,1.5\n',
            [
                (
                    2,
                    {"txn": "t\n0", "meter": "bin-1", "ts": "2026-11-02T08:00:00Z", "kg": "2"},
                    None,
                ),
                (3, GOOD, None),
            ],
        ),
    ],
    ids=[
        "plain",
        "bom-crlf-spaces",
        "blank-lines",
        "empty-cell",
        "field-count",
        "latin1",
        "cut",
        "multiline",
    ],
)
def test_csv_rows_are_numbered_like_a_spreadsheet(data: bytes, expected: list[Row]) -> None:
    """CSV: header = row 1, each record's row number, record or the field and reason it fails."""
    assert rows(data, FileFormat.CSV) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b'{"txn": "t1", "meter": "bin-1", "ts": "2026-11-02T08:00:00Z", "kg": "1.5"}\n',
            [(1, GOOD, None)],
        ),
        (  # blank lines are skipped but counted; CRLF is JSON whitespace; no final newline
            b'\n  \r\n{"txn": "t1", "meter": "bin-1", "ts": "2026-11-02T08:00:00Z", '
            b'"kg": "1.5"}\r\n'
            b'{"kg": 2.50, "n": 3}',
            [(3, GOOD, None), (4, {"kg": Decimal("2.50"), "n": 3}, None)],
        ),
        (  # U+2028 is valid inside a JSON string: it does not end the line
            '{"meter": "a\u2028b"}\n{"meter": "c"}\n'.encode(),
            [(1, {"meter": "a\u2028b"}, None), (2, {"meter": "c"}, None)],
        ),
        (
            b'{"meter": "a"\n[1, 2]\n"text"\n{"meter": "b\xff"}\n{"meter": "c"}\n',
            [
                (
                    1,
                    None,
                    (
                        "line",
                        "is not valid JSON: Expecting ',' delimiter: line 1 column 14 (char 13)",
                    ),
                ),
                (2, None, ("line", "must be a JSON object")),
                (3, None, ("line", "must be a JSON object")),
                (4, None, ("line", "is not valid UTF-8 (byte 0xFF)")),
                (5, {"meter": "c"}, None),
            ],
        ),
    ],
    ids=["plain", "blank-crlf-decimal", "u2028", "bad-lines"],
)
def test_jsonl_rows_are_line_numbers(data: bytes, expected: list[Row]) -> None:
    """JSON Lines: row N is line N, numbers are Decimal, a bad line is an error of that line."""
    assert rows(data, FileFormat.JSONL) == expected


def test_a_header_that_is_not_utf8_refuses_the_file() -> None:
    """A latin-1 byte in the header: the whole file is refused, naming row 1."""
    error = refusal(b"txn,m\xe9ter,ts,kg\nt1,bin-1,2026-11-02T08:00:00Z,1.5\n")
    assert error.message == "the header row is not valid UTF-8 (1 column name(s))"
    assert error.detail == {"row": 1}


def test_a_missing_mapped_column_refuses_the_file() -> None:
    """A CSV without the time column is refused, naming the column and the header it has."""
    error = refusal(b"txn,meter,kg\nt1,bin-1,1.5\n")
    assert error.message == "the file has no column 'ts' (the mapping needs meter, ts, txn, kg)"
    assert error.detail == {"missing_columns": ["ts"], "columns": ["txn", "meter", "kg"]}


def test_an_empty_csv_is_refused() -> None:
    """A CSV without even a header row is refused."""
    assert refusal(b"").message == "the file is empty: a CSV import needs a header row"


def test_a_source_without_files_section_takes_no_files() -> None:
    """A mapping with no [files] section refuses any file."""
    no_files = MAPPING.model_copy(update={"files": None})
    error = refusal(b"txn,meter,ts,kg\n", no_files)
    assert error.message == "this source's mapping has no [files] section: it takes no files"


def test_rows_errors_are_row_errors() -> None:
    """A row's error is a `RowError` (what `import_file` reports), not an exception raised."""
    (row,) = read_rows(b"txn,meter,ts,kg\nt1\n", FileFormat.CSV, MAPPING)
    assert isinstance(row.error, RowError) and row.record is None


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("export.csv", FileFormat.CSV),
        ("EXPORT.CSV", FileFormat.CSV),
        ("2026-11.meters.jsonl", FileFormat.JSONL),
        ("dump.ndjson", FileFormat.JSONL),
    ],
)
def test_the_format_follows_the_extension(filename: str, expected: FileFormat) -> None:
    """`.csv` is CSV, `.jsonl` and `.ndjson` are JSON Lines, in any case."""
    assert guess_format(filename) is expected


@pytest.mark.parametrize("filename", ["export.json", "export.csv.gz", "export", "export.xlsx"])
def test_an_unknown_extension_is_refused(filename: str) -> None:
    """Any other name is refused, listing the formats."""
    with pytest.raises(InvalidImport) as caught:
        guess_format(filename)
    assert caught.value.message == (
        f"cannot tell the format of {filename!r}: name it .csv or .jsonl, or give the format"
    )
    assert caught.value.detail == {"formats": ["csv", "jsonl"]}


# -- bounds ---------------------------------------------------------------------------------------

HEADER = b"txn,meter,ts,kg\n"
GOOD_LINE = b"t1,bin-1,2026-11-02T08:00:00Z,1.5\n"
LONG = "x" * (MAX_CELL + 1)


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (f"t2,{LONG},2026-11-02T08:00:00Z,1\n".encode(),
         ("meter", f"is {MAX_CELL + 1:,} characters long, at most {MAX_CELL:,} are read")),
        (f't2,"{LONG}\n{LONG}",2026-11-02T08:00:00Z,1\n'.encode(),
         ("meter", f"is {2 * MAX_CELL + 3:,} characters long, at most {MAX_CELL:,} are read")),
        (b"t2,bin\x00,2026-11-02T08:00:00Z,1\n",
         ("meter", "text may not contain U+0000 (at character 3)")),
        (b"t2\x00,bin-2,2026-11-02T08:00:00Z,1\n",
         ("txn", "text may not contain U+0000 (at character 2)")),
    ],
    ids=["long-cell", "long-quoted-multiline-cell", "nul-cell", "nul-id"],
)  # fmt: skip
def test_a_csv_row_beyond_the_bounds_is_its_own_error(bad: bytes, error: tuple[str, str]) -> None:
    """A cell longer than the csv module's limit (even quoted over several lines) or holding NUL
    is an error of its row; the rows around it are read, numbered as before."""
    assert rows(HEADER + GOOD_LINE + bad + GOOD_LINE, FileFormat.CSV) == [
        (2, GOOD, None),
        (3, None, error),
        (4, GOOD, None),
    ]


def test_the_csv_field_limit_is_left_as_it_was() -> None:
    """Reading a long cell does not leave the process-wide csv limit raised."""
    limit = csv.field_size_limit()
    rows(HEADER + f"t2,{LONG},x,1\n".encode(), FileFormat.CSV)
    assert csv.field_size_limit() == limit


def test_a_header_cell_beyond_the_limit_refuses_the_file() -> None:
    """A header name longer than the limit refuses the file (nothing is read)."""
    error = refusal(f"txn,meter,ts,kg,{LONG}\n".encode() + GOOD_LINE)
    assert error.message == f"the header row has a name longer than {MAX_CELL:,} characters"


def jsonl(record: dict[str, Any] | str) -> bytes:
    """One JSON Lines line."""
    return (record if isinstance(record, str) else json.dumps(record)).encode() + b"\n"


GOOD_JSON = {"txn": "t1", "meter": "bin-1", "ts": "2026-11-02T08:00:00Z", "kg": "1.5"}


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ('{"txn": "t2", "deep": ' + "[" * 990 + "]" * 990 + "}",
         ("line", "is nested 991 levels deep; at most 32 are read")),
        ('{"txn": "t2", "deep": ' + "[" * 100_000 + "]" * 100_000 + "}",
         ("line", "is nested 100,001 levels deep; at most 32 are read")),
        ('{"txn": "t2", "deep": ' + "[" * 32 + "]" * 32 + "}",
         ("line", "is nested 33 levels deep; at most 32 are read")),
        ({**GOOD_JSON, "meter": "bin\x00"},
         ("meter", "text may not contain U+0000 (at character 3)")),
        ('{"txn": "\\udc00", "meter": "bin-1"}',
         ("txn", "text may not contain U+DC00 (at character 0)")),
        ({**GOOD_JSON, "n": 2**64}, ("n", "integer is outside the signed 64-bit range: "
                                     "send larger numbers as decimal strings")),
        ({**GOOD_JSON, "w": {"kg": -(2**70)}}, ("w.kg", "integer is outside the signed 64-bit "
                                               "range: send larger numbers as decimal strings")),
    ],
    ids=["990-deep", "100000-deep", "33-deep", "nul", "surrogate", "u64", "nested-big-int"],
)  # fmt: skip
def test_a_jsonl_row_beyond_the_bounds_is_its_own_error(
    bad: dict[str, Any] | str, error: tuple[str, str]
) -> None:
    """A line nested deeper than MAX_JSON_DEPTH (measured before it is parsed, so never a
    RecursionError), holding NUL or a lone surrogate, or an integer beyond 64 bits is an error
    of its row; the rows around it are read."""
    data = jsonl(GOOD_JSON) + jsonl(bad) + jsonl(GOOD_JSON)
    assert rows(data, FileFormat.JSONL) == [(1, GOOD, None), (2, None, error), (3, GOOD, None)]


def test_a_jsonl_row_at_the_depth_bound_is_read() -> None:
    """A record whose values nest to exactly MAX_JSON_DEPTH levels (itself the first) is read."""
    record = {**GOOD_JSON, "deep": json.loads("[" * 31 + "]" * 31)}
    assert rows(jsonl(record), FileFormat.JSONL) == [(1, record, None)]


def test_a_header_with_nul_refuses_the_file() -> None:
    """A NUL in a column name refuses the file (no column of it could be stored or named)."""
    error = refusal(b"txn,meter,ts,kg,no\x00te\n" + GOOD_LINE)
    assert (error.message, error.detail) == (
        "the header row holds NUL in 1 column name(s)",
        {"row": 1},
    )
