"""The pure CloudEvents codec: Content-Type, request documents, one event's envelope."""

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from cloud.direct.cloudevents import (
    BATCH,
    MAX_BODY_DEPTH,
    STRUCTURED,
    media_type,
    parse_json,
    read_documents,
    read_envelope,
)
from cloud.direct.mapping import RowError
from cloud.errors import BodyTooLarge, MalformedJson, UnsupportedMediaType
from shared.bounds import MAX_JSON_DEPTH

BINARY_HINT = "binary content mode is not accepted: send the event in structured mode"
TYPES_HINT = f"send {STRUCTURED} (one event) or {BATCH} (a JSON array of events)"
MISSING = "required attribute is missing"


def envelope_document(**changes: Any) -> dict[str, Any]:
    """A valid event document, with `changes` applied (a value of None removes the attribute)."""
    document: dict[str, Any] = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "urn:acme:meters",
        "type": "com.acme.pour",
        "subject": "bin-1",
        "time": "2026-11-20T10:00:00Z",
        "data": {"kg": "12.5"},
    }
    document.update(changes)
    return {name: value for name, value in document.items() if value is not None}


# -- media_type -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "mode"),
    [
        ("application/cloudevents+json", STRUCTURED),
        ("application/cloudevents+json; charset=utf-8", STRUCTURED),
        ("application/cloudevents+json;charset=UTF-8", STRUCTURED),
        ('application/cloudevents+json; charset="utf-8"', STRUCTURED),
        ("Application/CloudEvents+JSON", STRUCTURED),
        ("  application/cloudevents+json  ", STRUCTURED),
        ("application/cloudevents-batch+json", BATCH),
        ("APPLICATION/CLOUDEVENTS-BATCH+JSON; Charset=UTF-8", BATCH),
        ("application/cloudevents-batch+json; foo=bar", BATCH),
    ],
)
def test_accepted_media_types(content_type: str, mode: str) -> None:
    """Both CloudEvents JSON types are accepted in any case, with or without a UTF-8 charset."""
    assert media_type(content_type) == mode


@pytest.mark.parametrize(
    ("content_type", "hint"),
    [
        ("application/json", BINARY_HINT),
        ("Application/JSON; charset=utf-8", BINARY_HINT),
        ("text/json", BINARY_HINT),
        ("text/plain", TYPES_HINT),
        ("application/cloudevents+json; charset=latin-1", TYPES_HINT),
        ("application/cloudevents+xml", TYPES_HINT),
        ("application/cloudevents", TYPES_HINT),
        ("multipart/form-data; boundary=x", TYPES_HINT),
    ],
)
def test_refused_media_types_say_what_to_send(content_type: str, hint: str) -> None:
    """Any other type is refused naming it; JSON data types get the binary-mode hint."""
    with pytest.raises(UnsupportedMediaType) as caught:
        media_type(content_type)
    assert caught.value.message == f"Content-Type {content_type!r} is not accepted: {hint}"
    assert caught.value.detail == {"accepted": [STRUCTURED, BATCH]}


@pytest.mark.parametrize("content_type", [None, ""])
def test_missing_media_type_is_refused(content_type: str | None) -> None:
    """No Content-Type at all is refused as '(none)'."""
    with pytest.raises(UnsupportedMediaType) as caught:
        media_type(content_type)
    assert caught.value.message == f"Content-Type '(none)' is not accepted: {TYPES_HINT}"


# -- read_documents -------------------------------------------------------------------------------


def test_structured_body_is_one_document() -> None:
    """Structured mode: the body is one document, whatever JSON it holds."""
    assert read_documents(b'{"id": "e-1"}', mode=STRUCTURED, max_events=1) == [{"id": "e-1"}]
    assert read_documents(b"[1, 2]", mode=STRUCTURED, max_events=1) == [[1, 2]]


def test_batch_body_is_its_array() -> None:
    """Batch mode: the array's items, in order; an empty array is no document."""
    body = b'[{"id": "a"}, "x", {"id": "b"}]'
    assert read_documents(body, mode=BATCH, max_events=3) == [{"id": "a"}, "x", {"id": "b"}]
    assert read_documents(b"[]", mode=BATCH, max_events=1) == []


