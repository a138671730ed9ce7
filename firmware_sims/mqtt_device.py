"""MqttDevice: simulated modern IoT devices publishing JSON over a real MQTT broker (QoS 1).

Two kinds of device share one publisher connection:

- cameras publish stream starts and stops on `<prefix>/camera/<camera>/stream`, the stop with
  the streamed minutes as a decimal string, the time as RFC 3339:
  `{"id": "...", "event": "stop", "stream": "front", "minutes": "12.5", "ts": "...Z"}`;
- a home-automation hub publishes motion and lights on `<prefix>/home/<room>/motion|light`,
  the light's energy as a JSON number in Wh, the time as epoch seconds (a JSON number):
  `{"id": "...", "state": "off", "energy_wh": 41.25, "ts": 1732183200.125}`.

`play()` publishes steps; `published` is every message the broker acknowledged, with the event
the agent must make of it (None for deliberately bad messages): the truth a test compares the
outbox and the cloud with. A publish that fails because the broker went away is retried on a
new connection with the same payload until the broker acknowledges it (a retry may deliver a
message twice; its `id` makes the agent store it once).

`render_devices()` is the site config of these devices (`tollgate-sim mqtt-device` prints it).
"""

import argparse
import asyncio
import contextlib
import json
import ssl
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import aiomqtt

from edge.lifecycle import Lifecycle
from firmware_sims.embedded_broker import broker_url

RETRY_INITIAL = 0.05
RETRY_MAX = 1.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ExpectedEvent:
    """What the agent must store for one published message."""

    device_id: str
    name: str
    kind: str
    channel: str
    occurred_at: datetime
    message_id: str
    quantity: Decimal | None = None
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class Publication:
    """One message the broker acknowledged, and the event it stands for (None: bad on purpose)."""

    topic: str
    payload: bytes
    event: ExpectedEvent | None


@dataclass(frozen=True, slots=True)
class StreamStart:
    """A camera starts streaming."""

    camera: str = "camera-1"
    stream: str = "front"


@dataclass(frozen=True, slots=True)
class StreamStop:
    """A camera stops streaming after `minutes` (sent as a decimal string)."""

    minutes: Decimal
    camera: str = "camera-1"
    stream: str = "front"


@dataclass(frozen=True, slots=True)
class Motion:
    """A motion sensor in `room` fires."""

    room: str = "hall"


@dataclass(frozen=True, slots=True)
class LightOn:
    """A light in `room` is switched on."""

    room: str = "living"


@dataclass(frozen=True, slots=True)
class LightOff:
    """A light in `room` is switched off, having used `energy_wh` (sent as a JSON number)."""

    energy_wh: Decimal
    room: str = "living"


@dataclass(frozen=True, slots=True)
class Raw:
    """Exactly these bytes on `<prefix>/<suffix>`: malformed or unmapped input, on purpose."""

    suffix: str
    payload: bytes


Step = StreamStart | StreamStop | Motion | LightOn | LightOff | Raw


@dataclass(frozen=True, slots=True)
class Scenario:
    """Steps played in a loop, `tick` seconds apart."""

    steps: tuple[Step, ...]
    tick: float = 0.5


def default_scenario(*, tick: float = 0.5) -> Scenario:
    """A camera session of 12.5 minutes and an evening at home."""
    return Scenario(
        steps=(
            StreamStart(),
            Motion("hall"),
            LightOn("living"),
            Motion("kitchen"),
            StreamStop(Decimal("12.5")),
            LightOff(Decimal("41.25"), "living"),
            StreamStart(stream="garden"),
            StreamStop(Decimal("3.75"), stream="garden"),
        ),
        tick=tick,
    )


def now_ms() -> datetime:
    """Now, truncated to milliseconds (what the payloads carry)."""
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def epoch_seconds(moment: datetime) -> Decimal:
    """Exact epoch seconds of a millisecond time (no float on the way)."""
    since = moment - EPOCH
    millis = (since.days * 86_400 + since.seconds) * 1000 + since.microseconds // 1000
    return Decimal(millis) / 1000


