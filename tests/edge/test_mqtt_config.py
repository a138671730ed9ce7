"""The [mqtt] section and MQTT devices: a good config loads; each mistake names line and field."""

import pytest

from edge.config import parse_config
from edge.config_mqtt import MqttDeviceConfig, check_mqtt_devices
from edge.errors import ConfigError
from firmware_sims.mqtt_device import SimulatedMqttSite, render_broker, render_devices

GOOD = """\
[gateway]
id = "site-042-gw1"
cloud_url = "http://127.0.0.1:8000"
data_dir = "/var/lib/tollgate"

[mqtt]
url = "mqtts://broker.example.com"
client_id = "site-042-gw1"
username = "site-042"
password_file = "/etc/tollgate/mqtt.password"
ca_file = "/etc/tollgate/ca.pem"
keepalive = "20s"

[[device]]
id = "camera-7"
driver = "mqtt"
topic = "site42/camera-7/#"

[[device.message]]
topic = "site42/camera-7/stream"
match = { event = "stop", final = true }
name = "stream_stop"
kind = "deactivation"
quantity_field = "data.minutes"
unit = "min"
time_field = "ts"
epoch_unit = "ms"
id_field = "id"
channel_field = "stream"
attrs = ["resolution"]

[[device.message]]
name_field = "event"
"""


def test_good_config_loads() -> None:
    config = parse_config(GOOD, source="site.toml")
    assert config.mqtt is not None
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.tls) == (
        "broker.example.com",
        8883,
        True,
    )
    assert config.mqtt.clean_session is False  # a persistent session unless asked otherwise
    assert config.mqtt.keepalive == 20.0
    camera = config.device[0]
    assert isinstance(camera, MqttDeviceConfig)
    stop, other = camera.message
    assert stop.match == {"event": "stop", "final": True}
    assert (stop.quantity_field, stop.unit, stop.epoch_unit) == ("data.minutes", "min", "ms")
    assert (other.topic, other.event_kind, other.name_field) == ("#", "activity", "event")
    assert camera.address == "site42/camera-7/#"


def test_plain_mqtt_defaults_to_port_1883() -> None:
    text = GOOD.replace('url = "mqtts://broker.example.com"', 'url = "mqtt://10.0.0.5"')
    text = text.replace('ca_file = "/etc/tollgate/ca.pem"\n', "")
    config = parse_config(text, source="site.toml")
    assert config.mqtt is not None
    assert (config.mqtt.port, config.mqtt.tls) == (1883, False)


