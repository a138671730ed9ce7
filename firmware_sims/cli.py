"""`tollgate-sim`: run a device simulator from the command line (for the demo and by hand).

Each subcommand is one `Command` in `COMMANDS`: a function that adds its arguments and an async
function that runs it until it is done or stopped. Ctrl-C (SIGINT) and SIGTERM stop a simulator
cleanly: its server closes and the process exits with status 0.

    tollgate-sim modbus-panel --listen 127.0.0.1:5020 [--unit 1] [--tick 0.5] [--duration SECONDS]
    tollgate-sim modbus-panel --rtu [--unit 1 --unit 2] [--baudrate 9600]   (prints the pty path)
    tollgate-sim it100-panel [--link ./ttyIT100] [--tick 0.5] [--faults none|checksum,unknown,drop]
                             [--duration SECONDS]
    tollgate-sim ble-lock [--locks 2] [--hci 127.0.0.1:0] [--once] [--report FILE]
    tollgate-sim mqtt-device [--broker mqtt://127.0.0.1:1883] [--prefix P] [--tick 0.5]
    tollgate-sim demo [--duration SECONDS] [--workdir demo-data] [--verbose] [--stay]
"""

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from firmware_sims.arguments import add_duration_argument, add_tick_argument
from firmware_sims.ble_cli import add_ble_lock_arguments, run_ble_locks
from firmware_sims.mqtt_cli import add_mqtt_device_arguments, run_mqtt_device
from firmware_sims.serial_cli import add_it100_arguments, run_it100_panel


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand: its help line, its arguments and what runs it."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], Awaitable[int]]


def parse_listen(value: str) -> tuple[str, int]:
    """Split "HOST:PORT" (IPv6 as "[::1]:5020"); port 0 picks a free one."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT, e.g. 127.0.0.1:5020")
    return host.strip("[]"), int(port)


def _add_modbus_panel_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        type=parse_listen,
        default=("127.0.0.1", 5020),
        metavar="HOST:PORT",
        help="address to serve on (default 127.0.0.1:5020)",
    )
    parser.add_argument(
        "--unit",
        type=int,
        action="append",
        default=None,
        help="Modbus unit id (default 1); repeat for several units on one RTU line",
    )
    parser.add_argument(
        "--rtu",
        action="store_true",
        help="serve Modbus RTU on a pseudo-terminal (its path is printed) instead of TCP",
    )
    parser.add_argument("--baudrate", type=int, default=9600, help="RTU baud rate (default 9600)")
    add_tick_argument(parser)
    add_duration_argument(parser)


async def _run_modbus_panel(args: argparse.Namespace) -> int:
    from firmware_sims.modbus_panel import ModbusPanel, default_scenario

    host, port = args.listen
    scenario = default_scenario(tick=args.tick, cable_pull=args.rtu)
    units = args.unit or [1]
    panel = ModbusPanel(
        host, port, units=units, scenario=scenario, rtu=args.rtu, baudrate=args.baudrate
    )
    async with panel:
        if args.rtu:
            where = (
                f"rtu://{panel.serial_path}?baudrate={args.baudrate}&parity=N&stopbits=1&bytesize=8"
            )
            print(
                f"modbus-panel serving {where} unit {','.join(map(str, units))}: "
                f"{panel.register_map()}",
                flush=True,
            )
        else:
            shown = f"[{host}]" if ":" in host else host
            print(
                f"modbus-panel listening on {shown}:{panel.port} unit {panel.unit}: "
                f"{panel.register_map()}",
                flush=True,
            )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(args.duration):
                await panel.run_forever()
    return 0


def _add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    add_duration_argument(parser)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("demo-data"),
        help="where the demo keeps its state (an earlier run's is emptied first, and said so;"
        " default demo-data)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="print the drafts, the sessions behind them and each document's VAT summary here"
        " too (always written to billing-details.txt in the workdir)",
    )
    parser.add_argument(
        "--stay",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="after the results keep the collector and its console up until Ctrl-C (default:"
        " on a terminal without --duration)",
    )
    parser.add_argument(
        "--cloud-port",
        type=int,
        default=8000,
        help="collector port (a free one is used if it is taken)",
    )
    parser.add_argument(
        "--broker",
        default=None,
        help="MQTT broker URL for the demo's devices (default: an embedded amqtt broker)",
    )


async def _run_demo(args: argparse.Namespace) -> int:
    from firmware_sims.demo import WorkdirRefused, run_demo

    try:
        return await run_demo(
            duration=args.duration,
            workdir=args.workdir,
            cloud_port=args.cloud_port,
            broker=args.broker,
            verbose=args.verbose,
            stay=args.stay,
        )
    except WorkdirRefused as exc:
        print(f"tollgate-sim demo: {exc}", file=sys.stderr)
        return 2


COMMANDS: dict[str, Command] = {
    "it100-panel": Command(
        help="a DSC panel behind an IT-100 interface on a pseudo-terminal (default scenario)",
        add_arguments=add_it100_arguments,
        run=run_it100_panel,
    ),
    "demo": Command(
        help="the site-in-a-box: simulated panels, the real agent and collector, live",
        add_arguments=_add_demo_arguments,
        run=_run_demo,
    ),
    "ble-lock": Command(
        help="battery BLE locks on a virtual air, served to the gateway as an HCI dongle on TCP",
        add_arguments=add_ble_lock_arguments,
        run=run_ble_locks,
    ),
    "mqtt-device": Command(
        help="cameras and a home hub publishing JSON over MQTT (embedded broker unless --broker)",
        add_arguments=add_mqtt_device_arguments,
        run=run_mqtt_device,
    ),
    "modbus-panel": Command(
        help="a legacy panel over Modbus TCP, or RTU on a pty with --rtu (scenario, looped)",
        add_arguments=_add_modbus_panel_arguments,
        run=_run_modbus_panel,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The `tollgate-sim` parser with one subparser per entry of `COMMANDS`."""
    parser = argparse.ArgumentParser(prog="tollgate-sim", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `tollgate-sim`; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(_until_stopped(COMMANDS[args.command].run(args)))
    except KeyboardInterrupt:  # a Ctrl-C that came before the signal handlers were in place
        return 0
    except OSError as exc:
        print(f"tollgate-sim {args.command}: {exc}", file=sys.stderr)
        return 1


async def _until_stopped(work: Awaitable[int]) -> int:
    """Run `work`, cancelling it cleanly on SIGINT or SIGTERM."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    stops = (signal.SIGINT, signal.SIGTERM)
    for signum in stops:
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
            loop.add_signal_handler(signum, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        if task.cancelled():
            return 0
        raise
    finally:
        for signum in stops:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signum)


if __name__ == "__main__":
    sys.exit(main())
