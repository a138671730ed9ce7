"""`tollgate-edge scan modbus|ble|serial`: what answers on a line, in radio range, on this machine.

Each scan imports its library (pymodbus, bleak, pyserial) only when it runs, so the rest of the
CLI starts quickly. Errors follow the CLI's rule: `GatewayError` -> one line, exit 2.
"""

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import TypeAlias

from edge.errors import ConfigError, DriverError

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _scan(args: argparse.Namespace) -> int:
    from edge.config_types import parse_duration
    from edge.installer import scan_modbus as scan  # imports pymodbus: only when scanning
    from edge.installer import scan_modbus_report as scan_report

    try:
        units = scan.parse_units(args.units)
    except ValueError as exc:
        raise ConfigError(f"--units: {exc}") from None
    try:
        timeout = parse_duration(args.timeout)
    except ValueError as exc:
        raise ConfigError(f"--timeout: {exc}") from None
    url = scan.check_url(args.url)
    scan.check_range(table=args.table, address=args.address, count=args.count)
    pymodbus_log = logging.getLogger("pymodbus")
    level = pymodbus_log.level
    pymodbus_log.setLevel(logging.CRITICAL)  # a silent unit is an answer here, not an error
    try:
        result = asyncio.run(
            scan.scan(
                url,
                units,
                request_timeout=timeout,
                table=args.table,
                address=args.address,
                count=args.count,
            )
        )
    except DriverError as exc:
        print(f"tollgate-edge: {exc}", file=sys.stderr)
        return 1
    finally:
        pymodbus_log.setLevel(level)
    text = scan_report.format_result(
        result, url=url, timeout=timeout, byte_order=args.byte_order, word_order=args.word_order
    )
    sys.stdout.write(text)
    if not result.devices:
        print(f"tollgate-edge: no unit answered at {url} (units {args.units})", file=sys.stderr)
        return 1
    return 0


def _scan_ble(args: argparse.Namespace) -> int:
    from bleak.exc import BleakError

    from edge.ble.backends import NoBluezAdapter
    from edge.config import load_config
    from edge.config_types import parse_duration
    from edge.installer import scan_ble  # imports bleak: only when scanning

    backend = args.backend or (
        load_config(args.config, require_id=False).ble.backend if args.config else "bluez"
    )
    try:
        seconds = parse_duration(args.duration)
        locks = asyncio.run(scan_ble.scan_locks(backend, seconds=seconds))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except NoBluezAdapter as exc:
        print(
            f"tollgate-edge: no BlueZ adapter ({exc.reason}); {scan_ble.NO_BLUEZ_FIX}",
            file=sys.stderr,
        )
        return 2
    except BleakError as exc:
        print(f"tollgate-edge: BLE radio {backend!r}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(scan_ble.format_locks(locks))
    return 0 if locks else 1


def _list_scans(scan: argparse.ArgumentParser) -> int:
    """`tollgate-edge scan` alone: the discovery commands there are, in one place."""
    scan.print_help()
    return 0


def add_scan_commands(commands: Commands) -> None:
    """`tollgate-edge scan modbus|ble|serial`: the installer's discovery commands."""
    scan = commands.add_parser("scan", help="find the devices on a line (installer's discovery)")
    protocols = scan.add_subparsers(dest="protocol", metavar="{modbus,ble,serial}")
    scan.set_defaults(handler=lambda _args: _list_scans(scan))
    modbus = protocols.add_parser(
        "modbus", help="list the Modbus unit ids that answer and dump their registers"
    )
    modbus.add_argument(
        "--url",
        required=True,
        help="tcp://host:port or rtu:///dev/ttyX?baudrate=9600&parity=N&stopbits=1&bytesize=8",
    )
    modbus.add_argument("--units", default="1-247", help='unit ids: "1-247" or "1,2,5"')
    modbus.add_argument("--timeout", default="200ms", help='wait per request, e.g. "200ms"')
    modbus.add_argument(
        "--table", default="holding", choices=["holding", "input", "coil", "discrete"]
    )
    modbus.add_argument("--address", type=int, default=0, help="first address to read")
    modbus.add_argument("--count", type=int, default=10, help="registers (or bits) to dump")
    for order in ("byte", "word"):
        modbus.add_argument(
            f"--{order}-order",
            default="big",
            choices=["big", "little"],
            help=f"{order} order of the float32 column (default big)",
        )
    modbus.set_defaults(handler=_scan)
    ble = protocols.add_parser("ble", help="list the BLE locks in range (id, counter, battery)")
    radio = ble.add_mutually_exclusive_group()
    radio.add_argument("--backend", help='"bluez" or "bumble:<transport>", e.g. bumble:usb:0')
    radio.add_argument("--config", type=Path, help="take the backend from this site config")
    ble.add_argument("--duration", default="5s", help='how long to listen, e.g. "5s"')
    ble.set_defaults(handler=_scan_ble)
    serial = protocols.add_parser("serial", help="list the serial ports of this machine")
    serial.set_defaults(handler=_scan_serial)


def _scan_serial(args: argparse.Namespace) -> int:
    from serial.tools import list_ports  # type: ignore[import-untyped]

    ports = sorted(list_ports.comports(), key=lambda port: port.device)
    for port in ports:
        print(f"{port.device:24} {port.description or '-'}  {port.hwid or ''}".rstrip())
    if not ports:
        print("no serial ports found (adapter unplugged, or no permission: group dialout?)")
    return 0 if ports else 1
