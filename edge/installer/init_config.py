"""`tollgate-edge init`: a commented starter site config for the drivers an installer picked.

Every key is explained in a comment next to a realistic example value, so the installer edits
addresses and names instead of reading the reference first. The file is checked with
`parse_config` before it is written: a starter that does not load would be a trap.
"""

import os
from collections.abc import Iterable
from pathlib import Path

from edge.errors import ConfigError

DEFAULT_DATA_DIR = Path("/var/lib/tollgate")
DEFAULT_CLOUD_URL = "https://collector.example.com"

_HEADER = """\
# Tollgate site config, written by `tollgate-edge init` for: {drivers}.
# Edit the example values, then run `tollgate-edge check --config {out}` on the gateway:
# it validates this file and tries every device once. Durations are strings: "250ms", "5s".

[gateway]
{id_line}
cloud_url = "{cloud_url}"          # the collector that receives the signed batches
data_dir = "{data_dir}"            # outbox, key, status.json; the service's StateDirectory
outbox_budget_mb = 512             # disk the outbox may use before it raises an alarm
# key_file = "/etc/tollgate/gateway.key"   # the Ed25519 key; default data_dir/gateway.key

[forwarder]
batch_max_events = 2500            # events per signed batch (at most 10000)
batch_max_wait = "1s"              # send a partial batch when its oldest event is this old
retry_initial = "500ms"            # first retry delay after a network error or 5xx
retry_max = "30s"                  # the retry delay doubles up to this

[cloud]
heartbeat_interval = "60s"         # the signed health report; the collector marks the gateway
                                   # offline after TOLLGATE_GATEWAY_OFFLINE_AFTER (5m) without one

[diagnostics]
listen = "127.0.0.1:8080"          # the technician's page; 0.0.0.0:8080 to open it on the LAN
"""

_MODBUS = """
[[device]]
id = "panel-1"                     # names the device in every event
driver = "modbus"                  # Modbus TCP or RTU (RS-485)
url = "tcp://192.168.1.20:502"     # or "rtu:///dev/ttyUSB0?baudrate=9600&parity=N&stopbits=1"
unit = 1                           # Modbus unit id (`tollgate-edge scan modbus` lists them)
poll_interval = "5s"               # how often every point is read
timeout = "1s"                     # wait per request before it counts as a timeout

[[device.point]]
name = "door_cycles"               # names the point in events
table = "input"                    # coil | discrete | holding | input
address = 0                        # 0-based register address
type = "uint32"                    # bool uint16 int16 uint32 int32 uint64 int64 float32 float64
word_order = "big"                 # which 16-bit word comes first in 32/64-bit values
kind = "counter"                   # counter (bills deltas) | state | gauge
unit = "count"                     # the unit of the billed quantity

[[device.point]]
name = "door"                      # a second point: a door contact
table = "coil"                     # a bit: type is bool
address = 0                        # coil 0
kind = "state"                     # on/off: an event when it turns on (and off)
activation = "door_open"           # event name when the bit becomes on_value
deactivation = "door_closed"       # event name when it stops being on_value
"""

_IT100 = """
[[device]]
id = "alarm-1"                     # names the panel in every event
driver = "it100"                   # DSC PowerSeries panel through an IT-100 interface
port = "/dev/ttyUSB1"              # prefer /dev/serial/by-id/... (stable across reboots)
baudrate = 9600                    # the IT-100 default, 8 data bits, no parity, 1 stop bit
poll_interval = "30s"              # a 000 poll; three silent intervals mean the link is down
status_on_connect = true           # ask for the partitions' state after (re)connecting
zone_events = false                # also bill zone open/restore (usually too chatty)
"""

_LINES = """
[[device]]
id = "printer-1"                   # names the panel in every event
driver = "lines"                   # any printer-port panel, one line per event
port = "/dev/ttyUSB2"               # `tollgate-edge scan serial` lists the ports
baudrate = 9600                    # as set on the panel; 8N1 unless bytesize/parity/stopbits
# A regular expression with named groups; groups named like event fields fill them
# (name, kind, channel, quantity, unit, occurred_at), any other group goes to attrs.
pattern = '^(?P<occurred_at>\\S+) (?P<name>OPEN|CLOSE) DOOR (?P<channel>\\d+) USER (?P<user>\\d+)$'
kind = "activity"                  # used when the pattern has no `kind` group
encoding = "ascii"                 # how the panel encodes its lines
"""