def test_numbers_are_read_as_decimals() -> None:
    """A JSON number with a fraction becomes the exact Decimal of its digits; integers stay int."""
    body = b'{"data": {"a": 0.1, "b": 12.50, "c": 1e3, "d": 7, "e": 0.30000000000000004}}'
    [document] = read_documents(body, mode=STRUCTURED, max_events=1)
    data = document["data"]
    assert data == {
        "a": Decimal("0.1"),
        "b": Decimal("12.50"),
        "c": Decimal("1E+3"),
        "d": 7,
        "e": Decimal("0.30000000000000004"),
    }
    assert [type(data[name]) for name in "abcde"] == [Decimal, Decimal, Decimal, int, Decimal]


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"{'id': 'e-1'}", b'{"id": "e-1"} trailing', b'{"id": "\xe9"}'],
    ids=["empty", "cut", "single-quotes", "trailing", "not-utf8"],
)
@pytest.mark.parametrize("mode", [STRUCTURED, BATCH])
def test_body_that_is_not_json(body: bytes, mode: str) -> None:
    """A body that is not JSON (or not UTF-8) is MalformedJson in both modes."""
    with pytest.raises(MalformedJson) as caught:
        read_documents(body, mode=mode, max_events=10)
    assert caught.value.message.startswith("body is not valid JSON: ")


@pytest.mark.parametrize("body", [b'{"id": "e-1"}', b'"text"', b"3", b"null"])
def test_batch_must_be_an_array(body: bytes) -> None:
    """A batch body that is valid JSON but not an array is MalformedJson."""
    with pytest.raises(MalformedJson) as caught:
        read_documents(body, mode=BATCH, max_events=10)
    assert caught.value.message == f"{BATCH} must be a JSON array of events"


def test_batch_over_the_event_limit() -> None:
    """One event more than max_events is BodyTooLarge; exactly max_events is read."""
    assert len(read_documents(b"[{}, {}, {}]", mode=BATCH, max_events=3)) == 3
    with pytest.raises(BodyTooLarge) as caught:
        read_documents(b"[{}, {}, {}, {}]", mode=BATCH, max_events=3)
    assert caught.value.message == "batch carries 4 events, at most 3 are accepted"
    assert caught.value.detail == {"events": 4, "limit_events": 3}


# -- read_envelope --------------------------------------------------------------------------------


def test_valid_envelope() -> None:
    """A valid document gives its attributes; extension attributes are kept aside."""
    envelope = read_envelope(envelope_document(acmeregion="north"))
    assert (envelope.id, envelope.source, envelope.type) == (
        "e-1",
        "urn:acme:meters",
        "com.acme.pour",
    )
    assert (envelope.subject, envelope.time) == ("bin-1", "2026-11-20T10:00:00Z")
    assert envelope.data == {"kg": "12.5"}
    assert envelope.model_extra == {"acmeregion": "north"}


def test_envelope_without_subject_time_or_data() -> None:
    """subject, time and data are optional in the envelope (the mapping decides what it needs)."""
    envelope = read_envelope(envelope_document(subject=None, time=None, data=None))
    assert (envelope.subject, envelope.time, envelope.data) == (None, None, None)


