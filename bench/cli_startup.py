"""`make bench` CLI start-up: what a command costs before it does anything (issue 18).

Each command runs as its installed entry point (`.venv/bin/tollgate-edge ...`) five times; the
best wall and CPU (user + system, from the children's rusage) of the five are printed with the
target. `--help` does no work, so its time is all imports and argparse.

    python -m bench.cli_startup [--runs 5]
"""

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

TARGET_MS = 500
COMMANDS = (
    ("tollgate-edge", "--help"),
    ("tollgate-edge", "status", "--help"),
    ("tollgate-cloud", "--help"),
    ("tollgate-cloud", "invoice", "--help"),
    ("tollgate-sim", "--help"),
)


def time_command(argv: list[str]) -> tuple[float, float]:
    """One run of `argv`: (wall ms, CPU ms of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall * 1000, cpu * 1000


def main() -> None:
    """Print the best of `--runs` wall and CPU times of each command."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    print(f"CLI start-up, best of {args.runs} (target < {TARGET_MS} ms)")
    print(f"{'command':38} {'wall ms':>8} {'cpu ms':>8}  target")
    for command in COMMANDS:
        runs = [time_command([str(bin_dir / command[0]), *command[1:]]) for _ in range(args.runs)]
        wall, cpu = min(run[0] for run in runs), min(run[1] for run in runs)
        verdict = "ok" if max(wall, cpu) < TARGET_MS else "SLOW"
        print(f"{' '.join(command):38} {wall:8.0f} {cpu:8.0f}  < {TARGET_MS} {verdict}")


if __name__ == "__main__":
    main()
