"""The MQTT driver inside the real agent (writer, outbox file) against real Mosquitto brokers.

The shared broker (127.0.0.1:1883) serves most tests, each with its own client id and topic
prefix. Tests that restart a broker, read its packet log or cut a connection use a private
Mosquitto process (and a TCP proxy that resets the connection like a power cut, so the broker
never gets a DISCONNECT). The packet log shows what the gateway acknowledged and when the
broker redelivered (`d1`: the DUP flag).
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from edge.config import SiteConfig, parse_config
from edge.config_mqtt import MqttDeviceConfig
from edge.delivery import Delivery, Item
from edge.drivers.mqtt import run_mqtt
from edge.health import DeviceHealth
from edge.outbox import Outbox
from firmware_sims.embedded_broker import EmbeddedBroker
from firmware_sims.mqtt_device import (
    LightOff,
    LightOn,
    Motion,
    MqttDevice,
    Raw,
    SimulatedMqttSite,
    Step,
    StreamStart,
    StreamStop,
    default_scenario,
    render_broker,
    render_devices,
)
from shared.events import ClockState
from tests.support.agent import running_agent
from tests.support.mqtt import (
    PrivateMosquitto,
    TcpProxy,
    expected_summary,
    forget_session,
    make_tls_files,
    outbox_events,
    stored_summary,
    unique,
    write_password_file,
)
from tests.support.waiting import eventually

SITE = """\
[gateway]
id = "gw-mqtt"
cloud_url = "http://127.0.0.1:9"
data_dir = "{data_dir}"
outbox_budget_mb = {budget_mb}

"""
MQTT_DEVICES = ("camera-1", "home-1")


@dataclass
class Rig:
    """One gateway's MQTT identity and data directory, and the simulated devices' prefix."""

    url: str
    client_id: str
    prefix: str
    data_dir: Path

    def config(self, *, url: str | None = None, budget_mb: float = 64, **broker: str) -> SiteConfig:
        settings = {"reconnect_initial": '"50ms"', "reconnect_max": '"500ms"', **broker}
        text = (
            SITE.format(data_dir=self.data_dir, budget_mb=budget_mb)
            + render_broker(url or self.url, self.client_id, **settings)
            + "\n"
            + render_devices(SimulatedMqttSite(self.prefix))
        )
        return parse_config(text, source="test")

    def devices(self) -> list[MqttDeviceConfig]:
        return [d for d in self.config().device if isinstance(d, MqttDeviceConfig)]

    def simulator(self, url: str | None = None) -> MqttDevice:
        return MqttDevice(url or self.url, prefix=self.prefix)

    def stored(self) -> list[dict[str, Any]]:
        return outbox_events(self.data_dir)

    def topic(self, suffix: str) -> str:
        return f"{self.prefix}/{suffix}"


@pytest.fixture
async def rig(mqtt_broker: str, tmp_path: Path) -> AsyncIterator[Rig]:
    """A gateway on the shared broker; its persistent session is removed afterwards."""
    rig = Rig(mqtt_broker, unique("gw"), unique("tollgate-test"), tmp_path / "edge")
    yield rig
    await forget_session(mqtt_broker, rig.client_id)


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[PrivateMosquitto]:
    """A Mosquitto process of this test only (restartable, every packet logged)."""
    async with PrivateMosquitto(tmp_path / "mosquitto") as running:
        yield running


@pytest.fixture
def private_rig(broker: PrivateMosquitto, tmp_path: Path) -> Rig:
    return Rig(broker.url, unique("gw"), "site", tmp_path / "edge")


async def subscribed(health: dict[str, DeviceHealth]) -> None:
    """Wait until every MQTT device's subscription stands (messages published now arrive)."""
    await eventually(
        lambda: all(health[device].state == "ok" for device in MQTT_DEVICES),
        what="the MQTT devices to be subscribed",
    )


async def stored_count(rig: Rig, count: int) -> None:
    await eventually(lambda: len(rig.stored()) >= count, what=f"{count} events in the outbox")


