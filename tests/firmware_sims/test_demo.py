"""`make demo` runs `tollgate-sim demo`: the whole site in a box must balance its books.

Run as the command itself (a child process), with a free collector port and the embedded MQTT
broker, for a short duration: every source (Modbus panels, BLE locks, MQTT devices) must end
"ok" against what the simulators really did.
"""

import asyncio
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from tests.support.waiting import free_port

BIN = Path(sys.executable).parent


async def test_the_demo_balances_every_source(tmp_path: Path) -> None:
    command = [
        str(BIN / "tollgate-sim"),
        "demo",
        "--duration",
        "10",
        "--workdir",
        str(tmp_path / "demo"),
        "--cloud-port",
        str(free_port()),
    ]
    result = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = result.stdout.split("What the panels counted vs what the cloud stored:")[1]
    lines = [line.split()[0] for line in summary.splitlines() if line.strip().endswith("ok")]
    assert {"waste-lock-1", "door-lock-1", "camera-1", "home-1"} <= set(lines)
    assert any(line.startswith("panel-1.") for line in lines)
    assert "MISMATCH" not in summary
    assert "missing ranges []" in summary
    # the fleet view: the agent's heartbeats keep its gateway twin online; the panels' scripted
    # 16-bit wrap (in their first seconds) is an open data-quality incident
    assert "fleet view: gateway online" in summary
    assert "counter_wrap" in summary

    direct = summary.split("Direct source yard-bins: POST /v1/events")[1].split("Billing period")[0]
    assert "sent: 4 events, stored 4, 0 already stored, 0 rejected" in direct
    assert "re-sent: 4 events, stored 0, 4 already stored, 0 rejected" in direct
    assert "2 rows, stored 2, 0 already stored, 0 rejected" in direct
    assert "2 rows, stored 0, 2 already stored, 0 rejected" in direct

    billing = summary.split("Billing period ")[1]
    assert "2 drafted, 0 updated" in billing
    for account in ("weber-household", "nordlicht-facility"):
        block = billing.split(f"account {account}, period")[1].split("sessions behind it:")[0]
        assert_total_is_sum_of_lines(block)
    sessions = billing.split("sessions behind it:")[1:]
    assert all("deactivated" in listed for listed in sessions)
    direct_sessions = [
        line for line in billing.splitlines() if line.strip().startswith("yard-bin-2")
    ]
    assert len(direct_sessions) == 3 and all("deactivated 2 events" in s for s in direct_sessions)


def assert_total_is_sum_of_lines(block: str) -> None:
    """The printed total of an invoice equals the sum of its printed line amounts."""
    amounts, total = [], None
    for line in block.splitlines():
        words = line.split()
        if words and words[0].isdigit() and words[1] in {"base_fee", "usage", "minimum"}:
            amounts.append(Decimal(words[-1]))
        elif words[:1] == ["total"]:
            total = Decimal(words[1])
    assert amounts and total is not None, block
    assert sum(amounts) == total, block
