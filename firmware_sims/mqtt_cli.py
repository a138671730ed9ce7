"""`tollgate-sim mqtt-device`: its arguments, apart from the simulator (which imports aiomqtt).

    tollgate-sim mqtt-device [--broker mqtt://127.0.0.1:1883] [--prefix P] [--tick 0.5]
                             [--duration SECONDS]

Kept light so that building `tollgate-sim`'s parser imports no MQTT client (issue 18); the
command itself is `firmware_sims.mqtt_device.run_mqtt_device`.
"""

import argparse
from urllib.parse import urlsplit

from firmware_sims.arguments import add_duration_argument, add_tick_argument


def broker_argument(value: str) -> str:
    """`--broker`: an mqtt:// or mqtts:// URL with a host."""
    parts = urlsplit(value)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a broker URL like mqtt://127.0.0.1:1883"
        )
    return value


def add_mqtt_device_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `tollgate-sim mqtt-device`."""
    parser.add_argument(
        "--broker",
        type=broker_argument,
        default=None,
        metavar="URL",
        help="broker to publish to, e.g. mqtt://127.0.0.1:1883 (default: start an embedded one)",
    )
    parser.add_argument(
        "--prefix", default="tollgate-sim", help="topic prefix (default tollgate-sim)"
    )
    add_tick_argument(parser)
    add_duration_argument(parser)


async def run_mqtt_device(args: argparse.Namespace) -> int:
    """Run `tollgate-sim mqtt-device` (firmware_sims.mqtt_device)."""
    from firmware_sims.mqtt_device import run_mqtt_device as run

    return await run(args)
