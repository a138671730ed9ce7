"""`python -m fuzz`: schemathesis over the collector on each backend, once per role's key.

Exit status 0 when every failure is in the baseline (none when there is no baseline file), 1 when
a run found more (the Markdown report says which), 2 when the collector could not be set up.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fuzz import ROLES
from fuzz.collector import Collector, CollectorFailed, cli, postgres_reachable, running_collector
from fuzz.findings import Finding, read_junit, render_markdown, server_exceptions

BACKENDS = ("sqlite", "postgresql")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
HERE = Path(__file__).resolve().parent
BASELINE = HERE / "baseline.json"
CONFIG = HERE / "schemathesis.toml"
REPORT = HERE.parent / "test-artifacts" / "fuzz-findings.md"
IN_CI = os.environ.get("CI", "").lower() == "true"


def build_parser() -> argparse.ArgumentParser:
    """The options of `python -m fuzz`."""
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated")
    parser.add_argument("--roles", default=",".join(ROLES), help="comma-separated key roles")
    parser.add_argument(
        "--budget", type=float, default=240.0, help="seconds of schemathesis for all runs together"
    )
    parser.add_argument("--max-examples", type=int, default=5, help="test cases per operation")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "1")))
    parser.add_argument("--baseline", type=Path, default=BASELINE, help="accepted failures")
    parser.add_argument(
        "--update-baseline", action="store_true", help="add this run's failures to the baseline"
    )
    parser.add_argument("--report", type=Path, default=REPORT, help="the Markdown findings")
    return parser


def schemathesis_command(
    collector: Collector, role: str, *, args: argparse.Namespace, max_time: int, junit: Path
) -> list[str]:
    """`st run` over the collector's whole OpenAPI with `role`'s key."""
    command = [
        cli("st"),
        "--config-file",
        str(CONFIG),
        "run",
        f"{collector.base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {collector.keys[role]}",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(args.max_examples),
        "--max-time",
        str(max_time),
        "--seed",
        str(args.seed),
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--report",
        "junit",
        "--report-junit-path",
        str(junit),
        "--no-color",
    ]
    if args.update_baseline:
        command += ["--baseline", str(args.baseline), "--baseline-update"]
    elif args.baseline.exists():
        command += ["--baseline", str(args.baseline)]
    return command


@dataclass
class Outcome:
    """What the runs found: findings, a line per run, the runs that failed, server exceptions."""

    findings: list[Finding] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    exceptions: dict[str, Counter[str]] = field(default_factory=dict)


def fuzz_backend(
    backend: str,
    args: argparse.Namespace,
    *,
    roles: Sequence[str],
    max_time: int,
    workdir: Path,
    outcome: Outcome,
) -> None:
    """Every role's run on one backend, added to `outcome`."""
    with running_collector(backend, roles, workdir / backend) as collector:
        for role in roles:
            junit = workdir / backend / f"junit-{role.replace(':', '-')}.xml"
            command = schemathesis_command(
                collector, role, args=args, max_time=max_time, junit=junit
            )
            started = time.monotonic()
            print(f"fuzz: {backend}, role {role}: st run (at most {max_time} s)", flush=True)
            # In the scratch folder: schemathesis keeps a crash cache in its working directory.
            result = subprocess.run(command, cwd=workdir, check=False)
            elapsed = time.monotonic() - started
            found = read_junit(junit, backend=backend, role=role) if junit.exists() else []
            outcome.findings += found
            line = f"{backend}, role {role}: {len(found)} findings in {elapsed:.0f} s"
            outcome.runs.append(f"{line} (exit {result.returncode})")
            if result.returncode != 0:
                outcome.failed.append(line)
    outcome.exceptions[backend] = server_exceptions(collector.log.read_text(errors="replace"))


def chosen_backends(text: str) -> list[str]:
    """The backends to run; PostgreSQL skipped when it is down, except under CI=true."""
    backends = [b for b in text.split(",") if b]
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        raise SystemExit(f"unknown backends {sorted(unknown)}: use {', '.join(BACKENDS)}")
    if "postgresql" in backends and not postgres_reachable():
        if IN_CI:
            raise CollectorFailed("PostgreSQL is required under CI=true but is not reachable")
        print("fuzz: PostgreSQL not reachable, fuzzing SQLite only", file=sys.stderr)
        backends.remove("postgresql")
    return backends


def main(argv: Sequence[str] | None = None) -> int:
    """Fuzz every backend and role; write the report; 1 if anything beyond the baseline."""
    args = build_parser().parse_args(argv)
    roles = [r for r in args.roles.split(",") if r]
    started = time.monotonic()
    outcome = Outcome()
    try:
        backends = chosen_backends(args.backends)
        max_time = max(10, int(args.budget / (len(backends) * len(roles))))
        with tempfile.TemporaryDirectory(prefix="tollgate-fuzz-") as tmp:
            for backend in backends:
                fuzz_backend(
                    backend,
                    args,
                    roles=roles,
                    max_time=max_time,
                    workdir=Path(tmp),
                    outcome=outcome,
                )
    except CollectorFailed as exc:
        print(f"fuzz: error: {exc}", file=sys.stderr)
        return 2
    total = time.monotonic() - started
    outcome.runs.append(
        f"in all {total:.0f} s, seed {args.seed}, at most {args.max_examples} examples a pass"
    )
    if args.baseline.exists() and not args.update_baseline:
        outcome.runs.append(f"failures accepted in {args.baseline} are not listed")
    report = render_markdown(
        outcome.findings,
        header="Schemathesis findings",
        runs=outcome.runs,
        new=outcome.failed,
        exceptions=outcome.exceptions,
    )
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(report)
    print(f"fuzz: {len(outcome.findings)} findings in {total:.0f} s, listed in {args.report}")
    for line in outcome.failed:
        print(f"fuzz: FAILED {line}", file=sys.stderr)
    return 1 if outcome.failed else 0


if __name__ == "__main__":
    sys.exit(main())
