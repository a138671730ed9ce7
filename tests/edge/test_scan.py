"""`tollgate-edge scan modbus` against ModbusPanel over real TCP and RTU (pty) transports.

`main()` runs its own event loop (`asyncio.run`), so async tests call it in a worker thread
while the panel serves on the test's loop.
"""

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from edge.cli import main
from firmware_sims.modbus_panel import ModbusPanel, Scenario, SimCounter

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
    assert units == ["unit 1: answered, holding 0 = 65533", "unit 3: answered, holding 0 = 65533"]
    assert "2 unit(s) answered" in out
    rows = {tuple(line.split()) for line in out.splitlines()}
    assert ("0", "65533", "0xFFFD") in rows  # "cycles", preset near its 16-bit wrap
    assert ("1", "exc", "2") in rows  # a hole in the map: ILLEGAL DATA ADDRESS
    # runtime_s = 0x00012345 in little word order: [0x2345, 0x0001]
    assert ("10", "9029", "0x2345", "591724545", "74565") in rows
    assert ("11", "1", "0x0001") in rows


async def test_an_exception_answer_counts_as_a_device(capsys: pytest.CaptureFixture[str]) -> None:
    async with ModbusPanel(units=(1,)) as panel:
        code = await run_cli("--url", f"tcp://127.0.0.1:{panel.port}", "--units", "1,2")
    out = capsys.readouterr().out
    assert code == 0
    assert "unit 2: answered exception 4 (SERVER DEVICE FAILURE)" in out


async def test_rtu_scan_skips_a_silent_unit(capsys: pytest.CaptureFixture[str]) -> None:
    scenario = Scenario(counters=(SimCounter("energy", "input", 0, "uint32", initial=70_000),))
    async with ModbusPanel(scenario=scenario, rtu=True, units=(1, 2)) as panel:
        url = f"rtu://{panel.serial_path}?baudrate=9600&parity=N&stopbits=1&bytesize=8"
        args = ["--url", url, "--units", "1-3", "--table", "input", "--count", "2"]
        code = await run_cli(*args)
    out = capsys.readouterr().out
    assert code == 0
    assert "unit 1: answered, input 0 = 1" in out
    assert "unit 2: answered, input 0 = 1" in out
    assert "unit 3" not in out
    # 70000 = 0x00011170: high word first, so the big-word-order column reads it back
    rows = [line.split() for line in out.splitlines()]
    assert rows.count(["0", "1", "0x0001", "70000", "292552705"]) == 2


async def test_rtu_scan_with_nobody_answering_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    scenario = Scenario(counters=(SimCounter("c", "holding", 0),))
    async with ModbusPanel(scenario=scenario, rtu=True, units=(1,)) as panel:
        code = await run_cli("--url", f"rtu://{panel.serial_path}", "--units", "5,6")
    captured = capsys.readouterr()
    assert code == 1
    assert "0 unit(s) answered" in captured.out
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
