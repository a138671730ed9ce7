"""`tollgate-edge scan modbus` against ModbusPanel over real TCP and RTU (pty) transports.

`main()` runs its own event loop (`asyncio.run`), so async tests call it in a worker thread
while the panel serves on the test's loop.

Over TCP the panel is a pymodbus 3.16 server built from `SimDevice`s for its units only; for any
other unit id its datastore has no device and the server answers exception 4 (SERVER DEVICE
FAILURE), which is what a real single-unit pymodbus server does, and the case of issue 18
(`test_a_single_unit_server_answers_4_for_every_other_unit` checks the server does that).
"""

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from pymodbus.client import AsyncModbusTcpClient

from edge.cli import main
from firmware_sims.modbus_panel import ModbusPanel, Scenario, SimCounter, SimGauge

FAST = ["--timeout", "150ms"]


async def run_cli(*args: str) -> int:
    return await asyncio.to_thread(main, ["scan", "modbus", *FAST, *args])


@asynccontextmanager
async def silent_gateway(port: int, units: set[int]) -> AsyncIterator[int]:
    """A TCP relay to the panel that drops answers of units not in `units`, like a gateway with
    nothing behind them. The simulator itself answers an unknown unit with exception 4."""
    pumps: set[asyncio.Task[None]] = set()

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, drop: bool) -> None:
        try:
            while True:
                header = await reader.readexactly(7)  # MBAP: tid, protocol, length, unit
                body = await reader.readexactly(int.from_bytes(header[4:6], "big") - 1)
                if not drop or header[6] in units:
                    writer.write(header + body)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def relay(client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        panel_reader, panel = await asyncio.open_connection("127.0.0.1", port)
        for task in (pump(client_reader, panel, False), pump(panel_reader, client, True)):
            pumps.add(asyncio.create_task(task))

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()
        await asyncio.wait_for(asyncio.gather(*pumps), timeout=2)


def dump_lines(out: str) -> list[str]:
    """The dump: everything after the summary's first blank line."""
    return out.partition("\n\n")[2].splitlines()


async def test_tcp_scan_finds_exactly_the_answering_units_and_dumps_their_registers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with ModbusPanel(units=(1, 3)) as panel:
        await panel.set("runtime_s", 0x0001_2345)  # holding 10..11, little word order
        async with silent_gateway(panel.port, {1, 3}) as port:
            code = await run_cli(
                "--url", f"tcp://127.0.0.1:{port}", "--units", "1-4", "--count", "12"
            )
    out = capsys.readouterr().out
    assert code == 0
    units = [line for line in out.splitlines() if line.startswith("unit ") and "answered" in line]
    assert units == [
        "unit 1: answered data, holding 0 = 65533",
        "unit 3: answered data, holding 0 = 65533",
    ]
    assert f"2 unit(s) answered data at tcp://127.0.0.1:{port}\n" in out
    assert "2 unit(s) timed out (no answer within 0.15s): units 2, 4\n" in out
    rows = {tuple(line.split()) for line in out.splitlines()}
    assert ("0", "65533", "0xFFFD") in rows  # "cycles", preset near its 16-bit wrap
    assert ("1", "exc", "2") in rows  # a hole in the map: ILLEGAL DATA ADDRESS
    # runtime_s = 0x00012345 in little word order: [0x2345, 0x0001]; float32 ABCD of that pair
    assert ("10", "9029", "0x2345", "591724545", "74565", "1.0679392e-17") in rows
    assert ("11", "1", "0x0001") in rows


async def test_a_single_unit_server_answers_4_for_every_other_unit() -> None:
    """The premise of the issue, on the server the scan tests use: a real pymodbus 3.x server
    with unit 1 only answers a read of unit 2 with exception 4 and of unit 1 with data."""
    async with ModbusPanel(units=(1,)) as panel:
        client = AsyncModbusTcpClient("127.0.0.1", port=panel.port, timeout=1, retries=0)
        async with client:
            other = await client.read_holding_registers(0, count=1, device_id=2)
            mine = await client.read_holding_registers(0, count=1, device_id=1)
    assert other.isError() and other.exception_code == 4
    assert not mine.isError()


async def test_units_answering_only_exception_4_are_counted_in_one_line_and_not_dumped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with ModbusPanel(units=(1,)) as panel:
        url = f"tcp://127.0.0.1:{panel.port}"
        code = await run_cli("--url", url, "--units", "1-247")
    out = capsys.readouterr().out
    assert code == 0
    summary, _, _ = out.partition("\n\n")
    assert summary.splitlines() == [
        "unit 1: answered data, holding 0 = 65533",
        f"1 unit(s) answered data at {url}",
        "246 unit(s) answered only exception 4 (SERVER DEVICE FAILURE), so no device: units 2-247",
        "0 unit(s) timed out (no answer within 0.15s)",
    ]
    dump = dump_lines(out)
    assert dump[0] == "unit 1, holding 0..9 (float32 ABCD: byte order big, word order big):"
    assert len(dump) == 12  # title, header and the 10 registers of unit 1: nothing else
    assert not any(line.startswith("unit ") for line in dump[1:])


async def test_a_unit_refusing_every_read_with_exception_2_is_a_device_not_dumped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """ILLEGAL DATA ADDRESS means the unit parsed the request: a device, with nothing there."""
    async with ModbusPanel(units=(1, 3)) as panel:
        url = f"tcp://127.0.0.1:{panel.port}"
        code = await run_cli("--url", url, "--units", "1-4", "--address", "500")
    out = capsys.readouterr().out
    assert code == 0
    refusal = "; ".join(
        f"{table} 500: exception 2 (ILLEGAL DATA ADDRESS)"
        for table in ("holding", "input", "coil", "discrete")
    )
    assert out.splitlines() == [
        f"unit 1: a device, refused every read: {refusal}",
        f"unit 3: a device, refused every read: {refusal}",
        f"0 unit(s) answered data at {url}",
        "2 unit(s) refused every read (a device is there: try another --table or --address)",
        "2 unit(s) answered only exception 4 (SERVER DEVICE FAILURE), so no device: units 2, 4",
        "0 unit(s) timed out (no answer within 0.15s)",
    ]


async def test_data_in_another_table_makes_a_unit_answer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Nothing in the holding table at 0, but the coils hold data there: the unit answered."""
    scenario = Scenario(counters=(SimCounter("energy", "input", 5),))
    async with ModbusPanel(scenario=scenario, units=(1,)) as panel:
        url = f"tcp://127.0.0.1:{panel.port}"
        code = await run_cli("--url", url, "--units", "1,2")
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[:2] == [
        "unit 1: answered data, coil 0 = 0 (holding 0: exception 2 (ILLEGAL DATA ADDRESS))",
        f"1 unit(s) answered data at {url}",
    ]
    assert dump_lines(out) == []  # the holding block held no data


async def test_the_float32_column_reads_two_registers_in_the_chosen_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    scenario = Scenario(
        counters=(
            SimCounter("infinite", "holding", 40, "uint32", initial=0x7F80_0000),
            SimCounter("nan", "holding", 42, "uint32", initial=0x7FC0_0000),
        ),
        gauges=(
            SimGauge("volts", "holding", 20, initial=230.5),  # ABCD: [0x4366, 0x8000]
            SimGauge("volts_cdab", "holding", 30, word_order="little", initial=230.5),
        ),
    )
    async with ModbusPanel(scenario=scenario, units=(1,)) as panel:
        base = ["--url", f"tcp://127.0.0.1:{panel.port}", "--units", "1"]
        window = ["--address", "20", "--count", "24"]
        assert await run_cli(*base, *window) == 0
        big = capsys.readouterr().out
        assert await run_cli(*base, *window, "--word-order", "little") == 0
        little = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in dump_lines(big)[2:]}
    assert dump_lines(big)[1].split()[-2:] == ["float32", "ABCD"]
    assert rows["20"] == ["20", "17254", "0x4366", "1130790912", "2147500902", "230.5"]
    assert rows["40"][-1] == "-" and rows["42"][-1] == "-"  # infinity, NaN
    assert len(rows["21"]) == 3  # the next address is a hole: no pair, no float
    assert dump_lines(little)[0].endswith("(float32 CDAB: byte order big, word order little):")
    little_rows = {line.split()[0]: line.split() for line in dump_lines(little)[2:]}
    assert little_rows["30"][:3] == ["30", "32768", "0x8000"]
    assert little_rows["30"][-1] == "230.5"


async def test_rtu_scan_skips_a_silent_unit(capsys: pytest.CaptureFixture[str]) -> None:
    scenario = Scenario(counters=(SimCounter("energy", "input", 0, "uint32", initial=70_000),))
    async with ModbusPanel(scenario=scenario, rtu=True, units=(1, 2)) as panel:
        url = f"rtu://{panel.serial_path}?baudrate=9600&parity=N&stopbits=1&bytesize=8"
        args = ["--url", url, "--units", "1-3", "--table", "input", "--count", "2"]
        code = await run_cli(*args)
    out = capsys.readouterr().out
    assert code == 0
    assert "unit 1: answered data, input 0 = 1" in out
    assert "unit 2: answered data, input 0 = 1" in out
    assert "1 unit(s) timed out (no answer within 0.15s): units 3\n" in out
    assert not any(line.startswith("unit 3") for line in out.splitlines())
    # 70000 = 0x00011170: high word first, so the big-word-order column reads it back
    rows = [line.split() for line in out.splitlines()]
    assert rows.count(["0", "1", "0x0001", "70000", "292552705", "9.8091e-41"]) == 2


async def test_rtu_scan_with_nobody_answering_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    scenario = Scenario(counters=(SimCounter("c", "holding", 0),))
    async with ModbusPanel(scenario=scenario, rtu=True, units=(1,)) as panel:
        code = await run_cli("--url", f"rtu://{panel.serial_path}", "--units", "5,6")
    captured = capsys.readouterr()
    assert code == 1
    assert "0 unit(s) answered data" in captured.out
    assert "2 unit(s) timed out (no answer within 0.15s): units 5-6" in captured.out
    assert "no unit answered" in captured.err


def test_nothing_listening_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = main(["scan", "modbus", "--url", f"tcp://127.0.0.1:{port}", "--units", "1", *FAST])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"tollgate-edge: tcp://127.0.0.1:{port}: cannot connect")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--url", "http://127.0.0.1:502"], "not a Modbus URL"),
        (["--url", "tcp://127.0.0.1"], "not a Modbus URL"),
        (["--url", "rtu:///dev/ttyUSB0?parity=X"], "parity='X'"),
        (["--url", "tcp://127.0.0.1:502", "--units", "1-300"], "--units"),
        (["--url", "tcp://127.0.0.1:502", "--units", "a,b"], "--units"),
        (["--url", "tcp://127.0.0.1:502", "--timeout", "200"], "--timeout"),
        (["--url", "tcp://127.0.0.1:502", "--count", "126"], "--count"),
        (["--url", "tcp://127.0.0.1:502", "--address", "70000"], "--address"),
        (["--url", "rtu:///dev/null", "--units", "0"], "--units"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    args: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["scan", "modbus", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("tollgate-edge: ") and named in err
    assert err.count("\n") == 1