@pytest.mark.parametrize(
    ("document", "field", "reason"),
    [
        ([], "event", "an event must be a JSON object"),
        ("text", "event", "an event must be a JSON object"),
        (None, "event", "an event must be a JSON object"),
        (envelope_document(id=None), "id", MISSING),
        (envelope_document(source=None), "source", MISSING),
        (envelope_document(type=None), "type", MISSING),
        (envelope_document(specversion=None), "specversion", MISSING),
        (envelope_document(specversion="0.3"), "specversion", "Input should be '1.0'"),
        (envelope_document(id=""), "id", "String should have at least 1 character"),
        (envelope_document(id=5), "id", "Input should be a valid string"),
        (envelope_document(source="u" * 256), "source",
         "String should have at most 255 characters"),
        (envelope_document(subject="s" * 129), "subject",
         "String should have at most 128 characters"),
        (envelope_document(time=1700000000), "time", "Input should be a valid string"),
        (envelope_document(data=None, data_base64="AAE="), "data_base64",
         "binary data is not accepted: send JSON data"),
        (envelope_document(datacontenttype="text/plain"), "datacontenttype",
         "'text/plain' data is not accepted: send JSON"),
        (envelope_document(datacontenttype="application/xml; charset=utf-8"), "datacontenttype",
         "'application/xml' data is not accepted: send JSON"),
        (envelope_document(data=[1, 2]), "data", "data must be a JSON object"),
        (envelope_document(data="12.5"), "data", "data must be a JSON object"),
    ],
)  # fmt: skip
def test_envelope_errors_name_the_attribute(document: Any, field: str, reason: str) -> None:
    """Each envelope fault is a RowError naming the attribute and why."""
    with pytest.raises(RowError) as caught:
        read_envelope(document)
    assert (caught.value.field, caught.value.reason) == (field, reason)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON; charset=utf-8",
        "text/json",
        "application/vnd.acme+json",
    ],
)
def test_json_data_content_types_are_accepted(content_type: str) -> None:
    """Any JSON datacontenttype (including +json suffixes) is accepted."""
    envelope = read_envelope(envelope_document(datacontenttype=content_type))
    assert envelope.data == {"kg": "12.5"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"kg": 12.5}', {"kg": Decimal("12.5")}),
        (b'{"kg": 0.1, "n": 3}', {"kg": Decimal("0.1"), "n": 3}),
        (b'[{"data": {"w": {"kg": 1e-3}}}]', [{"data": {"w": {"kg": Decimal("0.001")}}}]),
        (b'{"big": 123456789012345678901234567890}', {"big": 123456789012345678901234567890}),
        (b'{"kg": 7, "s": "x"}', {"kg": 7, "s": "x"}),
        ('{"kg": 2.5}'.encode("utf-16"), {"kg": Decimal("2.5")}),
    ],
)
def test_parse_json_keeps_every_number_exact(body: bytes, expected: object) -> None:
    """Floats anywhere, integers beyond 64 bits and UTF-16 bodies all come back exact."""
    parsed = parse_json(body)
    assert parsed == expected
    assert not list(floats_in(parsed))


def floats_in(value: object) -> Iterator[float]:
    """Every float anywhere in a parsed JSON document."""
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from floats_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from floats_in(item)


def nested(depth: int, leaf: str = "1") -> str:
    """A JSON array `depth` levels deep around `leaf`."""
    return "[" * depth + leaf + "]" * depth


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (nested(MAX_BODY_DEPTH + 1).encode(),
         f"body is nested {MAX_BODY_DEPTH + 1} levels deep; at most {MAX_BODY_DEPTH} are read"),
        (nested(1100).encode(),
         f"body is nested more than 1024 levels deep; at most {MAX_BODY_DEPTH} are read"),
        (nested(900, "1.5").encode(),
         f"body is nested 900 levels deep; at most {MAX_BODY_DEPTH} are read"),
        (nested(100_000, "1.5").encode(),
         f"body is nested more than 1024 levels deep; at most {MAX_BODY_DEPTH} are read"),
        (("[" + "9" * 30 + ", " + nested(900) + "]").encode(),
         f"body is nested 901 levels deep; at most {MAX_BODY_DEPTH} are read"),
        (('["\\ud800", ' + nested(5000) + "]").encode(),
         f"body is nested 5,001 levels deep; at most {MAX_BODY_DEPTH} are read"),
    ],
    ids=["orjson-past-bound", "orjson-limit", "float", "float-past-orjson", "big-int", "surrogate"],
)  # fmt: skip
def test_a_body_nested_too_deep_is_refused_before_it_is_read(body: bytes, message: str) -> None:
    """However the body is parsed (orjson, or the exact standard-library path for floats, big
    integers and lone surrogates) a body deeper than MAX_BODY_DEPTH is MalformedJson, never a
    RecursionError."""
    with pytest.raises(MalformedJson) as caught:
        parse_json(body)
    assert caught.value.message == message


