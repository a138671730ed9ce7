"""The command lines stay quick to start (issue 18): building the parser and printing `--help`
imports none of the heavy libraries, which only the command that runs imports.

Checked in a fresh interpreter (a subprocess: this test process has imported everything) by
listing `sys.modules` after `--help`; no timing is asserted (`make bench` prints the times,
bench/cli_startup.py).
"""

import subprocess
import sys

import pytest

HEAVY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "pydantic",
    "alembic",
    "httpx",
    "nats",
    "weasyprint",
    "pymodbus",
    "serial",
    "bleak",
    "bumble",
    "aiomqtt",
    "paho",
    "cryptography",
)

PROBE = """
import contextlib, io, sys
from {module} import main
for argv in {argvs!r}:
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
        main(argv)
    assert "usage:" in out.getvalue(), (argv, out.getvalue())
print(" ".join(sorted({{name.split(".")[0] for name in sys.modules}})))
"""


def imported_after_help(module: str, argvs: list[list[str]]) -> set[str]:
    """The top-level packages a fresh interpreter holds after `main(argv)` for each `--help`."""
    probe = PROBE.format(module=module, argvs=argvs)
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(done.stdout.split())


@pytest.mark.parametrize(
    ("module", "argvs"),
    [
        (
            "edge.cli",
            [
                ["--help"],
                ["status", "--help"],
                ["run", "--help"],
                ["scan", "modbus", "--help"],
                ["init", "--help"],
                ["enroll", "--help"],
                ["technician", "set-password", "--help"],
            ],
        ),
        (
            "cloud.cli",
            [
                ["--help"],
                ["invoice", "--help"],
                ["invoice", "run", "--help"],
                ["serve", "--help"],
                ["account", "add", "--help"],
                ["webhook", "--help"],
                ["credit-note", "--help"],
            ],
        ),
        (
            "firmware_sims.cli",
            [
                ["--help"],
                ["mqtt-device", "--help"],
                ["ble-lock", "--help"],
                ["modbus-panel", "--help"],
                ["it100-panel", "--help"],
            ],
        ),
    ],
)
def test_help_imports_no_heavy_library(module: str, argvs: list[list[str]]) -> None:
    """`--help` of the top level and of some subcommands leaves every heavy library unloaded."""
    loaded = imported_after_help(module, argvs) & set(HEAVY)
    assert loaded == set(), f"{module} --help imported {sorted(loaded)}"
