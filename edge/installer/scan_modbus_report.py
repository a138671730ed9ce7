"""The text of `tollgate-edge scan modbus`: a summary first, then the dump (pure, no I/O).

The summary lists the devices one per line (units that returned data, units that refused every
read) and counts the rest in one line each: the units that answered only exception 4 (SERVER
DEVICE FAILURE, no device), those that timed out and those a gateway reported absent. The dump
follows, only for the units whose block read returned data: a row per address with the value
in decimal and hex and, for registers, this register and the next as a uint32 in both word
orders and as a float32 in the command's byte and word order (big and big by default, "ABCD";
the column header names it), "-" where that float is NaN or infinite.
"""

import math
import struct
from collections.abc import Iterable

from edge.codecs.registers import ByteOrder, WordOrder, decode_registers
from edge.installer.scan_modbus import SERVER_DEVICE_FAILURE, Cell, ScanResult, UnitRead, UnitReport

# How vendors name the four layouts of a 32-bit value (edge.codecs.registers).
LAYOUT_NAMES: dict[tuple[ByteOrder, WordOrder], str] = {
    ("big", "big"): "ABCD",
    ("big", "little"): "CDAB",
    ("little", "big"): "BADC",
    ("little", "little"): "DCBA",
}
# A summary line lists at most this many runs of unit ids ("2-247" is one run).
_MAX_RUNS = 8


def format_result(
    result: ScanResult,
    *,
    url: str,
    timeout: float,
    byte_order: ByteOrder = "big",
    word_order: WordOrder = "big",
) -> str:
    """The scan as plain text: the summary, then each unit's block that returned data."""
    lines = format_summary(result, url=url, timeout=timeout)
    for report in result.units:
        if report.dumped and report.read is not None:
            lines.append("")
            lines.extend(format_read(report.read, byte_order=byte_order, word_order=word_order))
    return "\n".join(lines) + "\n"


def format_summary(result: ScanResult, *, url: str, timeout: float) -> list[str]:
    """A line per device, then one line per count of the units that are not devices."""
    lines = [describe_unit(report) for report in result.devices]
    with_data, refused = result.of_kind("data"), result.of_kind("refused")
    lines.append(f"{len(with_data)} unit(s) answered data at {url}")
    if refused:
        lines.append(
            f"{len(refused)} unit(s) refused every read (a device is there: "
            "try another --table or --address)"
        )
    failing = [report.unit for report in result.of_kind("failure")]
    lines.append(
        f"{len(failing)} unit(s) answered only exception {SERVER_DEVICE_FAILURE} "
        f"(SERVER DEVICE FAILURE), so no device{_units(failing)}"
    )
    lines.append(
        f"{len(result.timed_out)} unit(s) timed out (no answer within {timeout:g}s)"
        f"{_units(result.timed_out)}"
    )
    if result.gateway_absent:
        lines.append(
            f"{len(result.gateway_absent)} unit(s) reported absent by a gateway "
            f"(exception 10 or 11){_units(result.gateway_absent)}"
        )
    return lines


def describe_unit(report: UnitReport) -> str:
    """E.g. "unit 3: answered data, holding 0 = 17" or "unit 2: refused every read: ..."."""
    probe = report.answers[0]
    if probe.value is not None:
        return f"unit {report.unit}: answered data, {probe.describe()}"
    data = [answer for answer in report.answers if answer.value is not None]
    if data:
        return f"unit {report.unit}: answered data, {data[0].describe()} ({probe.describe()})"
    if report.kind == "data" and report.read is not None:
        span = _span(report.read)
        return f"unit {report.unit}: answered data in {span} ({probe.describe()})"
    refusals = "; ".join(answer.describe() for answer in report.answers)
    return f"unit {report.unit}: a device, refused every read: {refusals}"


def format_read(
    read: UnitRead, *, byte_order: ByteOrder = "big", word_order: WordOrder = "big"
) -> list[str]:
    """A unit's block as table rows: address, value (dec and hex for registers) and, for
    registers, this register and the next as a uint32 in big and little word order and as a
    float32 in `byte_order` / `word_order`."""
    if read.table in ("coil", "discrete"):
        rows = [f"{'address':>7}  {'value':>5}"]
        rows += [f"{cell.address:>7}  {_dec(cell):>5}" for cell in read.cells]
        return [f"unit {read.unit}, {_span(read)}:", *rows]
    layout = LAYOUT_NAMES[(byte_order, word_order)]
    title = (
        f"unit {read.unit}, {_span(read)} (float32 {layout}: byte order {byte_order}, "
        f"word order {word_order}):"
    )
    float_header = f"float32 {layout}"
    rows = [
        f"{'address':>7}  {'dec':>5}  {'hex':>6}  {'uint32 big':>10}  {'uint32 little':>13}  "
        f"{float_header:>15}"
    ]
    for cell, following in zip(read.cells, (*read.cells[1:], None), strict=True):
        big, little = _pair(cell, following)
        number = _float32(cell, following, byte_order=byte_order, word_order=word_order)
        row = (
            f"{cell.address:>7}  {_dec(cell):>5}  {_hex(cell):>6}  {big:>10}  {little:>13}  "
            f"{number:>15}"
        )
        rows.append(row.rstrip())
    return [title, *rows]


def float32_text(value: float) -> str:
    """The shortest text that reads back as the same float32 (230.5, 0.1), "-" if not finite."""
    if not math.isfinite(value):
        return "-"
    packed = struct.pack(">f", value)
    for digits in range(1, 10):  # 9 significant digits always round-trip a float32
        text = f"{value:.{digits}g}"
        if struct.pack(">f", float(text)) == packed:
            return text
    return repr(value)  # not reached: 9 digits always do


def _float32(
    cell: Cell, following: Cell | None, *, byte_order: ByteOrder, word_order: WordOrder
) -> str:
    if cell.value is None or following is None or following.value is None:
        return ""
    registers = [cell.value, following.value]
    value = decode_registers(
        registers, type="float32", word_order=word_order, byte_order=byte_order
    )
    return float32_text(float(value))


def _span(read: UnitRead) -> str:
    return f"{read.table} {read.address}..{read.address + len(read.cells) - 1}"


def _units(units: Iterable[int]) -> str:
    """ ": units 2-247" (runs of consecutive ids, the first few), or "" when there are none."""
    runs: list[list[int]] = []
    for unit in units:
        if runs and unit == runs[-1][-1] + 1:
            runs[-1].append(unit)
        else:
            runs.append([unit])
    if not runs:
        return ""
    shown = [f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]) for run in runs[:_MAX_RUNS]]
    more = ", ..." if len(runs) > _MAX_RUNS else ""
    return f": units {', '.join(shown)}{more}"


def _dec(cell: Cell) -> str:
    return f"exc {cell.exception_code}" if cell.value is None else str(cell.value)


def _hex(cell: Cell) -> str:
    return "" if cell.value is None else f"0x{cell.value:04X}"


def _pair(cell: Cell, following: Cell | None) -> tuple[str, str]:
    if cell.value is None or following is None or following.value is None:
        return "", ""
    return str(cell.value << 16 | following.value), str(following.value << 16 | cell.value)
