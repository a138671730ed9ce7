"""Reading legacy files into records: CSV (with a header row) and JSON Lines. Pure, no I/O.

Rows are numbered as a person looking at the file counts them: in a CSV the header is row 1 and
the first record row 2; in JSON Lines row N is line N. A file that cannot be read at all (unknown
format, no header, a mapped column missing) raises `InvalidImport` before any row is read; a bad
row (bytes that are not UTF-8, a line that is not a JSON object, a value beyond the bounds of
`cloud.direct.records`, a CSV cell longer than `MAX_CELL`, a JSON line nested too deep to parse)
becomes a `RowError` for that row only, so the good rows of the file are still stored.
"""

import csv
import io
import re
import sys
from collections.abc import Iterator
from typing import Any, NamedTuple

from cloud.choices import FileFormat as FileFormat  # defined there for the CLI's help (issue 18)
from cloud.direct.mapping import FileColumns, RowError, SourceMapping
from cloud.direct.records import TooDeep, check_record, load_exact, might_break_bounds
from cloud.errors import InvalidImport
from shared.bounds import MAX_JSON_DEPTH

_UNDECODABLE = re.compile("[\udc80-\udcff]")  # what `surrogateescape` makes of a non-UTF-8 byte
MAX_CELL = 131_072  # characters of one CSV cell (the csv module's own default field limit)


FORMATS = {"formats": [f.value for f in FileFormat]}  # the detail of a refused format


class FileRow(NamedTuple):
    """One row of a file: its number, its record (when it could be read at all) and, for a bad
    row, why it cannot be stored (a cell beyond the bounds keeps the record, for the row's id)."""

    row: int
    record: dict[str, Any] | None
    error: RowError | None


def guess_format(filename: str) -> FileFormat:
    """The format a file name's extension suggests; `InvalidImport` if it suggests none."""
    lowered = filename.lower()
    if lowered.endswith(".csv"):
        return FileFormat.CSV
    if lowered.endswith((".jsonl", ".ndjson")):
        return FileFormat.JSONL
    raise InvalidImport(
        f"cannot tell the format of {filename!r}: name it .csv or .jsonl, or give the format",
        detail=FORMATS,
    )


def parse_format(name: str) -> FileFormat:
    """A format by name; `InvalidImport` for one we do not read."""
    try:
        return FileFormat(name.lower())
    except ValueError:
        raise InvalidImport(
            f"format {name!r} is not supported: use csv or jsonl",
            detail=FORMATS,
        ) from None


def file_columns(mapping: SourceMapping) -> FileColumns:
    """The mapping's file columns; `InvalidImport` if the source takes no files."""
    if mapping.files is None:
        raise InvalidImport("this source's mapping has no [files] section: it takes no files")
    return mapping.files


def read_rows(data: bytes, file_format: FileFormat, mapping: SourceMapping) -> Iterator[FileRow]:
    """The file's rows in order; `InvalidImport` at once if the file cannot be read at all."""
    text = data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    if file_format is FileFormat.CSV:
        return _csv_rows(text, mapping)
    return _jsonl_rows(text)


def _csv_rows(text: str, mapping: SourceMapping) -> Iterator[FileRow]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = _next_record(reader)
    except csv.Error as exc:
        raise InvalidImport(f"the header row cannot be read: {exc}", detail={"row": 1}) from exc
    if header is None:
        raise InvalidImport("the file is empty: a CSV import needs a header row")
    if any(len(name) > MAX_CELL for name in header):
        raise InvalidImport(
            f"the header row has a name longer than {MAX_CELL:,} characters", detail={"row": 1}
        )
    header = [name.strip() for name in header]
    if bad := [name for name in header if _UNDECODABLE.search(name)]:
        raise InvalidImport(
            f"the header row is not valid UTF-8 ({len(bad)} column name(s))",
            detail={"row": 1},
        )
    if bad := [name for name in header if "\x00" in name]:
        raise InvalidImport(
            f"the header row holds NUL in {len(bad)} column name(s)", detail={"row": 1}
        )
    required = required_columns(mapping)
    missing = [name for name in required if name not in header]
    if missing:
        raise InvalidImport(
            f"the file has no column {missing[0]!r} (the mapping needs {', '.join(required)})",
            detail={"missing_columns": missing, "columns": header},
        )
    return _csv_records(reader, header, check_values="\x00" in text)