def test_the_simulator_config_is_valid() -> None:
    text = (
        GOOD[: GOOD.index("[mqtt]")]
        + render_broker("mqtt://127.0.0.1:1883", "gw")
        + render_devices(SimulatedMqttSite("sim", cameras=("camera-1", "camera-2")))
    )
    config = parse_config(text, source="site.toml")
    assert [d.id for d in config.device] == ["camera-1", "camera-2", "home-1"]
    check_mqtt_devices([d for d in config.device if isinstance(d, MqttDeviceConfig)])


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'url = "mqtts://broker.example.com"',
            'url = "tcp://broker.example.com"',
            "site.toml:7: field mqtt.url: Value error, 'tcp://broker.example.com' is not a broker",
        ),
        (
            'url = "mqtts://broker.example.com"',
            'url = "mqtt://gw:secret@broker.example.com"',
            "site.toml:7: field mqtt.url: Value error, 'mqtt://gw:secret@broker.example.com': "
            "credentials do not go in the URL",
        ),
        (
            'url = "mqtts://broker.example.com"',
            'url = "mqtt://broker.example.com:99999"',
            "site.toml:7: field mqtt.url: Value error, 'mqtt://broker.example.com:99999': the port",
        ),
        (
            'password_file = "/etc/tollgate/mqtt.password"',
            'password = "hunter2"',
            "site.toml:6: field mqtt: Value error, the password does not go in the site config",
        ),
        (
            'username = "site-042"\n',
            "",
            "site.toml:6: field mqtt: Value error, password_file needs a username",
        ),
        (
            'ca_file = "/etc/tollgate/ca.pem"',
            'ca_file = "/etc/tollgate/ca.pem"\ncert_file = "/etc/tollgate/gw.pem"',
            "site.toml:6: field mqtt: Value error, a client certificate needs both cert_file and",
        ),
        (
            'url = "mqtts://broker.example.com"',
            'url = "mqtt://broker.example.com"',
            "site.toml:6: field mqtt: Value error, ca_file, cert_file and key_file need an mqtts",
        ),
        (
            'keepalive = "20s"',
            'keepalive = "20h"',
            "site.toml:12: field mqtt.keepalive: Value error, keepalive must be between 1s and",
        ),
        (
            'client_id = "site-042-gw1"',
            'client_id = "site 042"',
            "site.toml:8: field mqtt.client_id: String should match pattern",
        ),
        (
            'topic = "site42/camera-7/#"',
            'topic = "site42/#/camera-7"',
            "site.toml:17: device 'camera-7', field device.topic: Value error, "
            "'site42/#/camera-7': '#' is allowed only as the last level",
        ),
        (
            'topic = "site42/camera-7/stream"',
            'topic = "site42/camera-8/stream"',
            "site.toml:14: device 'camera-7', field device.message: Value error, message rule #1: "
            "topic 'site42/camera-8/stream' can never match a topic of the device",
        ),
        (
            'name = "stream_stop"',
            'name = "stream_stop"\nname_field = "event"',
            "site.toml:19: device 'camera-7', field device.message: Value error, give only one of "
            "name, name_field (got name, name_field)",
        ),
        (
            'name_field = "event"',
            'kind = "activation"',
            "site.toml:32: device 'camera-7', field device.message: Value error, give one of "
            "name, name_field",
        ),
        (
            'unit = "min"\n',
            "",
            "site.toml:19: device 'camera-7', field device.message: Value error, quantity_field "
            "needs unit or unit_field",
        ),
        (
            'name_field = "event"',
            'name_field = "event"\nunit = "kg"',
            "site.toml:32: device 'camera-7', field device.message: Value error, unit and "
            "unit_field go with a quantity_field",
        ),
        (
            'channel_field = "stream"',
            'channel_field = "stream"\nchannel_level = 1',
            "site.toml:19: device 'camera-7', field device.message: Value error, give only one of "
            "channel, channel_field, channel_level",
        ),
        (
            'name_field = "event"',
            'name_field = "event"\nepoch_unit = "s"',
            "site.toml:32: device 'camera-7', field device.message: Value error, epoch_unit goes "
            "with a time_field",
        ),
        (
            'kind = "deactivation"',
            'kind = "stopped"',
            "site.toml:23: device 'camera-7', field device.message.kind: Input should be",
        ),
        (
            'attrs = ["resolution"]',
            'attrs = ["resolution", "topic"]',
            "site.toml:30: device 'camera-7', field device.message.attrs: Value error, attrs "
            "['topic'] are set by the driver itself",
        ),
        (
            'quantity_field = "data.minutes"',
            'quantity_field = "data..minutes"',
            "site.toml:24: device 'camera-7', field device.message.quantity_field: String should",
        ),
        (
            'match = { event = "stop", final = true }',
            "match = { minutes = 1.5 }",
            "site.toml:21: device 'camera-7', field device.message.match.minutes",  # no floats
        ),
        (
            "[[device.message]]\nname_field",
            "[[device.nothing]]\nname_field",
            "site.toml:14: device 'camera-7', field device.nothing: Extra inputs are not permitted",
        ),
    ],
)
def test_mistakes_name_file_line_device_and_field(old: str, new: str, expected: str) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError) as caught:
        parse_config(GOOD.replace(old, new, 1), source="site.toml")
    assert str(caught.value).startswith(expected), str(caught.value)


def test_mqtt_devices_need_the_broker_section() -> None:
    start, end = GOOD.index("[mqtt]"), GOOD.index("[[device]]")
    with pytest.raises(ConfigError, match=r"mqtt devices need an \[mqtt\] section"):
        parse_config(GOOD[:start] + GOOD[end:], source="site.toml")


def test_a_device_needs_at_least_one_message_rule() -> None:
    text = GOOD[: GOOD.index("[[device.message]]")]
    with pytest.raises(ConfigError, match=r"field device.message: Field required"):
        parse_config(text, source="site.toml")


def test_devices_with_overlapping_topics_are_refused() -> None:
    def mqtt_device(device_id: str, topic: str) -> MqttDeviceConfig:
        return MqttDeviceConfig.model_validate(
            {"id": device_id, "driver": "mqtt", "topic": topic, "message": [{"name": "x"}]}
        )

    check_mqtt_devices([mqtt_device("a", "home/a/#"), mqtt_device("b", "home/b/#")])
    with pytest.raises(ValueError, match=r"mqtt devices 'a' \('home/\+/light'\) and 'b'"):
        check_mqtt_devices([mqtt_device("a", "home/+/light"), mqtt_device("b", "home/kitchen/#")])
