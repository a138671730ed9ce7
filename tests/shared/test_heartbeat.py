"""The signed heartbeat contract: round trip, pinned bytes, tampering and bounds refused."""

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from shared.bounds import MAX_HEARTBEAT_BYTES, MAX_HEARTBEAT_DEVICES, MAX_HEARTBEAT_ERROR_KINDS
from shared.canonical import dump_canonical
from shared.errors import InvalidSignature, MalformedHeartbeat
from shared.events import ClockState
from shared.heartbeat import (
    ClockReport,
    DeviceReport,
    Heartbeat,
    LastValues,
    LinkReport,
    OutboxReport,
    encode_envelope,
    heartbeat_bytes,
    sign_heartbeat,
    verify_heartbeat,
)

AT = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
# A fixed key, so the pinned signature below is reproducible (Ed25519 is deterministic).
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC = KEY.public_key()


def device(**changes: Any) -> DeviceReport:
    """A lock that answered, with a timeout counted and its last values."""
    fields: dict[str, Any] = {
        "device_id": "lock-1",
        "state": "ok",
        "last_success_at": AT - timedelta(seconds=5),
        "consecutive_failures": 0,
        "errors": {"TimeoutError": 2},
        "last_values": LastValues(battery=81, firmware="2.4.1", clock_offset_ms=-120),
    }
    return DeviceReport(**{**fields, **changes})


def heartbeat(**changes: Any) -> Heartbeat:
    """A valid heartbeat with `changes` applied."""
    fields: dict[str, Any] = {
        "gateway_id": "gw-1",
        "sent_at": AT,
        "boot_id": "2f1c0a9e-boot",
        "uptime_s": 3600,
        "agent_version": "0.1.0",
        "outbox": OutboxReport(
            backlog_events=42,
            oldest_unsent_at=AT - timedelta(minutes=3),
            oldest_unsent_age_s=180,
            dead_letters=1,
            used_bytes=65536,
            budget_bytes=1 << 30,
        ),
        "cloud_link": LinkReport(last_success_at=AT - timedelta(minutes=4), consecutive_failures=3),
        "clock": ClockReport(state=ClockState.SYNCED, detail=None),
        "devices_total": 2,
        "devices": (device(), device(device_id="panel-1", state="failing", last_values=None)),
    }
    return Heartbeat(**{**fields, **changes})


def envelope_of(document: dict[str, Any]) -> bytes:
    return encode_envelope(document)


def resigned(content: dict[str, Any]) -> bytes:
    """An envelope whose heartbeat is `content`, correctly signed (to reach the bound checks)."""
    signature = base64.b64encode(KEY.sign(dump_canonical(content))).decode()
    return dump_canonical({"heartbeat": content, "signature": signature})


def test_round_trip_gives_back_the_same_heartbeat() -> None:
    original = heartbeat()
    body = encode_envelope(sign_heartbeat(KEY, original))
    assert verify_heartbeat(PUBLIC, body) == original
    assert verify_heartbeat(PUBLIC, body, gateway_id="gw-1") == original


def test_canonical_bytes_are_pinned() -> None:
    """The bytes both sides sign: any change to the encoding breaks every deployed gateway."""
    small = heartbeat(
        devices=(device(errors={}, last_values=LastValues(battery=81)),), devices_total=1
    )
    assert heartbeat_bytes(small) == (
        b'{"agent_version":"0.1.0","boot_id":"2f1c0a9e-boot",'
        b'"clock":{"detail":null,"state":"synced"},'
        b'"cloud_link":{"consecutive_failures":3,"last_success_at":"2026-11-01T07:56:00.000000Z"},'
        b'"devices":[{"consecutive_failures":0,"device_id":"lock-1","errors":{},'
        b'"last_success_at":"2026-11-01T07:59:55.000000Z",'
        b'"last_values":{"battery":81,"clock_offset_ms":null,"firmware":null},"state":"ok"}],'
        b'"devices_total":1,"gateway_id":"gw-1",'
        b'"outbox":{"backlog_events":42,"budget_bytes":1073741824,"dead_letters":1,'
        b'"oldest_unsent_age_s":180,"oldest_unsent_at":"2026-11-01T07:57:00.000000Z",'
        b'"used_bytes":65536},'
        b'"sent_at":"2026-11-01T08:00:00.000000Z","uptime_s":3600}'
    )


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("outbox", "backlog_events"), 0),
        (("devices", 1, "state"), "ok"),
        (("devices", 0, "errors", "TimeoutError"), 0),
        (("gateway_id",), "gw-2"),
        (("sent_at",), "2026-11-02T08:00:00.000000Z"),
    ],
)
def test_a_tampered_field_is_refused(path: tuple[Any, ...], value: Any) -> None:
    document = sign_heartbeat(KEY, heartbeat())
    target: Any = document["heartbeat"]
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    with pytest.raises(InvalidSignature, match="heartbeat signature does not verify"):
        verify_heartbeat(PUBLIC, envelope_of(document))


def test_another_keys_signature_is_refused() -> None:
    body = encode_envelope(sign_heartbeat(Ed25519PrivateKey.generate(), heartbeat()))
    with pytest.raises(InvalidSignature):
        verify_heartbeat(PUBLIC, body)


