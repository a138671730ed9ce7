"""The one aiomqtt internal the MQTT driver touches: its paho-mqtt client, for manual acks.

The driver acknowledges a QoS 1 message only after the outbox commit (DESIGN guarantee 1), so
the PUBACK must not leave when the message arrives. paho-mqtt 2 offers that as public API
(`Client.manual_ack_set(True)`, then `Client.ack(mid, qos)` per message). aiomqtt, which wraps
paho, does not: its `Client(...)` has no manual-ack parameter and no `ack` method, and it keeps
the paho client in the private attribute `Client._client`. Checked against aiomqtt 2.5.1 (the
current release) with paho-mqtt 2.2.0; the request is empicano/aiomqtt#345 (open), its draft
pull request #346 not merged. When a release adds it, use that here and drop `_paho`.

Every call checks what it touches first: an aiomqtt whose client has no `_client`, or holds
something other than a paho-mqtt `Client` with `manual_ack_set` and `ack`, raises
`LibraryMismatch` naming this adapter and the installed versions, instead of an
`AttributeError` in the acker. `tests/edge/test_library_adapters.py` checks the behaviour against
a real broker (an unacknowledged message comes again, an acknowledged one does not), so an
upgrade that keeps the attribute but acknowledges by itself fails there.
"""

from importlib.metadata import version

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

from edge.errors import LibraryMismatch

CHECKED_WITH = "aiomqtt 2.5.1, paho-mqtt 2.2.0"
"""The releases this adapter was written and checked against."""


def enable_manual_acks(client: aiomqtt.Client) -> None:
    """From now on paho sends no PUBACK by itself; call before connecting (a persistent
    session's messages arrive right after CONNACK)."""
    _paho(client, "enable_manual_acks").manual_ack_set(True)


def acknowledge(client: aiomqtt.Client, *, mid: int, qos: int) -> MQTTErrorCode:
    """Send the PUBACK of message `mid` (nothing for QoS 0); paho's result code."""
    return _paho(client, "acknowledge").ack(mid, qos)


def _paho(client: object, adapter: str) -> paho.Client:
    """The paho-mqtt client inside an aiomqtt client (`client._client`), checked."""
    inner = getattr(client, "_client", None)
    if not isinstance(inner, paho.Client):
        raise _mismatch(
            adapter,
            f"{type(client).__name__}._client is {type(inner).__name__}, "
            "not a paho.mqtt.client.Client",
        )
    for method in ("manual_ack_set", "ack"):
        if not callable(getattr(inner, method, None)):
            raise _mismatch(adapter, f"its paho client has no `{method}()`")
    return inner


def _mismatch(adapter: str, what: str) -> LibraryMismatch:
    return LibraryMismatch(
        f"edge.drivers.aiomqtt_internals.{adapter} does not fit aiomqtt {_installed('aiomqtt')} "
        f"with paho-mqtt {_installed('paho-mqtt')}: {what} (checked with {CHECKED_WITH}; see "
        "the module docstring for what it touches and why)"
    )


def _installed(distribution: str) -> str:
    try:
        return version(distribution)
    except Exception:  # importlib.metadata.PackageNotFoundError: an odd install, say so
        return "(version unknown)"