def by_message(events: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in events:
        counts[event["attrs"]["message_id"]] = counts.get(event["attrs"]["message_id"], 0) + 1
    return counts


async def test_published_messages_are_stored_as_the_devices_sent_them(rig: Rig) -> None:
    async with running_agent(rig.config()) as agent, rig.simulator() as sim:
        await subscribed(agent.health)
        await sim.play(default_scenario().steps)
        await stored_count(rig, len(sim.expected))
    stored = rig.stored()
    assert [stored_summary(e) for e in stored] == [expected_summary(e) for e in sim.expected]
    stops = [e for e in stored if e["name"] == "stream_stop"]
    assert [(Decimal(e["quantity"]), e["unit"]) for e in stops] == [
        (Decimal("12.5"), "min"),
        (Decimal("3.75"), "min"),
    ]
    assert {e["clock"] for e in stored} == {"device"}
    assert all(e["attrs"]["topic"].startswith(rig.prefix + "/") for e in stored)


BAD_INPUT = [
    ("home/kitchen/motion", b"{not json", "home-1", "malformed_json"),
    ("home/kitchen/motion", b'["motion"]', "home-1", "not_an_object"),
    (
        "camera/camera-1/stream",
        b'{"id": "b1", "event": "stop", "stream": "front", "ts": "2026-11-21T10:00:00Z"}',
        "camera-1",
        "missing_field",
    ),
    (
        "camera/camera-1/stream",
        b'{"id": "b2", "event": "stop", "stream": "front", "ts": "2026-11-21T10:00:00Z", '
        b'"minutes": "twelve"}',
        "camera-1",
        "bad_quantity",
    ),
    (
        "home/living/light",
        b'{"id": "b3", "state": "on", "ts": "last tuesday"}',
        "home-1",
        "bad_time",
    ),
    ("home/living/light", b'{"id": "b4", "state": "dim", "ts": 1}', "home-1", "no_rule"),
    ("camera/camera-1/status", b'{"online": true}', "camera-1", "no_rule"),
    ("home/hall/motion", b'{"id": {"n": 1}, "ts": 1}', "home-1", "bad_field"),
]


@pytest.mark.parametrize(("suffix", "payload", "device", "reason"), BAD_INPUT)
async def test_bad_input_is_counted_and_logged_and_the_messages_around_it_are_stored(
    rig: Rig,
    caplog: pytest.LogCaptureFixture,
    suffix: str,
    payload: bytes,
    device: str,
    reason: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="edge.drivers.mqtt")
    async with running_agent(rig.config()) as agent, rig.simulator() as sim:
        await subscribed(agent.health)
        steps: list[Step] = [StreamStart(), Motion("hall"), Raw(suffix, payload)]
        steps += [StreamStop(Decimal("2.5")), LightOff(Decimal("0.125"), "hall")]
        await sim.play(steps)
        await stored_count(rig, 4)
        await eventually(lambda: agent.health[device].protocol[reason] == 1, what=reason)
        assert sum(h.protocol.total() for h in agent.health.values()) == 1
        assert all(agent.health[d].state == "ok" for d in MQTT_DEVICES)  # still running
    assert [stored_summary(e) for e in rig.stored()] == [expected_summary(e) for e in sim.expected]
    [record] = [r for r in caplog.records if r.getMessage() == "mqtt message not stored"]
    fields = record.fields  # type: ignore[attr-defined]
    assert (fields["topic"], fields["reason"], fields["device_id"]) == (
        rig.topic(suffix),
        reason,
        device,
    )
    assert fields["detail"] and fields["payload"] == payload.decode(errors="replace")


async def test_acknowledged_messages_good_or_bad_are_not_redelivered(rig: Rig) -> None:
    async with running_agent(rig.config()) as agent, rig.simulator() as sim:
        await subscribed(agent.health)
        await sim.play([StreamStart(), *(Raw(s, p) for s, p, _, _ in BAD_INPUT), LightOn()])
        await stored_count(rig, 2)
        await eventually(
            lambda: sum(h.protocol.total() for h in agent.health.values()) == len(BAD_INPUT),
            what="every bad message counted",
        )
    # Same client id, same persistent session: anything not acknowledged would come again.
    async with running_agent(rig.config()) as agent, rig.simulator() as sim:
        await subscribed(agent.health)
        await sim.publish(Motion("marker"))
        await stored_count(rig, 3)  # the broker sends what it kept before anything new
        assert all(not h.protocol for h in agent.health.values()), "something was redelivered"
    assert list(by_message(rig.stored()).values()) == [1, 1, 1]


async def test_topics_of_no_device_are_logged_acknowledged_and_skipped(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="edge.drivers.mqtt")
    async with running_agent(rig.config()) as agent:
        await subscribed(agent.health)  # the session now holds both devices' subscriptions
    # The home hub is removed from the config; the broker still sends its topics.
    config = rig.config()
    cameras_only = config.model_copy(update={"device": config.device[:1]})
    async with running_agent(cameras_only) as agent, rig.simulator() as sim:
        await eventually(lambda: agent.health["camera-1"].state == "ok", what="subscription")
        await sim.play([Motion("hall"), StreamStart(), Motion("hall")])
        await stored_count(rig, 1)
        await eventually(
            lambda: len([r for r in caplog.records if _reason(r) == "unknown_topic"]) == 2,
            what="two unknown topics logged",
        )
    records = [r for r in caplog.records if _reason(r) == "unknown_topic"]
    assert {r.fields["topic"] for r in records} == {rig.topic("home/hall/motion")}  # type: ignore[attr-defined]
    assert [e["name"] for e in rig.stored()] == ["stream_start"]


async def test_retained_replays_are_skipped_and_live_retained_messages_stored(
    private_rig: Rig,
) -> None:
    rig = private_rig
    async with rig.simulator() as sim:
        async with running_agent(rig.config()) as agent:
            await subscribed(agent.health)
            await sim.publish(StreamStart(), retain=True)  # live: it arrives without the flag
            await stored_count(rig, 1)
        await sim.publish(Motion("hall"), retain=True)  # queued for the session meanwhile
        async with running_agent(rig.config()) as agent:
            # On resubscribe the broker replays both topics' retained messages, flagged.
            await eventually(
                lambda: (
                    (
                        agent.health["camera-1"].protocol["retained"],
                        agent.health["home-1"].protocol["retained"],
                    )
                    == (1, 1)
                ),
                what="both replays skipped",
            )
            await stored_count(rig, 2)
    assert [stored_summary(e) for e in rig.stored()] == [expected_summary(e) for e in sim.expected]


def _reason(record: logging.LogRecord) -> str | None:
    return getattr(record, "fields", {}).get("reason")


async def test_pubacks_go_out_in_receive_order(broker: PrivateMosquitto, private_rig: Rig) -> None:
    async with running_agent(private_rig.config()) as agent, private_rig.simulator() as sim:
        await subscribed(agent.health)
        steps: list[Step] = []
        for n in range(15):
            steps += [StreamStart(), Raw("home/hall/motion", b"{bad"), LightOff(Decimal(n), "x")]
        await sim.play(steps)
        await stored_count(private_rig, 30)
        await eventually(
            lambda: len(_acks(broker, private_rig)) == 45, what="45 PUBACKs in the broker log"
        )
    packets = broker.packets(private_rig.client_id)
    sent = [mid for kind, mid in packets if kind == "PUBLISH"]
    assert _acks(broker, private_rig) == sent  # every message, in the order it was sent
    for mid in sent:  # each PUBACK after its PUBLISH
        assert packets.index(("PUBLISH", mid)) < packets.index(("PUBACK", mid))


def _acks(broker: PrivateMosquitto, rig: Rig) -> list[int]:
    return [mid for kind, mid in broker.packets(rig.client_id) if kind == "PUBACK"]


@contextlib.contextmanager
def undelivered_sink() -> Iterator["asyncio.Queue[Item | None]"]:
    """A writer queue nobody commits from: the gateway 'dies' before the outbox commit."""
    queue: asyncio.Queue[Item | None] = asyncio.Queue()
    yield queue
    while not queue.empty():
        item = queue.get_nowait()
        if isinstance(item, Delivery):
            item.committed.cancel()


@asynccontextmanager
async def bare_driver(
    rig: Rig, url: str, sink: "asyncio.Queue[Item | None]"
) -> AsyncIterator[dict[str, DeviceHealth]]:
    """The MQTT driver alone, delivering into `sink`; cancelled (killed) when the block ends."""
    config = rig.config(url=url)
    assert config.mqtt is not None
    devices = rig.devices()
    health = {d.id: DeviceHealth(d.id, d.driver, d.address) for d in devices}
    task = asyncio.create_task(
        run_mqtt(config.mqtt, devices, sink=sink, health=health, clock=lambda: ClockState.SYNCED)
    )
    try:
        await subscribed(health)
        yield health
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_message_received_but_not_committed_is_redelivered_after_a_crash(
    broker: PrivateMosquitto, private_rig: Rig
) -> None:
    rig = private_rig
    async with TcpProxy(broker.url) as proxy, rig.simulator() as sim:
        with undelivered_sink() as sink:
            async with bare_driver(rig, proxy.url, sink):
                await sim.publish(StreamStop(Decimal("12.5")))
                await eventually(lambda: sink.qsize() == 1, what="the message to be received")
                assert _acks(broker, rig) == []  # received, not committed: not acknowledged
                proxy.cut()  # power cut: no DISCONNECT reaches the broker
        assert rig.stored() == []
        async with running_agent(rig.config()) as agent:
            await stored_count(rig, 1)
            await eventually(lambda: len(_acks(broker, rig)) == 1, what="the PUBACK")
            assert agent.health["camera-1"].protocol["duplicate"] == 0
    assert [stored_summary(e) for e in rig.stored()] == [expected_summary(e) for e in sim.expected]
    assert "Sending PUBLISH to " + rig.client_id + " (d1, q1" in broker.log_text()  # redelivered


async def test_a_message_committed_but_not_acknowledged_is_stored_once_after_a_crash(
    broker: PrivateMosquitto, private_rig: Rig
) -> None:
    rig = private_rig
    rig.data_dir.mkdir(parents=True)
    outbox = Outbox(rig.data_dir / "outbox.sqlite", gateway_id="gw-mqtt", budget_bytes=1 << 26)
    async with TcpProxy(broker.url) as proxy, rig.simulator() as sim, outbox:
        with undelivered_sink() as sink:
            async with bare_driver(rig, proxy.url, sink):
                await sim.publish(LightOff(Decimal("41.25"), "living"))
                delivery = await asyncio.wait_for(sink.get(), 30)
                assert isinstance(delivery, Delivery)
                # The writer's commit, and the gateway dies before it can say so.
                await outbox.append(delivery.drafts, keys=delivery.keys)
                assert len(rig.stored()) == 1 and _acks(broker, rig) == []
                proxy.cut()
    async with running_agent(rig.config()) as agent:
        await eventually(lambda: len(_acks(broker, rig)) == 1, what="the PUBACK")
        await eventually(
            lambda: agent.health["home-1"].protocol["duplicate"] == 1, what="the redelivery"
        )
    assert [stored_summary(e) for e in rig.stored()] == [expected_summary(e) for e in sim.expected]
    assert "Sending PUBLISH to " + rig.client_id + " (d1, q1" in broker.log_text()


async def test_a_full_outbox_withholds_the_ack_and_the_broker_keeps_the_message(
    broker: PrivateMosquitto, private_rig: Rig
) -> None:
    rig = private_rig
    rig.data_dir.mkdir(parents=True)
    await _fill_outbox(rig.data_dir, megabytes=0.2)
    async with running_agent(rig.config(budget_mb=0.1)) as agent, rig.simulator() as sim:
        await subscribed(agent.health)
        await sim.publish(StreamStop(Decimal("7")))
        await eventually(
            lambda: agent.health["camera-1"].state == "paused: outbox full", what="the pause"
        )
        assert agent.outbox_full and _acks(broker, rig) == []
    async with running_agent(rig.config(budget_mb=64)) as agent:  # room again (a bigger disk)
        await eventually(lambda: len(rig.stored()) == 2001, what="the kept message")
        await eventually(lambda: len(_acks(broker, rig)) >= 1, what="the PUBACK")
    assert [stored_summary(e) for e in rig.stored()[2000:]] == [
        expected_summary(e) for e in sim.expected
    ]


async def _fill_outbox(data_dir: Path, *, megabytes: float) -> None:
    from tests.support.batches import draft

    async with Outbox(data_dir / "outbox.sqlite", gateway_id="gw-mqtt", budget_bytes=1) as box:
        await box.append([draft(n) for n in range(2000)], enforce_budget=False)
        assert (await box.stats()).used_bytes > megabytes * 1024 * 1024


async def test_a_broker_restart_loses_nothing_and_stores_nothing_twice(
    broker: PrivateMosquitto, private_rig: Rig
) -> None:
    rig = private_rig
    async with rig.simulator() as sim:
        async with running_agent(rig.config()) as agent:
            await subscribed(agent.health)
            await sim.play([StreamStart(), Motion("hall"), LightOn()])
            await stored_count(rig, 3)
            await broker.stop()
            await eventually(
                lambda: all(agent.health[d].state == "failing" for d in MQTT_DEVICES),
                what="the devices to show the broker down",
            )
            assert broker.url in str(agent.health["home-1"].last_error)
            await broker.start()
            await subscribed(agent.health)
            await sim.play([StreamStop(Decimal("1.5")), Motion("kitchen")])
            await stored_count(rig, 5)
        # Gateway away: the broker queues for its session, and keeps the queue over a restart.
        await sim.play([LightOff(Decimal("9.75")), StreamStart(stream="back")])
        await broker.stop()
        await broker.start()
        async with running_agent(rig.config()) as agent:
            await stored_count(rig, 7)
            await sim.publish(Motion("marker"))
            await stored_count(rig, 8)
    assert [stored_summary(e) for e in rig.stored()] == [expected_summary(e) for e in sim.expected]


async def test_credentials_and_tls(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path)
    passwords = write_password_file(tmp_path / "passwd", "gw", "s3cret")
    settings = (
        f"cafile {tls.ca}\ncertfile {tls.cert}\nkeyfile {tls.key}\npassword_file {passwords}\n"
    )
    async with PrivateMosquitto(
        tmp_path / "mosquitto", extra_config=settings, allow_anonymous=False
    ) as tls_broker:
        rig = Rig(f"mqtts://localhost:{tls_broker.port}", unique("gw"), "site", tmp_path / "edge")
        secret = tmp_path / "mqtt.password"
        secret.write_text("wrong\n")
        quoted = {"username": '"gw"', "password_file": f'"{secret}"', "ca_file": f'"{tls.ca}"'}
        async with running_agent(rig.config(**quoted)) as agent:
            await eventually(
                lambda: agent.health["camera-1"].consecutive_failures >= 2, what="refusals"
            )
            assert "authori" in str(agent.health["camera-1"].last_error).lower()
            secret.write_text("s3cret\n")  # the password is read again on each connect
            await subscribed(agent.health)
            sim = MqttDevice(
                rig.url, prefix="site", username="gw", password="s3cret", ca_file=tls.ca
            )
            async with sim:
                await sim.publish(StreamStop(Decimal("0.5")))
            await stored_count(rig, 1)
    assert [stored_summary(e) for e in rig.stored()] == [expected_summary(e) for e in sim.expected]


async def test_a_refused_subscription_fails_that_device_only(tmp_path: Path) -> None:
    # amqtt's taboo plugin refuses subscriptions to "data/classified" (SUBACK 0x80).
    taboo = {"amqtt.plugins.topic_checking.TopicTabooPlugin": {}}
    async with EmbeddedBroker(plugins=taboo) as embedded:
        rig = Rig(embedded.url, unique("gw"), "site", tmp_path / "edge")
        vault = MqttDeviceConfig.model_validate(
            {
                "id": "vault",
                "driver": "mqtt",
                "topic": "data/classified",
                "message": [{"name": "x"}],
            }
        )
        config = rig.config()
        config = config.model_copy(update={"device": [*config.device, vault]})
        async with running_agent(config) as agent, rig.simulator() as sim:
            await subscribed(agent.health)
            refused = agent.health["vault"]
            assert refused.state == "failing"
            assert "refused the subscription" in str(refused.last_error)
            await sim.play([StreamStart(), Motion("hall")])
            await stored_count(rig, 2)
    assert [stored_summary(e) for e in rig.stored()] == [expected_summary(e) for e in sim.expected]
