"""The log's pure parts and its settings."""

import zlib

import pytest

from cloud.bus.log import (
    DEFLATE_ABOVE,
    SinkRefusal,
    batch_msg_id,
    decode_body,
    encode_body,
    partition_of,
    refusal_key,
    subject,
)
from cloud.errors import InvalidSettings
from cloud.settings import Settings


def test_a_gateway_has_one_partition_by_crc32() -> None:
    assert partition_of("site-042-gw1", 8) == zlib.crc32(b"site-042-gw1") % 8
    assert {partition_of(f"gw-{n}", 8) for n in range(200)} == set(range(8))


def test_subjects_and_message_ids() -> None:
    assert subject("TOLLGATE_INGEST", 3) == "tollgate.ingest.3"
    assert subject("TEST_X", 3) == "tollgate.ingest.TEST_X.3"  # streams may not share subjects
    assert batch_msg_id("gw", 1, 10, "ab" * 32) == f"batch:gw:1-10:{'ab' * 32}"


def test_refusal_keys_are_kv_safe_and_distinct() -> None:
    ids = ["source:acme", "a b", "a/b", "ä", "gw.1", "gw_1"]
    keys = [refusal_key(i) for i in ids]
    assert len(set(keys)) == len(ids)
    assert all(all(c.isalnum() or c in "-_=./" for c in key) for key in keys)


@pytest.mark.parametrize("size", [10, DEFLATE_ABOVE + 1])
def test_bodies_round_trip_small_plain_and_large_deflated(size: int) -> None:
    body = b'{"x": "' + b"y" * size + b'"}'
    payload, headers = encode_body(body, kind="batch", msg_id="m")
    assert (len(payload) < len(body)) == (size > DEFLATE_ABOVE)
    assert decode_body(payload, headers) == ("batch", body)
    with pytest.raises(ValueError):
        decode_body(payload, {})


def test_a_refusal_record_round_trips() -> None:
    record = SinkRefusal("gw", "seq_conflict", "m", 5, 9, {"seqs": [5]})
    assert SinkRefusal.decode(record.encode()) == record
    assert record.answer_detail()["at"] == "sink"


@pytest.mark.parametrize(
    "changes",
    [
        {"bus_url": "http://x:4222"},
        {"bus_url": "nats://a:4222,"},
        {"bus_partitions": 0},
        {"bus_replicas": 7},
        {"bus_stream": "a.b"},
    ],
)
def test_bus_settings_are_checked(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidSettings):
        Settings(**changes)  # type: ignore[arg-type]


def test_bus_settings_load_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLGATE_BUS", "nats://a:4222,nats://b:4222")
    monkeypatch.setenv("TOLLGATE_BUS_PARTITIONS", "16")
    monkeypatch.setenv("TOLLGATE_BUS_REPLICAS", "1")
    monkeypatch.setenv("TOLLGATE_BUS_STREAM", "S1")
    settings = Settings.load()
    assert (settings.bus_url, settings.bus_partitions, settings.bus_replicas) == (
        "nats://a:4222,nats://b:4222",
        16,
        1,
    )
    assert settings.bus_stream == "S1"
    assert Settings.load(bus="nats://c:4222").bus_url == "nats://c:4222"
    monkeypatch.delenv("TOLLGATE_BUS")
    assert Settings.load().bus_url is None  # the one-process path
