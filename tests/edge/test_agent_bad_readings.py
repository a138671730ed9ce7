"""One bad device never stops the agent: the real agent with two pymodbus panels on TCP, one of
which serves a reading the normalizer must refuse; and a point whose type changed in the config
between two runs on the same data_dir (its stored last value no longer fits)."""

import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from firmware_sims.modbus_panel import ModbusPanel, Scenario, SimCounter, SimGauge
from tests.support.agent import running_agent
from tests.support.waiting import eventually

GOOD = "good-panel"
BAD = "bad-panel"
WAIT = 60.0


def site_config(data_dir: Path, devices: str) -> str:
    """A site whose cloud is unreachable (events stay in the outbox) and without the page."""
    return (
        f'[gateway]\nid = "gw-bad"\ncloud_url = "http://127.0.0.1:9"\ndata_dir = "{data_dir}"\n\n'
        '[forwarder]\nretry_initial = "1s"\nretry_max = "1s"\n\n'
        "[diagnostics]\nenabled = false\n\n" + devices
    )


def modbus_device(device_id: str, port: int, points: str) -> str:
    return (
        f'[[device]]\nid = "{device_id}"\ndriver = "modbus"\nurl = "tcp://127.0.0.1:{port}"\n'
        'poll_interval = "50ms"\ntimeout = "1s"\nreconnect_initial = "100ms"\n'
        f'reconnect_max = "500ms"\n{points}\n'
    )


def counter_point(name: str, table: str, address: int, type_: str, **extra: str) -> str:
    fields = "".join(f"{key} = {value}\n" for key, value in extra.items())
    return (
        f'[[device.point]]\nname = "{name}"\ntable = "{table}"\naddress = {address}\n'
        f'type = "{type_}"\n{fields}'
    )