_MQTT = """
[mqtt]
url = "mqtts://broker.example.com:8883"   # mqtt:// (1883) or mqtts:// (TLS, 8883)
client_id = "{gateway_id}"         # the broker keeps the persistent session under this id
username = "{gateway_id}"          # the broker account of this gateway
password_file = "/etc/tollgate/mqtt.password"  # never the password itself in this file
# ca_file = "/etc/tollgate/broker-ca.pem"      # else the system's trusted CAs

[[device]]
id = "camera-7"                    # names the device in every event
driver = "mqtt"                    # JSON payloads over MQTT, QoS 1
topic = "site42/camera-7/#"        # subscribed with QoS 1; one device per topic

[[device.message]]                 # rules, tried in order; the first that fits maps the message
topic = "site42/camera-7/stream"   # a filter within the device's topic
match = {{ event = "stop" }}         # payload fields that must hold these values
name = "stream_stop"               # the event name (or name_field)
kind = "deactivation"              # activation | deactivation | activity | measurement
quantity_field = "minutes"         # a JSON number or decimal string in the payload
unit = "min"                       # the unit of that quantity (or unit_field)
time_field = "ts"                  # RFC 3339 or epoch seconds; else the gateway's clock
id_field = "id"                    # the message's own id: a redelivery is stored once
"""

_BLE = """
[ble]
backend = "bluez"                  # or "bumble:usb:0" for a USB dongle without BlueZ
max_connections = 3                # locks drained at once

[[device]]
id = "bin-lock-1"                  # names the lock in every event
driver = "ble-lock"                # a battery lock that keeps its own event log
lock_id = 1001                     # the id the lock advertises (`tollgate-edge scan ble`)
reconnect_initial = "5s"           # backoff after a failed drain, doubling
reconnect_max = "10m"              # up to this
"""

_SECTIONS = {
    "modbus": _MODBUS,
    "it100": _IT100,
    "lines": _LINES,
    "mqtt": _MQTT,
    "ble-lock": _BLE,
}
DRIVER_ORDER = tuple(_SECTIONS)


def parse_drivers(text: str) -> list[str]:
    """Driver names from "modbus,it100"; `ConfigError` names the unknown ones."""
    from edge.config import DRIVERS

    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - DRIVERS)
    if unknown or not names:
        raise ConfigError(
            f"--drivers {text!r}: expected a comma-separated list of {', '.join(DRIVER_ORDER)}"
        )
    return [name for name in DRIVER_ORDER if name in names]


def render_starter(
    drivers: Iterable[str],
    *,
    gateway_id: str | None,
    cloud_url: str,
    data_dir: Path,
    out: Path,
) -> str:
    """The starter config text for `drivers`, checked to load as written.

    Without `gateway_id` the id line is left commented out: `tollgate-edge enroll` gets the id
    from the cloud and keeps it in data_dir (the recommended path).
    """
    from edge.config import parse_config

    chosen = list(drivers)
    name = gateway_id or "site-001-gw1"
    id_line = (
        f'id = "{gateway_id}"{" " * max(2, 16 - len(gateway_id))}# names this gateway in every '
        "event; unique per site"
        if gateway_id
        else '# id = "site-001-gw1"           # set by `tollgate-edge enroll`; or set it by hand'
    )
    values = {
        "gateway_id": name,
        "id_line": id_line,
        "cloud_url": cloud_url,
        "data_dir": data_dir,
        "out": out,
    }
    text = _HEADER.format(drivers=", ".join(chosen), **values)
    text += "".join(_SECTIONS[name].format(**values) for name in chosen)
    parse_config(text, source=str(out))  # raises ConfigError, e.g. for a bad --gateway-id
    return text


def write_starter(out: Path, text: str, *, force: bool) -> None:
    """Write the config (mode 0640: it names the password file); refuse to overwrite."""
    if out.exists() and not force:
        raise ConfigError(f"{out} exists; pass --force to overwrite it")
    out.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    with os.fdopen(os.open(out, flags, 0o640), "w", encoding="utf-8") as handle:
        handle.write(text)
