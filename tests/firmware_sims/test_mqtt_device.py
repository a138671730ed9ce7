"""The MQTT device simulator: what it reports is what a subscriber receives, over real brokers."""

import asyncio
import json
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import aiomqtt
import pytest

from edge.config import parse_config
from firmware_sims.cli import main
from firmware_sims.embedded_broker import EmbeddedBroker
from firmware_sims.mqtt_device import (
    LightOff,
    Motion,
    MqttDevice,
    Raw,
    StreamStart,
    StreamStop,
    default_scenario,
)
from tests.support.mqtt import (
    PrivateMosquitto,
    unique,
)
from tests.support.waiting import eventually


@asynccontextmanager
async def subscriber(url: str, topic: str) -> AsyncIterator[list[aiomqtt.Message]]:
    """Collects every message on `topic` while the block runs."""
    host, port = url.removeprefix("mqtt://").split(":")
    received: list[aiomqtt.Message] = []
    async with aiomqtt.Client(host, int(port), identifier=unique("sub")) as client:
        await client.subscribe(topic, qos=1)

        async def collect() -> None:
            async for message in client.messages:
                received.append(message)

        task = asyncio.create_task(collect())
        try:
            yield received
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_subscribers_receive_exactly_what_the_simulator_reports(mqtt_broker: str) -> None:
    prefix = unique("sim-test")
    async with (
        subscriber(mqtt_broker, f"{prefix}/#") as received,
        MqttDevice(mqtt_broker, prefix=prefix) as sim,
    ):
        await sim.play([*default_scenario().steps, Raw("home/x/motion", b"{oops")])
        await eventually(lambda: len(received) == len(sim.published), what="every message")
    assert [(m.topic.value, m.payload) for m in received] == [
        (p.topic, p.payload) for p in sim.published
    ]
    assert sim.published[-1].event is None and len(sim.expected) == 8
    stop = json.loads(sim.published[4].payload, parse_float=Decimal)
    assert stop["minutes"] == "12.5" and stop["ts"].endswith("Z")  # a decimal string, RFC 3339
    light = sim.published[5].payload
    assert b'"energy_wh": 41.25' in light  # a JSON number, digit for digit (never a float)
    ts = json.loads(light, parse_float=Decimal)["ts"]
    assert Decimal(ts).as_tuple().exponent >= -3  # epoch seconds with milliseconds


async def test_message_ids_are_unique_and_events_carry_them(mqtt_broker: str) -> None:
    async with MqttDevice(mqtt_broker, prefix=unique("sim-test")) as sim:
        await sim.play([StreamStart(), StreamStop(Decimal("1")), Motion(), LightOff(Decimal(2))])
    ids = [json.loads(p.payload)["id"] for p in sim.published]
    assert len(set(ids)) == 4 and [e.message_id for e in sim.expected] == ids
    assert [(e.device_id, e.name, e.kind, e.quantity, e.unit) for e in sim.expected] == [
        ("camera-1", "stream_start", "activation", None, None),
        ("camera-1", "stream_stop", "deactivation", Decimal(1), "min"),
        ("home-1", "motion", "activity", None, None),
        ("home-1", "light_off", "deactivation", Decimal(2), "Wh"),
    ]


async def test_a_publish_during_a_broker_restart_is_retried_until_acknowledged(
    tmp_path: Path,
) -> None:
    async with PrivateMosquitto(tmp_path) as broker, MqttDevice(broker.url, prefix="p") as sim:
        await sim.publish(Motion("before"))
        await broker.stop()
        pending = asyncio.create_task(sim.publish(Motion("during")))
        await asyncio.sleep(0.3)  # let it fail at least once against the stopped broker
        assert not pending.done()
        await broker.start()
        async with subscriber(broker.url, "p/#") as received:
            await pending
            await sim.publish(Motion("after"))
            await eventually(lambda: len(received) == 2, what="the later messages")
    assert [e.channel for e in sim.expected] == ["before", "during", "after"]


async def test_the_embedded_broker_carries_the_simulator() -> None:
    async with (
        EmbeddedBroker() as embedded,
        subscriber(embedded.url, "e/#") as received,
        MqttDevice(embedded.url, prefix="e") as sim,
    ):
        await sim.play([StreamStart(), StreamStop(Decimal("0.25"))])
        await eventually(lambda: len(received) == 2, what="both messages")
    assert [m.payload for m in received] == [p.payload for p in sim.published]


def test_the_mqtt_device_command_prints_a_valid_site_config(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["mqtt-device", "--duration", "1", "--tick", "0.05", "--prefix", "cli"]) == 0
    out = capsys.readouterr().out
    assert "mqtt-device publishing to mqtt://127.0.0.1:" in out
    published = int(out.rsplit("published ", 1)[1].split()[0])
    assert published > 0
    snippet = out[out.index("[mqtt]") : out.index("mqtt-device published")]
    gateway = '[gateway]\nid = "gw"\ncloud_url = "http://127.0.0.1:1"\ndata_dir = "/tmp/x"\n'
    config = parse_config(gateway + snippet, source="printed")
    assert [d.id for d in config.device] == ["camera-1", "home-1"]
    assert tomllib.loads(snippet)["mqtt"]["client_id"] == "site-gw1"


def test_the_command_refuses_a_bad_broker_url(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["mqtt-device", "--broker", "http://x", "--duration", "1"])
    assert exited.value.code == 2
    assert "'http://x' is not a broker URL like mqtt://127.0.0.1:1883" in capsys.readouterr().err
