"""MqttDriver: every MQTT device over one broker connection (aiomqtt), QoS 1, acknowledged only
after the outbox commit (DESIGN guarantee 1).

    broker --PUBLISH--> reader: route, map --Delivery--> writer queue --> outbox commit
                          |                                                  |
                          +--> pending, in receive order --> acker: wait for the commit, PUBACK

The reader maps each message (`edge.codecs.mqtt_payload`) and queues its `Delivery` for the
writer at once, so the writer can commit many in one transaction; the acker waits for each
commit in receive order and only then sends its PUBACK, so PUBACKs leave in the order the
PUBLISHes came (MQTT 3.1.1 section 4.6). A message that is lost between receive and commit (the
agent dies, the link drops) was never acknowledged: the broker keeps it in the gateway's
persistent session and sends it again, and its dedupe key makes the outbox store it once.

Manual acknowledgement is paho-mqtt's (`manual_ack_set`, `ack`); aiomqtt 2.5.1 does not expose
it, so `edge.drivers.aiomqtt_internals` reaches for aiomqtt's paho client, checked, in one place.

Bad input never stops the driver: a payload that cannot become an event (malformed JSON, a
missing or mistyped field, no rule for its topic) is counted in its device's health, logged
with topic and reason, and acknowledged, because a broker redelivers an unacknowledged message
forever and one poison message would block the session. A topic of no device is counted on the
broker link. A message with the RETAIN flag is the broker replaying the last message of a topic
on (re)subscribe, not a new event (a live one always arrives without the flag, MQTT 3.1.1
section 3.3.1.3): it is counted as "retained", acknowledged and not stored.

When the outbox is full nothing is acknowledged: the broker keeps the messages and the driver
retries the commit with backoff until the forwarder has made room.
"""

import asyncio
import logging
import ssl
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from edge.codecs.mqtt_payload import PayloadRejected, TopicRouter
from edge.config_mqtt import MqttConfig, MqttDeviceConfig
from edge.delivery import Delivery, Item
from edge.drivers.aiomqtt_internals import acknowledge, enable_manual_acks
from edge.errors import DeviceUnreachable, OutboxFull
from edge.health import DeviceHealth
from edge.polling import reconnecting
from shared.events import ClockState

log = logging.getLogger(__name__)

PENDING_MAX = 1_000
FULL_RETRY_INITIAL = 0.1
FULL_RETRY_MAX = 5.0
PREVIEW_BYTES = 200
SUBSCRIBE_QOS = 1
PAUSED = "paused: outbox full"


async def run_mqtt(
    config: MqttConfig,
    devices: list[MqttDeviceConfig],
    *,
    sink: "asyncio.Queue[Item | None]",
    health: dict[str, DeviceHealth],
    clock: Callable[[], ClockState],
) -> None:
    """Subscribe to every device's topics and deliver their messages until cancelled."""
    await MqttDriver(config, devices, sink=sink, health=health, clock=clock).run()


@dataclass(frozen=True, slots=True)
class _BrokerPolicy:
    """The broker link's reconnect policy, in the shape `reconnecting` takes."""

    id: str
    reconnect_initial: float
    reconnect_max: float


@dataclass(slots=True)
class _Received:
    """One received message, waiting for its commit (or for nothing) before its PUBACK."""

    mid: int
    qos: int
    topic: str
    delivery: Delivery | None = None
    device_id: str | None = None