def outbox_events(data_dir: Path) -> list[dict[str, object]]:
    """Every event waiting in the running agent's outbox (a read-only look)."""
    db = sqlite3.connect(f"file:{data_dir / 'outbox.sqlite'}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute("SELECT wire FROM events ORDER BY seq").fetchall()
    finally:
        db.close()
    return [orjson.loads(row[0]) for row in rows]


def usage(data_dir: Path, device_id: str, name: str) -> Decimal:
    """The sum of a point's quantities waiting in the outbox."""
    return sum(
        (
            Decimal(str(e["quantity"]))
            for e in outbox_events(data_dir)
            if e["device_id"] == device_id and e["name"] == name
        ),
        Decimal(0),
    )


@dataclass
class BadPoint:
    """A point whose reading the normalizer must refuse, as the panel serves it."""

    sim: SimCounter | SimGauge
    config: str


BAD_POINTS = {
    # The outbox stores counters as SQLite's signed 64-bit INTEGER: this one cannot be stored.
    "uint64_counter_past_2**63": BadPoint(
        SimCounter("meter", "holding", 20, "uint64", initial=2**63 + 5),
        counter_point("meter", "holding", 20, "uint64"),
    ),
    # A measurement beyond the event contract's 30 integer digits.
    "float64_gauge_1e300": BadPoint(
        SimGauge("level", "input", 20, "float64", initial=1e300),
        counter_point("level", "input", 20, "float64", kind='"gauge"', unit='"l"'),
    ),
}


@asynccontextmanager
async def two_panels(bad: BadPoint) -> AsyncIterator[tuple[ModbusPanel, ModbusPanel]]:
    good_counters = (SimCounter("door_open", "input", 0, "uint16", initial=10),)
    bad_counters = (SimCounter("pour", "holding", 0, "uint16", initial=100),)
    if isinstance(bad.sim, SimCounter):
        bad_scenario = Scenario(counters=(*bad_counters, bad.sim), tick=0)
    else:
        bad_scenario = Scenario(counters=bad_counters, gauges=(bad.sim,), tick=0)
    async with (
        ModbusPanel(port=0, scenario=Scenario(counters=good_counters, tick=0)) as good,
        ModbusPanel(port=0, scenario=bad_scenario) as bad_panel,
    ):
        yield good, bad_panel


@pytest.mark.parametrize("bad", BAD_POINTS.values(), ids=BAD_POINTS.keys())
async def test_a_bad_reading_is_counted_and_every_other_reading_goes_on(
    tmp_path: Path, bad: BadPoint
) -> None:
    data_dir = tmp_path / "edge"
    async with two_panels(bad) as (good, bad_panel):
        config = site_config(
            data_dir,
            modbus_device(GOOD, good.port, counter_point("door_open", "input", 0, "uint16"))
            + modbus_device(
                BAD, bad_panel.port, counter_point("pour", "holding", 0, "uint16") + bad.config
            ),
        )
        async with running_agent(config) as agent:
            health = agent.health[BAD]
            await eventually(lambda: health.bad_readings >= 3, what="bad readings counted")
            # Usage on both devices after the bad readings began still reaches the outbox.
            for round_ in range(1, 4):
                await good.advance("door_open", 2)
                await bad_panel.advance("pour", 5)
                await eventually(
                    lambda n=round_: (
                        usage(data_dir, GOOD, "door_open") == 2 * n
                        and usage(data_dir, BAD, "pour") == 5 * n
                    ),
                    what=f"round {round_} of usage in the outbox",
                    limit=WAIT,
                )
            status = await agent.status("running")

    names = {(e["device_id"], e["name"]) for e in outbox_events(data_dir)}
    assert names == {(GOOD, "door_open"), (BAD, "pour")}  # nothing of the bad point
    devices = {d["device_id"]: d for d in status["devices"]}
    assert devices[BAD]["bad_readings"] >= 3
    assert devices[BAD]["errors"]["bad_reading"] == devices[BAD]["bad_readings"]
    assert bad.sim.name in devices[BAD]["last_bad_reading"]
    assert devices[BAD]["state"] == "ok"  # the device answers; one of its points is bad
    assert devices[GOOD]["bad_readings"] == 0


async def test_a_point_changed_from_uint32_to_uint16_starts_a_fresh_baseline(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "edge"
    # Little word order: the low word is at address 10, so a uint16 there reads it.
    counters = (SimCounter("energy", "holding", 10, "uint32", "little", initial=70_000),)
    wide = counter_point("energy", "holding", 10, "uint32", word_order='"little"')
    narrow = counter_point("energy", "holding", 10, "uint16")
    async with ModbusPanel(port=0, scenario=Scenario(counters=counters, tick=0)) as panel:
        first = site_config(data_dir, modbus_device(GOOD, panel.port, wide))
        async with running_agent(first) as agent:
            await eventually(
                lambda: agent.health[GOOD].last_values.get("energy") == 70_000,
                what="the baseline reading",
            )
            await panel.advance("energy", 7)
            await eventually(lambda: usage(data_dir, GOOD, "energy") == 7, what="first run usage")
        with sqlite3.connect(data_dir / "outbox.sqlite") as db:
            stored = db.execute("SELECT value FROM counters").fetchall()
        assert stored == [(70_007,)]  # does not fit 16 bits

        await panel.advance("energy", 3)  # while the agent is down: counted by the baseline
        caplog.set_level(logging.WARNING, logger="edge.agent")
        config = site_config(data_dir, modbus_device(GOOD, panel.port, narrow))
        async with running_agent(config) as agent:
            await eventually(
                lambda: agent.health[GOOD].last_values.get("energy") == 70_010 % 2**16,
                what="a reading under the new type",
            )
            await panel.advance("energy", 4)
            await eventually(lambda: usage(data_dir, GOOD, "energy") == 7 + 4, what="new deltas")
            assert agent.health[GOOD].bad_readings == 0

    events = [e for e in outbox_events(data_dir) if e["name"] == "energy"]
    assert [e["quantity"] for e in events] == ["7", "4"]
    assert not any(e["attrs"].get("reset") for e in events)  # type: ignore[union-attr]
    mismatch = [r for r in caplog.records if "no longer fits" in r.getMessage()]
    assert len(mismatch) == 1
    assert mismatch[0].fields["stored"] == 70_007  # type: ignore[attr-defined]