def required_columns(mapping: SourceMapping) -> list[str]:
    """The columns a file must have: device, time, type, id, and a quantity every rule reads
    (one that only some types read may be absent: their rows name it when it is missing)."""
    columns = file_columns(mapping)
    quantities = {rule.quantity for rule in mapping.types}
    shared_quantity = quantities.pop() if len(quantities) == 1 else None
    wanted = (columns.device, columns.time, columns.type, columns.id, shared_quantity)
    return list(dict.fromkeys(name for name in wanted if name is not None))


def _next_record(reader: Any) -> list[str] | None:
    """The next record, however long its fields: the module's field limit (131,072 characters,
    process-wide) is lifted for this one read, so that a long field cannot leave the reader in
    the middle of a record; `_csv_records` bounds the cells itself."""
    limit = csv.field_size_limit(sys.maxsize)
    try:
        values: list[str] | None = next(reader, None)
    finally:
        csv.field_size_limit(limit)
    return values


def _csv_records(reader: Any, header: list[str], *, check_values: bool) -> Iterator[FileRow]:
    # Cells are text: only NUL can break a bound (undecodable bytes are named by _checked), so
    # the cells are checked one by one only in a file that holds one.
    row = 1
    while True:
        row += 1
        try:
            values = _next_record(reader)
        except csv.Error as exc:
            yield FileRow(row, None, RowError("row", f"cannot be read as CSV: {exc}"))
            continue
        if values is None:
            return
        if not values or all(not value.strip() for value in values):
            continue
        if len(values) != len(header):
            error = RowError("row", f"has {len(values)} fields, the header has {len(header)}")
            yield FileRow(row, None, error)
            continue
        record = {name: value.strip() or None for name, value in zip(header, values, strict=True)}
        too_long = _too_long(header, values)
        if too_long is not None:
            yield FileRow(row, record, too_long)
        else:
            yield _checked(row, record, check_values=check_values)


def _too_long(header: list[str], values: list[str]) -> RowError | None:
    for name, value in zip(header, values, strict=True):
        if len(value) > MAX_CELL:
            reason = f"is {len(value):,} characters long, at most {MAX_CELL:,} are read"
            return RowError(name, reason)
    return None


def _checked(row: int, record: dict[str, Any], *, check_values: bool = True) -> FileRow:
    for name, value in record.items():
        if isinstance(value, str) and (found := _UNDECODABLE.search(value)):
            byte = ord(found.group()) - 0xDC00
            return FileRow(row, record, RowError(name, f"is not valid UTF-8 (byte 0x{byte:02X})"))
    if check_values:
        try:
            check_record(record)
        except RowError as error:
            return FileRow(row, record, error)
    return FileRow(row, record, None)


def _jsonl_rows(text: str) -> Iterator[FileRow]:
    for row, line in enumerate(text.split("\n"), start=1):  # not splitlines: U+2028 is JSON
        if not line.strip():
            continue
        if found := _UNDECODABLE.search(line):
            byte = ord(found.group()) - 0xDC00
            yield FileRow(row, None, RowError("line", f"is not valid UTF-8 (byte 0x{byte:02X})"))
            continue
        try:
            record = load_exact(line, max_depth=MAX_JSON_DEPTH)
        except TooDeep as exc:
            yield FileRow(row, None, RowError("line", str(exc)))
            continue
        except ValueError as exc:
            yield FileRow(row, None, RowError("line", f"is not valid JSON: {exc}"))
            continue
        if not isinstance(record, dict):
            yield FileRow(row, None, RowError("line", "must be a JSON object"))
            continue
        # load_exact bounded the nesting; only the text can hold what check_record refuses.
        yield _checked(row, record, check_values=might_break_bounds(line))
