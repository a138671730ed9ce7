"""A printer-port panel on a pseudo-terminal, read with a regex (`driver = "lines"`), through
the agent to the collector, on SQLite and PostgreSQL."""

from pathlib import Path
from typing import Any

from firmware_sims.it100_panel import LinesPanel
from firmware_sims.processes import fetch_events
from tests.e2e.conftest import (
    agent_status,
    running_site,
)
from tests.support.waiting import eventually

GATEWAY_ID = "site-printer-gw1"
PATTERN = (
    r"^(?P<occurred_at>\S+) (?P<name>ALARM|ARMED|DISARMED) ZONE (?P<zone>\d{3}) "
    r"PARTITION (?P<channel>\d)$"
)


def device(path: Path) -> str:
    """The printer's device table (TOML literal string: the regex keeps its backslashes)."""
    return (
        f'\n[[device]]\nid = "printer-1"\ndriver = "lines"\nport = "{path}"\n'
        f"pattern = '{PATTERN}'\n"
        'reconnect_initial = "100ms"\nreconnect_max = "500ms"\n'
    )


PRINTED = [
    "2026-11-21T10:00:01Z ARMED ZONE 000 PARTITION 1",
    "2026-11-21T10:05:07Z ALARM ZONE 004 PARTITION 1",
    "PAPER OUT",  # what the regex does not describe is counted, not stored
    "2026-11-21T10:09:30Z DISARMED ZONE 000 PARTITION 1",
]


async def test_printed_lines_become_events(db_url: str, tmp_path: Path) -> None:
    async with LinesPanel(link_path=tmp_path / "ttyPRN") as panel:
        devices = device(panel.link_path)
        async with running_site(
            db_url=db_url, tmp_path=tmp_path, gateway_id=GATEWAY_ID, devices=devices
        ) as (agent, client):

            async def port_open() -> bool:
                devices = agent_status(agent).get("devices", [])
                return bool(devices) and devices[0]["state"] == "ok"

            await eventually(port_open, what="the agent to open the printer port")
            for line in PRINTED:
                panel.write_line(line)

            async def stored() -> list[dict[str, Any]]:
                return await fetch_events(client, gateway_id=GATEWAY_ID)

            async def three() -> bool:
                return len(await stored()) == 3

            await eventually(three, what="three events")
            events = await stored()

            async def counted() -> bool:
                return agent_status(agent)["devices"][0]["protocol"].get("unmatched") == 1

            await eventually(counted, what="the unmatched line to be counted")
    assert [(e["name"], e["channel"], e["attrs"]["zone"]) for e in events] == [
        ("ARMED", "1", "000"),
        ("ALARM", "1", "004"),
        ("DISARMED", "1", "000"),
    ]
    assert [e["occurred_at"] for e in events] == [
        "2026-11-21T10:00:01.000000Z",
        "2026-11-21T10:05:07.000000Z",
        "2026-11-21T10:09:30.000000Z",
    ]
    assert all(e["clock"] == "device" and e["kind"] == "activity" for e in events)