class MqttDevice:
    """Cameras and a home hub publishing through one broker connection (QoS 1)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        home_id: str = "home-1",
        client_id: str | None = None,
        scenario: Scenario | None = None,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"{url!r} is not a broker URL like mqtt://127.0.0.1:1883")
        self.host = parts.hostname
        self.port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self._tls = ssl.create_default_context(cafile=ca_file) if parts.scheme == "mqtts" else None
        self._credentials = (username, password)
        self.prefix = prefix.strip("/")
        self.home_id = home_id
        self.client_id = client_id or f"tollgate-sim-{uuid.uuid4().hex[:12]}"
        self.scenario = scenario or default_scenario()
        self.published: list[Publication] = []
        self._run = uuid.uuid4().hex[:8]  # ids stay unique across runs of the simulator
        self._client: aiomqtt.Client | None = None
        self._connecting = asyncio.Lock()
        self._sequence = 0
        self._lifecycle = Lifecycle(f"MqttDevice {self.client_id!r}")

    async def __aenter__(self) -> Self:
        """Connect to the broker."""
        self._lifecycle.enter()
        await self._connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Disconnect."""
        self._lifecycle.close()
        await self._disconnect()

    @property
    def expected(self) -> list[ExpectedEvent]:
        """The events the agent must store, in publishing order."""
        return [p.event for p in self.published if p.event is not None]

    async def play(self, steps: Iterable[Step], *, tick: float = 0) -> list[Publication]:
        """Publish each step (`tick` seconds apart); return what the broker acknowledged."""
        done = []
        for step in steps:
            done.append(await self.publish(step))
            if tick:
                await asyncio.sleep(tick)
        return done

    async def burst(self, steps: Iterable[Step]) -> list[Publication]:
        """Publish every step at once (many in flight, in no particular order)."""
        return list(await asyncio.gather(*(self.publish(step) for step in steps)))

    async def run_forever(self) -> None:
        """Play the scenario in a loop until cancelled."""
        while True:
            await self.play(self.scenario.steps, tick=self.scenario.tick)

    async def publish(self, step: Step, *, retain: bool = False) -> Publication:
        """Publish one step, retrying on a new connection until the broker acknowledges it."""
        self._lifecycle.require_open()
        topic, payload, event = self._message(step)
        await self._publish_reliably(topic, payload, retain)
        publication = Publication(topic, payload, event)
        self.published.append(publication)
        return publication

    def _message(self, step: Step) -> tuple[str, bytes, ExpectedEvent | None]:
        if isinstance(step, Raw):
            return f"{self.prefix}/{step.suffix}", step.payload, None
        self._sequence += 1
        message_id = f"{self._run}-{self._sequence}"
        at = now_ms()
        if isinstance(step, StreamStart | StreamStop):
            return self._camera(step, message_id, at)
        return self._home(step, message_id, at)

    def _camera(
        self, step: StreamStart | StreamStop, message_id: str, at: datetime
    ) -> tuple[str, bytes, ExpectedEvent]:
        document: dict[str, object] = {
            "id": message_id,
            "event": "start" if isinstance(step, StreamStart) else "stop",
            "stream": step.stream,
            "ts": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        if isinstance(step, StreamStart):
            event = ExpectedEvent(
                step.camera, "stream_start", "activation", step.stream, at, message_id
            )
        else:
            document["minutes"] = str(step.minutes)
            event = ExpectedEvent(
                step.camera,
                "stream_stop",
                "deactivation",
                step.stream,
                at,
                message_id,
                step.minutes,
                "min",
            )
        topic = f"{self.prefix}/camera/{step.camera}/stream"
        return topic, dump_json(document), event

    def _home(
        self, step: Motion | LightOn | LightOff, message_id: str, at: datetime
    ) -> tuple[str, bytes, ExpectedEvent]:
        document: dict[str, object] = {"id": message_id, "ts": epoch_seconds(at)}
        if isinstance(step, Motion):
            document["state"] = "detected"
            sensor, name, kind = "motion", "motion", "activity"
        else:
            document["state"] = "on" if isinstance(step, LightOn) else "off"
            sensor, name, kind = "light", f"light_{document['state']}", "activation"
        quantity = unit = None
        if isinstance(step, LightOff):
            document["energy_wh"] = step.energy_wh
            kind, quantity, unit = "deactivation", step.energy_wh, "Wh"
        event = ExpectedEvent(self.home_id, name, kind, step.room, at, message_id, quantity, unit)
        topic = f"{self.prefix}/home/{step.room}/{sensor}"
        return topic, dump_json(document), event

    async def _publish_reliably(self, topic: str, payload: bytes, retain: bool) -> None:
        wait = RETRY_INITIAL
        while True:
            client = None
            try:
                client = await self._connected()
                await client.publish(topic, payload, qos=1, retain=retain)
                return
            except aiomqtt.MqttError:
                await self._drop(client)
                await asyncio.sleep(wait)
                wait = min(wait * 2, RETRY_MAX)

    async def _connected(self) -> aiomqtt.Client:
        async with self._connecting:  # concurrent publishes share one connection
            if self._client is None:
                await self._connect()
            assert self._client is not None
            return self._client

    async def _drop(self, client: aiomqtt.Client | None) -> None:
        async with self._connecting:
            if client is not None and client is self._client:
                await self._disconnect()

    async def _connect(self) -> None:
        username, password = self._credentials
        client = aiomqtt.Client(
            self.host,
            self.port,
            identifier=self.client_id,
            timeout=5,
            username=username,
            password=password,
            tls_context=self._tls,
        )
        await client.__aenter__()
        self._client = client

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(None, None, None)


def dump_json(document: dict[str, object]) -> bytes:
    """Flat JSON whose Decimal values are written as JSON numbers, digit for digit."""
    parts = []
    for key, value in document.items():
        text = str(value) if isinstance(value, Decimal) else json.dumps(value)
        parts.append(f"{json.dumps(key)}: {text}")
    return ("{" + ", ".join(parts) + "}").encode()


@dataclass(frozen=True, slots=True)
class SimulatedMqttSite:
    """What the agent's config needs to know about the simulated devices."""

    prefix: str
    cameras: Sequence[str] = ("camera-1",)
    home_id: str = "home-1"


def render_broker(url: str, client_id: str, **settings: str) -> str:
    """The `[mqtt]` section of a site config (settings are TOML values, already quoted)."""
    lines = ["[mqtt]", f'url = "{url}"', f'client_id = "{client_id}"']
    lines += [f"{key} = {value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def render_devices(site: SimulatedMqttSite) -> str:
    """`[[device]]` entries mapping the simulated cameras and home hub (TOML)."""
    blocks = [_camera_device(site.prefix, camera) for camera in site.cameras]
    blocks.append(_home_device(site.prefix, site.home_id))
    return "\n".join(blocks)


def _camera_device(prefix: str, camera: str) -> str:
    common = 'channel_field = "stream"\ntime_field = "ts"\nid_field = "id"\n'
    return (
        f'[[device]]\nid = "{camera}"\ndriver = "mqtt"\ntopic = "{prefix}/camera/{camera}/#"\n\n'
        f'[[device.message]]\ntopic = "{prefix}/camera/{camera}/stream"\n'
        'match = { event = "start" }\nname = "stream_start"\nkind = "activation"\n'
        f"{common}\n"
        f'[[device.message]]\ntopic = "{prefix}/camera/{camera}/stream"\n'
        'match = { event = "stop" }\nname = "stream_stop"\nkind = "deactivation"\n'
        f'quantity_field = "minutes"\nunit = "min"\n{common}'
    )


def _home_device(prefix: str, home_id: str) -> str:
    common = 'channel_level = -2\ntime_field = "ts"\nid_field = "id"\n'
    return (
        f'[[device]]\nid = "{home_id}"\ndriver = "mqtt"\ntopic = "{prefix}/home/#"\n\n'
        f'[[device.message]]\ntopic = "{prefix}/home/+/motion"\nname = "motion"\n{common}\n'
        f'[[device.message]]\ntopic = "{prefix}/home/+/light"\nmatch = {{ state = "on" }}\n'
        f'name = "light_on"\nkind = "activation"\n{common}\n'
        f'[[device.message]]\ntopic = "{prefix}/home/+/light"\nmatch = {{ state = "off" }}\n'
        'name = "light_off"\nkind = "deactivation"\nquantity_field = "energy_wh"\nunit = "Wh"\n'
        f"{common}"
    )


async def run_mqtt_device(args: argparse.Namespace) -> int:
    """Publish the default scenario until `--duration` has passed or it is cancelled."""
    async with broker_url(args.broker) as url:
        device = MqttDevice(url, prefix=args.prefix, scenario=default_scenario(tick=args.tick))
        async with device:
            site = SimulatedMqttSite(device.prefix)
            print(f"mqtt-device publishing to {url} under {device.prefix}/", flush=True)
            print("# site config for these devices:", flush=True)
            print(render_broker(url, "site-gw1") + "\n" + render_devices(site), flush=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(args.duration):
                    await device.run_forever()
        print(f"mqtt-device published {len(device.published)} messages", flush=True)
    return 0
