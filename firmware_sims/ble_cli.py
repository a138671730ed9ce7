"""`tollgate-sim ble-lock`: battery BLE locks on a virtual air, reachable as an HCI dongle.

    tollgate-sim ble-lock [--hci 127.0.0.1:0] [--locks 2] [--first-lock-id 1] [--tick 0.5]
                          [--once] [--report FILE] [--duration SECONDS]

The locks (waste locks and door locks in turn, firmware_sims.ble_lock) live on a Bumble
LocalLink in this process; the gateway's radio is a controller on the same link served over
TCP (firmware_sims.ble_air), so an agent in another process reaches the locks with
`[ble] backend = "bumble:tcp-client:HOST:PORT"`, exactly as it would open a USB dongle. The
first line printed names that backend.

`--once` plays each lock's scenario once and then keeps the locks serving (tests wait for the
gateway to drain them); `--report FILE` writes, on exit, every entry each lock logged and what
was acknowledged, as JSON: the truth a test compares the cloud with.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from edge.codecs.ble_lock import lock_name
from firmware_sims.arguments import add_duration_argument, add_tick_argument

if TYPE_CHECKING:
    from firmware_sims.ble_lock import SimLock
from shared.canonical import format_decimal


def parse_hci(value: str) -> tuple[str, int]:
    """HOST:PORT for the gateway radio's HCI server; port 0 picks a free one."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT, e.g. 127.0.0.1:0")
    return host, int(port)


def add_ble_lock_arguments(parser: argparse.ArgumentParser) -> None:
    """The `ble-lock` command's arguments."""
    parser.add_argument(
        "--hci",
        type=parse_hci,
        default=("127.0.0.1", 0),
        metavar="HOST:PORT",
        help="where the gateway radio's HCI is served (default 127.0.0.1:0, a free port)",
    )
    parser.add_argument("--locks", type=int, default=2, help="how many locks (default 2)")
    parser.add_argument("--first-lock-id", type=int, default=1, help="lock id of the first")
    parser.add_argument("--seed", type=int, default=0, help="scenario seed (default 0)")
    parser.add_argument("--once", action="store_true", help="play each scenario once, then idle")
    parser.add_argument("--report", type=Path, help="write what each lock logged here on exit")
    add_tick_argument(parser)
    add_duration_argument(parser)


def lock_report(locks: list[SimLock]) -> dict[str, Any]:
    """Per lock: every logged entry, the acked seq, refusals and dropped reads."""
    return {
        str(lock.lock_id): {
            "logged": [
                {
                    "seq": entry.seq,
                    "action": entry.action,
                    "badge": entry.badge,
                    "amount": format_decimal(entry.amount),
                    "unit": entry.unit,
                    "lock_time_ms": entry.lock_time_ms,
                }
                for entry in lock.report.logged
            ],
            "acked": lock.report.acked,
            "refused": lock.report.refused,
            "dropped_reads": lock.report.dropped_reads,
            "connections": lock.report.connections,
        }
        for lock in locks
    }


async def run_ble_locks(args: argparse.Namespace) -> int:
    """Serve the locks until the duration ends or the process is stopped."""
    from firmware_sims.ble_air import VirtualAir
    from firmware_sims.ble_lock import SimLock, default_scenario, lock_address

    if args.locks < 1:
        raise SystemExit("tollgate-sim ble-lock: --locks must be at least 1")
    host, port = args.hci
    locks: list[SimLock] = []
    try:
        async with VirtualAir(host=host, port=port) as air, contextlib.AsyncExitStack() as stack:
            for index in range(args.locks):
                lock_id = args.first_lock_id + index
                device = await air.add_peripheral(lock_name(lock_id), lock_address(index))
                scenario = default_scenario(index, seed=args.seed, tick=args.tick)
                lock = SimLock(device, lock_id=lock_id, scenario=scenario)
                locks.append(await stack.enter_async_context(lock))
            print(f"ble-lock air ready: backend = {air.backend}", flush=True)
            for lock in locks:
                print(f"  lock {lock.lock_id} ({lock.name}) at {lock.address}", flush=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(args.duration):
                    await _play(locks, once=args.once, report=args.report)
    finally:
        if args.report is not None:
            _write_report(args.report, locks)
    return 0


async def _play(locks: list[SimLock], *, once: bool, report: Path | None) -> None:
    async with asyncio.TaskGroup() as group:
        for lock in locks:
            if once:
                steps = lock.scenario.steps
                group.create_task(lock.play(steps, tick=lock.scenario.tick))
            else:
                group.create_task(lock.run_forever())
    # --once: every entry is logged; say so (and what) and keep serving until stopped.
    if report is not None:
        _write_report(report, locks)
    print(f"scenarios done: {sum(len(lock.report.logged) for lock in locks)} entries", flush=True)
    await asyncio.Event().wait()


def _write_report(path: Path, locks: list[SimLock]) -> None:
    """Write the report whole or not at all (a test polls for the file)."""
    partial = path.with_suffix(".partial")
    partial.write_bytes(orjson.dumps(lock_report(locks), option=orjson.OPT_INDENT_2))
    partial.replace(path)
