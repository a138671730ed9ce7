"""CloudEvents 1.0 over HTTP, JSON event format: structured and batch mode, read into records.

Pure: bytes and a Content-Type in, envelopes out. The envelope is checked by a pydantic model of
the spec's context attributes (the official SDK is the client in the tests; on the server one
pydantic-core call per event is several times faster than the SDK's event objects and gives our
error locations). Numbers in `data` are read exactly (`Decimal`), never as binary floats.
"""

import json
from decimal import Decimal
from typing import Any, Literal, NamedTuple

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from cloud.direct.mapping import RowError
from cloud.direct.records import check_record, might_break_bounds, nesting_depth, too_deep
from cloud.direct.times import MAX_TIME_TEXT
from cloud.errors import BodyTooLarge, MalformedJson, UnsupportedMediaType
from shared.bounds import MAX_JSON_DEPTH

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
_JSON_DATA = ("application/json", "text/json")
# A batch array and an event object around `data`, with room: an event whose `data` nests deeper
# than MAX_JSON_DEPTH is rejected on its own; a body deeper than this is refused whole.
MAX_BODY_DEPTH = 2 * MAX_JSON_DEPTH


class CloudEventEnvelope(BaseModel):
    """The context attributes we read; extension attributes are allowed and ignored."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=255)
    source: str = Field(min_length=1, max_length=255)
    type: str = Field(min_length=1, max_length=255)
    subject: str | None = Field(default=None, max_length=128)
    time: str | None = Field(default=None, max_length=MAX_TIME_TEXT)
    datacontenttype: str | None = None
    data: Any = None
    data_base64: str | None = None


_ENVELOPE = TypeAdapter(CloudEventEnvelope)


def media_type(content_type: str | None) -> str:
    """`STRUCTURED` or `BATCH`; `UnsupportedMediaType` for anything else."""
    essence, _, parameters = (content_type or "").partition(";")
    essence = essence.strip().lower()
    charset = _charset(parameters)
    if essence in (STRUCTURED, BATCH) and charset in (None, "utf-8"):
        return essence
    hint = (
        "binary content mode is not accepted: send the event in structured mode"
        if essence in _JSON_DATA
        else f"send {STRUCTURED} (one event) or {BATCH} (a JSON array of events)"
    )
    raise UnsupportedMediaType(
        f"Content-Type {content_type or '(none)'!r} is not accepted: {hint}",
        detail={"accepted": [STRUCTURED, BATCH]},
    )


def _charset(parameters: str) -> str | None:
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None


class Events(NamedTuple):
    """A request's event documents, and whether each must be walked value by value."""

    documents: list[Any]
    check_values: bool


def read_events(body: bytes, *, mode: str, max_events: int) -> Events:
    """The request's event documents (one for structured mode), not yet checked one by one.

    `check_values` is False when no value of the body can break a bound: its text holds none
    that could (`might_break_bounds`) and `data` cannot nest too deep; `read_envelope` then
    skips its walk over every value.
    """
    document, depth = parse_body(body)
    check_values = (
        depth > MAX_JSON_DEPTH + 1  # the event object, then `data` (+ 1 more in a batch: safe)
        or json.detect_encoding(body) != "utf-8"
        or might_break_bounds(body)
    )
    if mode == STRUCTURED:
        return Events([document], check_values)
    if not isinstance(document, list):
        raise MalformedJson(f"{BATCH} must be a JSON array of events")
    if len(document) > max_events:
        raise BodyTooLarge(
            f"batch carries {len(document)} events, at most {max_events} are accepted",
            detail={"events": len(document), "limit_events": max_events},
        )
    return Events(document, check_values)


def read_documents(body: bytes, *, mode: str, max_events: int) -> list[Any]:
    """The request's event documents (`read_events` without the flag)."""
    return read_events(body, mode=mode, max_events=max_events).documents


def parse_json(body: bytes) -> Any:
    """The body as JSON, every number exact (`parse_body` without the depth)."""
    return parse_body(body).document


class ParsedBody(NamedTuple):
    """A JSON body and how many levels of arrays and objects it nests (or an upper bound)."""

    document: Any
    depth: int


def parse_body(body: bytes) -> ParsedBody:
    """The body as JSON, every number exact: floats as `Decimal`, integers of any size.

    orjson first (several times faster); the standard library, with `parse_float=Decimal`, when
    the document holds a float (orjson would have made it binary) or orjson refuses it (integers
    beyond 64 bits, lone surrogates, UTF-16). Either way a body nested more than `MAX_BODY_DEPTH`
    levels is refused, measured on the text before the standard library (which recurses per
    level) reads it.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # orjson's own bound, 1024 levels
            raise MalformedJson(
                f"body is nested more than 1024 levels deep; at most {MAX_BODY_DEPTH} are read"
            ) from exc
        document = _EXACT
    depth = _depth(body)
    if depth > MAX_BODY_DEPTH:
        raise MalformedJson(f"body {too_deep(depth, MAX_BODY_DEPTH)}")
    if document is _EXACT or _holds_float(document):
        try:
            document = json.loads(body, parse_float=Decimal)  # safe: the depth is bounded
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedJson(f"body is not valid JSON: {exc}") from exc
    return ParsedBody(document, depth)


_EXACT = object()  # marks "parse again with the standard library"


def _depth(body: bytes) -> int:
    # UTF-8 and UTF-16 keep brackets, quotes and backslashes as single bytes: latin-1 maps each
    # byte to one character without failing. Fewer opening brackets bound the depth themselves.
    openings = body.count(b"[") + body.count(b"{")
    return openings if openings <= MAX_JSON_DEPTH else nesting_depth(body.decode("latin-1"))


def _holds_float(document: Any) -> bool:
    """Whether `document` holds a float anywhere; iterative, and it stops at the first."""
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, float):
            return True
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


def read_envelope(document: Any, *, check_values: bool = True) -> CloudEventEnvelope:
    """One event's checked envelope; `RowError` naming the attribute otherwise.

    `check_values=False` skips the walk over every value, for a body `read_events` cleared.
    """
    if not isinstance(document, dict):
        raise RowError("event", "an event must be a JSON object")
    if check_values:
        check_record(document, depth=0)  # `data` is the first level: text, integers, nesting
    try:
        envelope = _ENVELOPE.validate_python(document)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_context=False, include_input=False)[0]
        where = str(error["loc"][0]) if error["loc"] else "event"
        reason = "required attribute is missing" if error["type"] == "missing" else error["msg"]
        raise RowError(where, reason) from None
    if envelope.data_base64 is not None:
        raise RowError("data_base64", "binary data is not accepted: send JSON data")
    content_type = (envelope.datacontenttype or "application/json").split(";")[0].strip().lower()
    if content_type not in _JSON_DATA and not content_type.endswith("+json"):
        raise RowError("datacontenttype", f"{content_type!r} data is not accepted: send JSON")
    if envelope.data is not None and not isinstance(envelope.data, dict):
        raise RowError("data", "data must be a JSON object")
    return envelope