class MqttDriver:
    """Runs every MQTT device of the site over one reconnecting broker connection."""

    def __init__(
        self,
        config: MqttConfig,
        devices: Sequence[MqttDeviceConfig],
        *,
        sink: "asyncio.Queue[Item | None]",
        health: dict[str, DeviceHealth],
        clock: Callable[[], ClockState],
    ) -> None:
        self.config = config
        self.devices = list(devices)
        self.sink = sink
        self.health = health
        self.clock = clock
        self.router = TopicRouter(self.devices, max_payload_bytes=config.max_payload_bytes)
        self.link = DeviceHealth("mqtt-broker", "mqtt", config.url)
        """The broker link itself: reconnect backoff, and messages on topics of no device."""
        self._full = False

    async def run(self) -> None:
        """Connect, subscribe and deliver until cancelled, reconnecting with backoff."""
        self._warn_about_weak_keys()
        policy = _BrokerPolicy(
            f"mqtt-broker {self.config.url}",
            self.config.reconnect_initial,
            self.config.reconnect_max,
        )
        await reconnecting(policy, self.link, self._session)

    async def _session(self) -> None:
        """One connection: subscribe, then read and acknowledge until the link fails."""
        try:
            client = await self._new_client()
            async with client:
                await self._subscribe(client)
                await self._consume(client)
        except aiomqtt.MqttError as exc:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise asyncio.CancelledError from exc  # stopping: not a link failure
            error = DeviceUnreachable(f"MQTT broker {self.config.url}: {exc}")
            self._link_down(error)
            raise error from exc
        except DeviceUnreachable as exc:
            self._link_down(exc)
            raise

    async def _new_client(self) -> aiomqtt.Client:
        password = await asyncio.to_thread(self._read_password)
        tls = await asyncio.to_thread(self._tls_context) if self.config.tls else None
        client = aiomqtt.Client(
            self.config.host,
            self.config.port,
            identifier=self.config.client_id,
            clean_session=self.config.clean_session,
            keepalive=max(1, round(self.config.keepalive)),
            timeout=self.config.timeout,
            username=self.config.username,
            password=password,
            tls_context=tls,
            logger=logging.getLogger(f"{__name__}.paho"),
        )
        # Before connecting: a persistent session's messages arrive right after CONNACK.
        enable_manual_acks(client)
        return client

    def _read_password(self) -> str | None:
        path = self.config.password_file
        if path is None:
            return None
        try:
            password = path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise DeviceUnreachable(f"cannot read password_file {path}: {exc.strerror}") from exc
        if not password:
            raise DeviceUnreachable(f"password_file {path} is empty")
        return password

    def _tls_context(self) -> ssl.SSLContext:
        config = self.config
        try:
            context = ssl.create_default_context(
                cafile=str(config.ca_file) if config.ca_file else None
            )
            if config.cert_file is not None and config.key_file is not None:
                context.load_cert_chain(config.cert_file, config.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise DeviceUnreachable(f"cannot load the MQTT TLS files: {exc}") from exc
        return context

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        """Subscribe to every device's filter; a refused one fails that device only."""
        topics = [(device.topic, SUBSCRIBE_QOS) for device in self.devices]
        granted: Sequence[int | ReasonCode] = await client.subscribe(topics)
        self.link.record_success([])
        for device, code in zip(self.devices, granted, strict=True):
            health = self.health[device.id]
            if _refused(code):
                health.record_failure(
                    DeviceUnreachable(f"the broker refused the subscription to {device.topic!r}")
                )
                continue
            health.record_success([])
        log.info(
            "mqtt connected",
            extra={
                "fields": {
                    "broker": self.config.url,
                    "client_id": self.config.client_id,
                    "topics": [topic for topic, _ in topics],
                }
            },
        )

    async def _consume(self, client: aiomqtt.Client) -> None:
        """Read and acknowledge until the link fails (the reader or acker raises)."""
        pending: asyncio.Queue[_Received] = asyncio.Queue(PENDING_MAX)
        try:
            await _until_one_fails(self._read(client, pending), self._ack_in_order(client, pending))
        finally:
            _abandon(pending)

    async def _read(self, client: aiomqtt.Client, pending: "asyncio.Queue[_Received]") -> None:
        async for message in client.messages:
            received = await self._accept(message)
            try:
                await pending.put(received)
            except asyncio.CancelledError:
                if received.delivery is not None:
                    _forget(received.delivery)
                raise

    async def _accept(self, message: aiomqtt.Message) -> _Received:
        """Map one message and queue its delivery; bad input is counted, logged and let go."""
        topic = message.topic.value
        received = _Received(message.mid, message.qos, topic)
        mapper = self.router.route(topic)
        if mapper is None:
            self.link.count("unknown_topic")
            self._reject(topic, message.payload, "unknown_topic", "no device has this topic")
            return received
        device_id = mapper.device.id
        health = self.health[device_id]
        if message.retain:  # replayed on subscribe; it was delivered live when published
            health.count("retained")
            log.info(
                "mqtt retained message skipped",
                extra={"fields": {"device_id": device_id, "topic": topic}},
            )
            return received
        try:
            mapped = mapper.map_message(
                topic, message.payload, received_at=datetime.now(UTC), clock=self.clock()
            )
        except PayloadRejected as exc:
            health.count(exc.reason)
            self._reject(topic, message.payload, exc.reason, exc.detail, device_id)
            return received
        health.record_success([])
        if self._full:
            health.state = PAUSED
        received.delivery = Delivery((mapped.draft,), (mapped.key,))
        received.device_id = device_id
        await self.sink.put(received.delivery)
        return received

    def _reject(
        self,
        topic: str,
        payload: bytes,
        reason: str,
        detail: str,
        device_id: str | None = None,
    ) -> None:
        log.warning(
            "mqtt message not stored",
            extra={
                "fields": {
                    "device_id": device_id,
                    "topic": topic,
                    "reason": reason,
                    "detail": detail,
                    "payload": payload[:PREVIEW_BYTES].decode("utf-8", errors="replace"),
                    "payload_bytes": len(payload),
                }
            },
        )

    async def _ack_in_order(
        self, client: aiomqtt.Client, pending: "asyncio.Queue[_Received]"
    ) -> None:
        while True:
            received = await pending.get()
            if received.delivery is not None:
                await self._until_committed(received)
            _acknowledge(client, received)

    async def _until_committed(self, received: _Received) -> None:
        """Wait for the commit; while the outbox is full, offer the delivery again with backoff."""
        assert received.delivery is not None
        wait = FULL_RETRY_INITIAL
        while True:
            try:
                fresh = await received.delivery.committed
            except OutboxFull:
                self._paused(True)
                await asyncio.sleep(wait)
                wait = min(wait * 2, FULL_RETRY_MAX)
                delivery = received.delivery
                received.delivery = Delivery(delivery.drafts, delivery.keys)
                await self.sink.put(received.delivery)
                continue
            self._paused(False)
            if fresh == 0 and received.device_id is not None:
                self.health[received.device_id].count("duplicate")
                log.info(
                    "mqtt redelivery already stored",
                    extra={"fields": {"device_id": received.device_id, "topic": received.topic}},
                )
            return

    def _paused(self, paused: bool) -> None:
        """Outbox full: every MQTT device waits (its messages stay with the broker)."""
        self._full = paused
        for device in self.devices:
            health = self.health[device.id]
            if paused:
                health.state = PAUSED
            elif health.state == PAUSED:
                health.state = "ok"

    def _link_down(self, error: DeviceUnreachable) -> None:
        for device in self.devices:
            self.health[device.id].record_failure(error)

    def _warn_about_weak_keys(self) -> None:
        for device in self.devices:
            for number, rule in enumerate(device.message, start=1):
                if rule.id_field is None and rule.time_field is None:
                    log.warning(
                        "mqtt rule has neither id_field nor time_field: byte-identical messages "
                        "are taken for redeliveries and stored once",
                        extra={"fields": {"device_id": device.id, "rule": number}},
                    )


def _refused(code: int | ReasonCode) -> bool:
    """A SUBACK return code of 0x80 or more refuses the subscription (MQTT 3.1.1 3.9.3)."""
    value = code.value if isinstance(code, ReasonCode) else code
    return int(value) >= 0x80


def _acknowledge(client: aiomqtt.Client, received: _Received) -> None:
    """PUBACK (QoS 1); nothing for QoS 0. On a dropped link it goes nowhere: the broker resends."""
    result = acknowledge(client, mid=received.mid, qos=received.qos)
    if result != paho.MQTT_ERR_SUCCESS:
        log.debug(
            "mqtt acknowledgement not sent",
            extra={"fields": {"mid": received.mid, "topic": received.topic, "rc": int(result)}},
        )


def _abandon(pending: "asyncio.Queue[_Received]") -> None:
    """The link is gone: unacknowledged messages will come again; stop waiting for them."""
    while not pending.empty():
        received = pending.get_nowait()
        if received.delivery is not None:
            _forget(received.delivery)


def _forget(delivery: Delivery) -> None:
    if not delivery.committed.done():
        delivery.committed.cancel()  # the writer still commits it; the redelivery is skipped
    elif not delivery.committed.cancelled():
        delivery.committed.exception()  # mark an OutboxFull as seen


async def _until_one_fails(*work: Coroutine[Any, Any, None]) -> None:
    """Run forever-loops together; when one ends (it failed), stop the others and re-raise."""
    tasks = [asyncio.create_task(coroutine) for coroutine in work]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
        raise RuntimeError("an MQTT loop ended without an error")  # they loop until they fail
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled():
                task.exception()