def test_a_body_at_the_depth_bound_is_read() -> None:
    """MAX_BODY_DEPTH levels are read, on both paths."""
    assert parse_json(nested(MAX_BODY_DEPTH).encode()) == json.loads(nested(MAX_BODY_DEPTH))
    exact = parse_json(nested(MAX_BODY_DEPTH, "1.5").encode())
    assert exact == json.loads(nested(MAX_BODY_DEPTH, "1.5"), parse_float=Decimal)


def test_brackets_inside_strings_are_not_nesting() -> None:
    """Brackets in strings (escaped quotes too) do not count towards the depth."""
    body = json.dumps({"a": '[[[{{{"\\"' * 100, "kg": 1.5, "b": "x" + "[" * 500}).encode()
    assert parse_json(body)["kg"] == Decimal("1.5")


def test_an_invalid_body_is_malformed_json() -> None:
    """Not JSON at all is MalformedJson with the parser's reason."""
    with pytest.raises(MalformedJson) as caught:
        parse_json(b'{"kg": 1.5,')
    assert caught.value.message.startswith("body is not valid JSON: ")


@pytest.mark.parametrize(
    ("document", "field", "reason"),
    [
        (envelope_document(id="a\x00b"), "id", "text may not contain U+0000 (at character 1)"),
        (envelope_document(id="\ud800"), "id", "text may not contain U+D800 (at character 0)"),
        (envelope_document(source="urn:\x00"), "source",
         "text may not contain U+0000 (at character 4)"),
        (envelope_document(type="t\x00"), "type", "text may not contain U+0000 (at character 1)"),
        (envelope_document(subject="\x00"), "subject",
         "text may not contain U+0000 (at character 0)"),
        (envelope_document(time="\x00"), "time", "text may not contain U+0000 (at character 0)"),
        (envelope_document(acmeregion="\udfff"), "acmeregion",
         "text may not contain U+DFFF (at character 0)"),
        (envelope_document(data={"kg": "1", "note": "a\x00"}), "data.note",
         "text may not contain U+0000 (at character 1)"),
        (envelope_document(data={"w": {"kg": "\x00"}}), "data.w.kg",
         "text may not contain U+0000 (at character 0)"),
        (envelope_document(data={"list": ["a", "b\x00"]}), "data.list[1]",
         "text may not contain U+0000 (at character 1)"),
        (envelope_document(data={"k\x00": 1}), "data",
         "a key of this object: text may not contain U+0000 (at character 1)"),
        (envelope_document(data={"n": 2**63}), "data.n",
         "integer is outside the signed 64-bit range: send larger numbers as decimal strings"),
        (envelope_document(data={"n": [-(2**63) - 1]}), "data.n[0]",
         "integer is outside the signed 64-bit range: send larger numbers as decimal strings"),
        (envelope_document(data={"n": json.loads(nested(MAX_JSON_DEPTH))}),
         "data" + ".n" + "[0]" * (MAX_JSON_DEPTH - 1),
         f"is nested deeper than {MAX_JSON_DEPTH} levels"),
        (envelope_document(data={"n": json.loads(nested(500))}),
         "data" + ".n" + "[0]" * (MAX_JSON_DEPTH - 1),
         f"is nested deeper than {MAX_JSON_DEPTH} levels"),
        (envelope_document(time="2026-11-20T10:00:00." + "0" * 60 + "Z"), "time",
         "String should have at most 64 characters"),
    ],
)  # fmt: skip
def test_values_beyond_the_bounds_name_the_attribute(
    document: dict[str, Any], field: str, reason: str
) -> None:
    """NUL and lone surrogates in any text, integers beyond 64 bits and data nested deeper than
    MAX_JSON_DEPTH are RowErrors naming the attribute (and the path into data)."""
    with pytest.raises(RowError) as caught:
        read_envelope(document)
    assert (caught.value.field, caught.value.reason) == (field, reason)


def test_values_at_the_bounds_are_accepted() -> None:
    """Signed 64-bit extremes and data exactly MAX_JSON_DEPTH levels deep pass."""
    data = {"kg": "1", "lo": -(2**63), "hi": 2**63 - 1, "n": json.loads(nested(MAX_JSON_DEPTH - 1))}
    assert read_envelope(envelope_document(data=data)).data == data
