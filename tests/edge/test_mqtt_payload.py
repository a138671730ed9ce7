"""MQTT topics and payloads -> events (pure codec): byte tables of good and bad messages."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from edge.codecs.mqtt_payload import MessageMapper, PayloadRejected, TopicRouter
from edge.codecs.mqtt_topic import check_filter, filters_overlap, topic_matches
from edge.config_mqtt import MqttDeviceConfig
from shared.events import ClockState, EventKind

RECEIVED = datetime(2026, 11, 21, 10, 0, 5, 123456, tzinfo=UTC)
CAMERA_TOPIC = "site/camera/cam-1/stream"


def device(rules: list[dict[str, Any]], *, topic: str = "site/camera/cam-1/#", **extra: Any):
    return MqttDeviceConfig.model_validate(
        {"id": "cam-1", "driver": "mqtt", "topic": topic, "message": rules, **extra}
    )


CAMERA = device(
    [
        {
            "topic": CAMERA_TOPIC,
            "match": {"event": "start"},
            "name": "stream_start",
            "kind": "activation",
            "channel_field": "stream",
            "time_field": "ts",
            "id_field": "id",
        },
        {
            "topic": CAMERA_TOPIC,
            "match": {"event": "stop"},
            "name": "stream_stop",
            "kind": "deactivation",
            "quantity_field": "minutes",
            "unit": "min",
            "channel_field": "stream",
            "time_field": "ts",
            "id_field": "id",
            "attrs": ["resolution", "bitrate", "hdr", "note", "absent"],
        },
    ]
)


def mapped(config: MqttDeviceConfig, payload: bytes, topic: str = CAMERA_TOPIC, **kw: Any):
    mapper = MessageMapper(config, **kw)
    return mapper.map_message(topic, payload, received_at=RECEIVED, clock=ClockState.SYNCED)


def rejected(config: MqttDeviceConfig, payload: bytes, topic: str = CAMERA_TOPIC, **kw: Any):
    with pytest.raises(PayloadRejected) as caught:
        mapped(config, payload, topic, **kw)
    return caught.value


def test_a_stream_start_becomes_an_activation_at_the_device_time() -> None:
    result = mapped(
        CAMERA, b'{"id": "a-1", "event": "start", "stream": "front", "ts": "2026-11-21T10:00:01Z"}'
    )
    draft = result.draft
    assert (draft.device_id, draft.name, draft.kind, draft.channel) == (
        "cam-1",
        "stream_start",
        EventKind.ACTIVATION,
        "front",
    )
    assert draft.occurred_at == datetime(2026, 11, 21, 10, 0, 1, tzinfo=UTC)
    assert draft.observed_at == RECEIVED and draft.clock == ClockState.DEVICE
    assert draft.quantity is None and draft.unit is None
    assert draft.attrs == {"topic": CAMERA_TOPIC, "message_id": "a-1"}
    assert result.key == "mqtt:cam-1:id:a-1"


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [
        (b'"12.50"', Decimal("12.5")),
        (b"12.50", Decimal("12.5")),
        (b"0.1", Decimal("0.1")),  # a float would make 0.1000000000000000055511151231257827
        (b"3", Decimal(3)),
        (b'" 7.25 "', Decimal("7.25")),
        (b"-0.5", Decimal("-0.5")),
        (b"1234567890123456789.5", None),  # over 1e18: refused, see the bad table
    ],
)
def test_quantities_are_exact_decimals(minutes: bytes, expected: Decimal | None) -> None:
    payload = b'{"id": "a", "event": "stop", "stream": "s", "ts": 1, "minutes": ' + minutes + b"}"
    if expected is None:
        assert rejected(CAMERA, payload).reason == "bad_quantity"
        return
    quantity = mapped(CAMERA, payload).draft.quantity
    assert quantity == expected and str(quantity) == str(expected)


@pytest.mark.parametrize(
    ("ts", "unit", "expected"),
    [
        (b'"2026-11-21T11:00:01.5+01:00"', "s", datetime(2026, 11, 21, 10, 0, 1, 500000)),
        (b'"2026-11-21T10:00:01.123456Z"', "s", datetime(2026, 11, 21, 10, 0, 1, 123456)),
        (b"1795255201", "s", datetime(2026, 11, 21, 10, 0, 1)),
        (b"1795255201.125", "s", datetime(2026, 11, 21, 10, 0, 1, 125000)),
        (b"1795255201125", "ms", datetime(2026, 11, 21, 10, 0, 1, 125000)),
        (b"1795255201125.5", "ms", datetime(2026, 11, 21, 10, 0, 1, 125500)),
    ],
)
def test_times_are_rfc3339_or_epoch(ts: bytes, unit: str, expected: datetime) -> None:
    config = device(
        [{"name": "tick", "time_field": "at", "epoch_unit": unit, "id_field": "id"}],
        topic="site/#",
    )
    draft = mapped(config, b'{"id": 1, "at": ' + ts + b"}", "site/x").draft
    assert draft.occurred_at == expected.replace(tzinfo=UTC)
    assert draft.clock == ClockState.DEVICE


def test_without_a_time_field_the_event_happened_when_the_gateway_received_it() -> None:
    config = device([{"name": "ping"}], topic="site/#")
    draft = mapped(config, b"{}", "site/x").draft
    assert draft.occurred_at == draft.observed_at == RECEIVED
    assert draft.clock == ClockState.SYNCED  # the gateway's clock state, as given


def test_fields_come_from_the_payload_or_the_topic() -> None:
    config = device(
        [
            {
                "name_field": "what",
                "kind_field": "kind",
                "quantity_field": "data.amount",
                "unit_field": "data.unit",
                "channel_level": -2,
            }
        ],
        topic="home/#",
    )
    payload = b'{"what": "pour", "kind": "Measurement", "data": {"amount": 2.5, "unit": "l"}}'
    draft = mapped(config, payload, "home/kitchen/tap").draft
    assert (draft.name, draft.kind, draft.quantity, draft.unit, draft.channel) == (
        "pour",
        EventKind.MEASUREMENT,
        Decimal("2.5"),
        "l",
        "kitchen",
    )


def test_attrs_keep_present_fields_as_exact_values() -> None:
    payload = (
        b'{"id": "a", "event": "stop", "stream": 2, "ts": 1, "minutes": 1, "resolution": "4k",'
        b' "bitrate": 0.1, "hdr": true, "note": null}'
    )
    draft = mapped(CAMERA, payload).draft
    assert draft.channel == "2"  # an integer channel is named by its digits
    assert draft.attrs == {
        "topic": CAMERA_TOPIC,
        "message_id": "a",
        "resolution": "4k",
        "bitrate": "0.1",
        "hdr": True,
        "note": None,
    }


def test_rules_are_tried_in_order_and_match_values_strictly() -> None:
    config = device(
        [
            {"match": {"on": True}, "name": "on_true"},
            {"match": {"level": 1}, "name": "level_one"},
            {"name": "other"},
        ],
        topic="t/#",
    )
    names = [
        mapped(config, payload, "t/x").draft.name
        for payload in (b'{"on": true}', b'{"on": 1}', b'{"level": 1.0}', b'{"level": "1"}')
    ]
    assert names == ["on_true", "other", "level_one", "other"]


def test_dedupe_keys_recognize_redeliveries_and_only_them() -> None:
    config = device([{"name": "ping"}], topic="site/#")
    once = mapped(config, b'{"n": 1}', "site/a").key
    assert once == mapped(config, b'{"n": 1}', "site/a").key  # a redelivery: the same bytes
    assert once.startswith("mqtt:cam-1:sha256:")
    assert once != mapped(config, b'{"n":1}', "site/a").key
    assert once != mapped(config, b'{"n": 1}', "site/b").key
    other = config.model_copy(update={"id": "cam-2"})
    assert mapped(CAMERA, b'{"id": 7, "event": "start", "stream": "s", "ts": 1}').key == (
        "mqtt:cam-1:id:7"
    )
    assert mapped(other, b'{"n": 1}', "site/a").key != once


START = b'{"id": "a", "event": "start", "stream": "front", "ts": "2026-11-21T10:00:01Z"'
STOP = b'{"id": "a", "event": "stop", "stream": "front", "ts": 1795255201'


@pytest.mark.parametrize(
    ("payload", "reason", "says"),
    [
        (b"{not json", "malformed_json", "payload is not JSON"),
        (b"\xff\xfe\x00garbage", "malformed_json", "payload is not JSON"),
        (b'{"minutes": NaN}', "malformed_json", "NaN is not a number"),
        (b"[" * 20_000 + b"]" * 20_000, "malformed_json", "payload is not JSON"),
        (b"", "malformed_json", "payload is not JSON"),
        (b"[1, 2]", "not_an_object", "payload is JSON list, not an object"),
        (b'"stop"', "not_an_object", "payload is JSON str"),
        (b'{"event": "pause", "stream": "front"}', "no_rule", "no message rule of device 'cam-1'"),
        (b'{"event": 1}', "no_rule", "payload keys: ['event']"),
        (STOP + b"}", "missing_field", "field 'minutes' is missing"),
        (STOP + b', "minutes": null}', "missing_field", "field 'minutes' is null"),
        (STOP + b', "minutes": true}', "bad_quantity", "field 'minutes' is true, expected a dec"),
        (STOP + b', "minutes": "12,5"}', "bad_quantity", "field 'minutes' is \"12,5\""),
        (STOP + b', "minutes": "Infinity"}', "bad_quantity", "a finite decimal"),
        (STOP + b', "minutes": {"v": 1}}', "bad_quantity", "expected a decimal number"),
        (STOP + b', "minutes": 1e30}', "bad_quantity", "less than 1e18"),
        (STOP + b', "minutes": 1e-30}', "bad_quantity", "at most 18 decimal places"),
        (b'{"event": "start", "stream": "s", "id": 1}', "missing_field", "field 'ts' is missing"),
        (START.replace(b"Z", b"") + b"}", "bad_time", "expected RFC 3339 with a time zone"),
        (START.replace(b"2026-11-21T", b"yesterday ") + b"}", "bad_time", "RFC 3339"),
        (STOP.replace(b"1795255201", b"true") + b"}", "bad_time", "expected RFC 3339 text or"),
        (STOP.replace(b"1795255201", b"1e30") + b', "minutes": 1}', "bad_time", "a real date"),
        (START.replace(b'"front"', b"[1]") + b"}", "bad_field", "field 'stream' is [1]"),
        (START.replace(b'"front"', b'"  "') + b"}", "bad_field", "a non-empty string"),
        (START.replace(b'"a"', b"{}") + b"}", "bad_field", "field 'id' is {}"),
        (START.replace(b'"a"', b'"' + b"x" * 129 + b'"') + b"}", "bad_field", "1 to 128"),
        (STOP + b', "minutes": 1, "note": [1]}', "bad_field", "field 'note' is [1]"),
        (STOP + b', "minutes": 1, "bitrate": 1e5000}', "bad_field", "field 'bitrate'"),
        (STOP + b', "minutes": 1, "note": ' + b"1" * 30 + b"}", "bad_field", "'note'"),
        (STOP + b', "minutes": 1, "stream": "' + b"s" * 65 + b'"}', "invalid_event", "channel"),
    ],
)
def test_bad_payloads_are_rejected_with_a_reason(payload: bytes, reason: str, says: str) -> None:
    error = rejected(CAMERA, payload)
    assert error.reason == reason
    assert says in str(error) and CAMERA_TOPIC in str(error), str(error)


def test_oversized_payloads_are_refused_before_parsing() -> None:
    error = rejected(CAMERA, b'{"pad": "' + b"x" * 2000 + b'"}', max_payload_bytes=1024)
    assert error.reason == "too_large" and "2011 bytes is over the 1024 byte limit" in str(error)


@pytest.mark.parametrize(
    ("rule", "payload", "topic", "reason", "says"),
    [
        ({"name": "x", "kind_field": "k"}, b'{"k": "sometimes"}', "t/a", "bad_kind", "one of"),
        ({"name": "x", "kind_field": "k"}, b'{"k": 3}', "t/a", "bad_kind", "activation"),
        ({"name_field": "n"}, b'{"n": "' + b"n" * 65 + b'"}', "t/a", "invalid_event", "name"),
        ({"name_field": "n"}, b'{"n": 5}', "t/a", "bad_field", "a non-empty string"),
        ({"name": "x", "channel_level": 3}, b"{}", "t/a", "bad_field", "no level 3"),
        ({"name": "x", "channel_level": -1}, b"{}", "t/", "bad_field", "no level -1"),
        (
            {"name": "x", "quantity_field": "q", "unit_field": "u"},
            b'{"q": 1, "u": ""}',
            "t/a",
            "bad_field",
            "field 'u'",
        ),
    ],
)
def test_mistyped_configured_fields_are_rejected(
    rule: dict[str, Any], payload: bytes, topic: str, reason: str, says: str
) -> None:
    error = rejected(device([rule], topic="t/#"), payload, topic)
    assert error.reason == reason and says in str(error), str(error)


def test_the_router_finds_the_device_of_a_topic_and_none_for_others() -> None:
    home = MqttDeviceConfig.model_validate(
        {"id": "home-1", "driver": "mqtt", "topic": "home/+/light", "message": [{"name": "l"}]}
    )
    router = TopicRouter([CAMERA, home])
    assert router.route("site/camera/cam-1/stream") is not None
    assert router.route("site/camera/cam-1/stream").device.id == "cam-1"  # type: ignore[union-attr]
    assert router.route("home/kitchen/light").device.id == "home-1"  # type: ignore[union-attr]
    assert router.route("home/kitchen/light/extra") is None
    assert router.route("site/camera/cam-2/stream") is None


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
        ("a/+", "a/b", True),
        ("a/+", "a/", True),
        ("a/+", "a", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("#", "a/b", True),
        ("#", "$SYS/broker", False),
        ("+/broker", "$SYS/broker", False),
        ("$SYS/#", "$SYS/broker", True),
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/b/d", False),
    ],
)
def test_topic_matching(topic_filter: str, topic: str, matches: bool) -> None:
    assert topic_matches(topic_filter, topic) is matches


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        ("a/#", "a/b", True),
        ("a/+/c", "a/b/+", True),
        ("a/+", "a/b/c", False),
        ("a/b", "a/c", False),
        ("#", "x/y", True),
        ("a", "a/#", True),
        ("site/camera/cam-1/#", "site/home/#", False),
        ("+/x", "$SYS/x", False),
    ],
)
def test_filter_overlap(first: str, second: str, overlap: bool) -> None:
    assert filters_overlap(first, second) is overlap
    assert filters_overlap(second, first) is overlap


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "must not be empty"),
        ("a/#/b", "'#' is allowed only as the last level"),
        ("a/b#", "must fill a whole level"),
        ("a/+b/c", "must fill a whole level"),
        ("a\x00b", "NUL"),
    ],
)
def test_bad_filters_are_refused(value: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        check_filter(value)
