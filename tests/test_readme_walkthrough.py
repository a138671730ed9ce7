"""README's "Running it for real" walkthrough, run as written (issue 18: no dead ends).

The ```sh blocks of that section are taken from README.md exactly as written and run in order in
ONE `bash -euo pipefail` process (so they share variables and background jobs, as in a person's
shell), in a temporary directory, with this venv's bin first on PATH so `tollgate-*` resolve.
Not run: lines starting with `pip install` (this venv already holds every extra, and a test
installs nothing), and the section's ```text reference block (it is not an `sh` block).

The fixed ports the README documents (CLOUD_PORT 8000, MODBUS_PORT 5020, PAGE_PORT 8080) are
free ones here, through the variables the README reads with those defaults. Before the last
block (stopping) the test adds one probe of its own: what the collector stored (events, the
invoices) saved over HTTP with the walkthrough's own API key (`$KEY`, `$CLOUD_PORT`).

Bash runs in a session of its own, so that every process the walkthrough started is in its
process group: when bash has exited, the group must be empty (the stopping block stopped them all).
"""

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.support.waiting import eventually, free_port

# Real processes for ~20 s: collected with the long files (the marker only orders the run).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Running it for real"
BIN = Path(sys.executable).parent
WALKTHROUGH_LIMIT = 120.0  # seconds for the whole walkthrough: a hang guard, not a speed check
PROBE = """
# --- the test's probe (not in the README): what the collector stored, before it is stopped
curl -fsS -H "Authorization: Bearer $KEY" "http://127.0.0.1:$CLOUD_PORT/v1/events?limit=1000" \\
  > "$WALKTHROUGH_PROBE/events.json"
curl -fsS -H "Authorization: Bearer $KEY" "http://127.0.0.1:$CLOUD_PORT/v1/invoices" \\
  > "$WALKTHROUGH_PROBE/invoices.json"
curl -fsS -H "Authorization: Bearer $KEY" "http://127.0.0.1:$CLOUD_PORT/v1/invoices/1" \\
  > "$WALKTHROUGH_PROBE/invoice-1.json"
"""


def section_text(readme: str) -> str:
    """The "Running it for real" section: from its heading to the next `##` or `###` one."""
    start = readme.index(SECTION)
    following = re.search(r"^#{2,3} ", readme[start + len(SECTION) :], flags=re.MULTILINE)
    end = start + len(SECTION) + following.start() if following else len(readme)
    return readme[start:end]


def sh_blocks(section: str) -> list[str]:
    """The bodies of the section's ```sh blocks, in order."""
    return re.findall(r"^```sh\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)


def without_pip_install(block: str) -> str:
    """The block with its `pip install` lines left out (the venv has every extra already)."""
    kept = [line for line in block.splitlines() if not line.lstrip().startswith("pip install")]
    return "\n".join(kept) + "\n"


def walkthrough_script(blocks: list[str]) -> str:
    """Every block in order, the probe before the last one (stopping)."""
    *running, stopping = [without_pip_install(block) for block in blocks]
    return "".join(running) + PROBE + stopping


def group_alive(pgid: int) -> bool:
    """Whether any process is left in the process group."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_section_has_the_steps_in_order() -> None:
    blocks = sh_blocks(section_text(README.read_text(encoding="utf-8")))
    assert len(blocks) == 5, "cloud, simulators, gateway, billing, stopping"
    cloud, simulators, gateway, billing, stopping = blocks
    # the cloud makes the code before the gateway spends it
    assert "gateway invite" in cloud and "CODE=" in cloud
    assert "tollgate-sim" in simulators
    assert "tollgate-edge enroll" in gateway and '"$CODE"' in gateway
    assert "invoice run" in billing
    assert stopping.lstrip().startswith("kill")


def _environment(tmp_path: Path) -> dict[str, str]:
    """This environment without TOLLGATE_* settings, the venv first on PATH, free ports."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("TOLLGATE_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["CLOUD_PORT"] = str(free_port())
    env["MODBUS_PORT"] = str(free_port())
    env["PAGE_PORT"] = str(free_port())
    env["WALKTHROUGH_PROBE"] = str(tmp_path)
    return env


def _logs(workdir: Path) -> str:
    """The tails of the background processes' logs, for a failure message."""
    tails = []
    for name in ("cloud.log", "modbus-panel.log", "it100-panel.log", "edge.log"):
        path = workdir / name
        if path.exists():
            lines = path.read_text(errors="replace").splitlines()[-15:]
            tails.append(f"--- {name}\n" + "\n".join(lines))
    return "\n".join(tails)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the walkthrough ended: bash's exit status (None: it did not end in time), its
    output, and whether any process it started was still running once it had exited."""

    status: int | None
    output: str
    left_running: bool


async def _run_walkthrough(script: Path, tmp_path: Path) -> Outcome:
    """Run the script in bash, in a session of its own; whatever it leaves running is noted,
    then killed."""
    output_path = tmp_path / "walkthrough.out"
    with output_path.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            "bash",
            "-euo",
            "pipefail",
            str(script),
            cwd=tmp_path,
            env=_environment(tmp_path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    status: int | None = None
    left_running = True
    try:
        with contextlib.suppress(TimeoutError):
            status = await asyncio.wait_for(process.wait(), WALKTHROUGH_LIMIT)
        if status == 0:  # the stopping block ran: what it stopped may take a moment to exit
            with contextlib.suppress(AssertionError):
                await eventually(lambda: not group_alive(process.pid), what="exits", limit=15)
                left_running = False
    finally:
        if group_alive(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    return Outcome(status, output_path.read_text(errors="replace"), left_running)


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


async def test_the_walkthrough_runs_as_written(tmp_path: Path) -> None:
    blocks = sh_blocks(section_text(README.read_text(encoding="utf-8")))
    script = tmp_path / "walkthrough.sh"
    script.write_text(walkthrough_script(blocks), encoding="utf-8")

    outcome = await _run_walkthrough(script, tmp_path)

    story = f"{outcome.output[-6000:]}\n{_logs(tmp_path / 'tollgate-walkthrough')}"
    assert outcome.status is not None, (
        f"the walkthrough did not end in {WALKTHROUGH_LIMIT} s:\n{story}"
    )
    assert outcome.status == 0, f"a README command failed (exit {outcome.status}):\n{story}"
    assert not outcome.left_running, f"a background process outlived the walkthrough:\n{story}"

    events = _load(tmp_path / "events.json")["events"]
    gateways = {event["gateway_id"] for event in events}
    assert len(gateways) == 1 and gateways.pop().startswith("gw-site-042-"), gateways
    door_cycles = [
        Decimal(event["quantity"])
        for event in events
        if event["device_id"] == "panel-1" and event["name"] == "door_cycles"
    ]
    assert door_cycles and sum(door_cycles) > 0, events

    invoices = _load(tmp_path / "invoices.json")
    assert [(i["id"], i["account_id"], i["status"]) for i in invoices] == [
        (1, "depot-42-operator", "draft")
    ]
    invoice = _load(tmp_path / "invoice-1.json")
    assert Decimal(invoice["total"]) > Decimal("20.00"), invoice  # the base fee and usage
    door_lines = [line for line in invoice["lines"] if line["metric"] == "door_cycles"]
    assert door_lines and Decimal(door_lines[0]["quantity"]) > 0, invoice["lines"]
    assert "invoice 1 (draft" in outcome.output  # `invoice show 1` printed it