def test_another_gateways_heartbeat_is_refused_when_the_id_is_given() -> None:
    body = encode_envelope(sign_heartbeat(KEY, heartbeat()))
    with pytest.raises(MalformedHeartbeat, match=r"gateway 'gw-1'.*sent as gateway 'gw-9'"):
        verify_heartbeat(PUBLIC, body, gateway_id="gw-9")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[]", "exactly"),
        (b'{"heartbeat": {}}', "exactly"),
        (b'{"heartbeat": {}, "signature": "x", "more": 1}', "exactly"),
        (b'{"heartbeat": [], "signature": "x"}', '"heartbeat" must be an object'),
        (b'{"heartbeat": {}, "signature": 5}', '"signature" must be base64'),
        (b'{"heartbeat": {}, "signature": "not base64!"}', None),
        (b'{"heartbeat": {}, "signature": "' + b"A" * 257 + b'"}', '"signature" must be base64'),
        (b'{"heartbeat": {"a": "\\ud800"}, "signature": "AAAA"}', "not JSON"),
        (b'{"heartbeat": {"a": 1e999}, "signature": "AAAA"}', "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (
            b'{"heartbeat": {"a": ' + b"[" * 2000 + b"]" * 2000 + b'}, "signature": "AAAA"}',
            "not JSON",
        ),
        (b'{"heartbeat": {"a": 123456789012345678901234567890}, "signature": "AAAA"}', None),
    ],
)
def test_malformed_envelopes_are_refused(body: bytes, reason: str | None) -> None:
    if reason is None:
        with pytest.raises(InvalidSignature):
            verify_heartbeat(PUBLIC, body)
    else:
        with pytest.raises(MalformedHeartbeat, match=reason):
            verify_heartbeat(PUBLIC, body)


def test_an_oversized_envelope_is_refused_before_parsing() -> None:
    body = b" " * (MAX_HEARTBEAT_BYTES + 1)
    with pytest.raises(MalformedHeartbeat, match=f"more than the {MAX_HEARTBEAT_BYTES}"):
        verify_heartbeat(PUBLIC, body)


def _content(**changes: Any) -> dict[str, Any]:
    return {**heartbeat().content(), **changes}


def _device_content(**changes: Any) -> dict[str, Any]:
    return {**device().model_dump(mode="json"), **changes}


@pytest.mark.parametrize(
    ("content", "location"),
    [
        (_content(uptime_s=-1), "uptime_s"),
        (_content(uptime_s="5"), "uptime_s"),
        (_content(uptime_s=True), "uptime_s"),
        (_content(devices_total=2**63), "devices_total"),
        (_content(gateway_id="gw 1"), "gateway_id"),
        (_content(agent_version="v" * 65), "agent_version"),
        (_content(boot_id="boot\u0000"), "boot_id"),
        (_content(sent_at="2026-11-01T08:00:00"), "sent_at"),
        (_content(clock={"state": "sideways", "detail": None}), "clock.state"),
        (_content(clock={"state": "synced", "detail": "d" * 257}), "clock.detail"),
        (_content(extra=1), "extra"),
        (
            _content(devices=[_device_content()] * (MAX_HEARTBEAT_DEVICES + 1)),
            "devices",
        ),
        (
            _content(
                devices=[
                    _device_content(
                        errors={f"kind{n}": 1 for n in range(MAX_HEARTBEAT_ERROR_KINDS + 1)}
                    )
                ]
            ),
            "devices.0.errors",
        ),
        (
            _content(devices=[_device_content(errors={"TimeoutError": -1})]),
            "devices.0.errors.TimeoutError",
        ),
        (
            _content(
                devices=[
                    _device_content(
                        last_values={"battery": 101, "firmware": None, "clock_offset_ms": None}
                    )
                ]
            ),
            "devices.0.last_values.battery",
        ),
        (
            _content(
                devices=[
                    _device_content(
                        last_values={"battery": 50, "firmware": None, "clock_offset_ms": 2**63}
                    )
                ]
            ),
            "devices.0.last_values.clock_offset_ms",
        ),
    ],
)
def test_out_of_bounds_heartbeats_are_refused_even_when_signed(
    content: dict[str, Any], location: str
) -> None:
    with pytest.raises(MalformedHeartbeat, match=f"heartbeat is not valid: {location}"):
        verify_heartbeat(PUBLIC, resigned(content))


def test_a_signed_heartbeat_in_another_spelling_is_refused() -> None:
    """Valid values written other than canonically: what is acted on must be what was signed."""
    content = _content(sent_at="2026-11-01T09:00:00+01:00")
    with pytest.raises(MalformedHeartbeat, match="not in canonical form"):
        verify_heartbeat(PUBLIC, resigned(content))


def test_the_model_refuses_out_of_bounds_values_at_construction() -> None:
    """The edge cannot build (and so cannot sign) what the collector refuses."""
    with pytest.raises(ValidationError, match="battery"):
        LastValues(battery=-1)
    with pytest.raises(ValidationError, match="devices"):
        heartbeat(devices=(device(),) * (MAX_HEARTBEAT_DEVICES + 1))
    with pytest.raises(ValidationError, match="sent_at"):
        heartbeat(sent_at=datetime(2026, 11, 1))  # naive


def test_a_full_size_heartbeat_fits_the_byte_bound() -> None:
    """A thousand locks with a few error kinds each, long ids: still under MAX_HEARTBEAT_BYTES."""
    devices = tuple(
        device(
            device_id=f"site-{n:04d}/lock-{n:06d}",
            errors={"TimeoutError": 10**6, "ConnectionError": 10**6, "bad_reading": 3},
        )
        for n in range(MAX_HEARTBEAT_DEVICES)
    )
    big = heartbeat(devices=devices, devices_total=MAX_HEARTBEAT_DEVICES)
    body = encode_envelope(sign_heartbeat(KEY, big))
    assert len(body) <= MAX_HEARTBEAT_BYTES
    assert verify_heartbeat(PUBLIC, body).devices[-1].device_id == "site-0999/lock-000999"
    assert orjson.loads(body)["heartbeat"]["devices_total"] == MAX_HEARTBEAT_DEVICES
