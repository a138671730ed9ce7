"""CloudEvents 1.0 over HTTP, JSON event format: structured and batch mode, read into records.

Pure: bytes and a Content-Type in, envelopes out. The envelope is checked by a pydantic model of
the spec's context attributes (the official SDK is the client in the tests; on the server one
pydantic-core call per event is several times faster than the SDK's event objects and gives our
error locations). Numbers in `data` are read exactly (`Decimal`), never as binary floats.
"""

import json
from decimal import Decimal
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from cloud.direct.mapping import RowError
from cloud.errors import BodyTooLarge, MalformedJson, UnsupportedMediaType

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
_JSON_DATA = ("application/json", "text/json")


class CloudEventEnvelope(BaseModel):
    """The context attributes we read; extension attributes are allowed and ignored."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=255)
    source: str = Field(min_length=1, max_length=255)
    type: str = Field(min_length=1, max_length=255)
    subject: str | None = Field(default=None, max_length=128)
    time: str | None = None
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


def read_documents(body: bytes, *, mode: str, max_events: int) -> list[Any]:
    """The request's event documents (one for structured mode), not yet checked one by one."""
    document = parse_json(body)
    if mode == STRUCTURED:
        return [document]
    if not isinstance(document, list):
        raise MalformedJson(f"{BATCH} must be a JSON array of events")
    if len(document) > max_events:
        raise BodyTooLarge(
            f"batch carries {len(document)} events, at most {max_events} are accepted",
            detail={"events": len(document), "limit_events": max_events},
        )
    return document


def parse_json(body: bytes) -> Any:
    """The body as JSON, every number exact: floats as `Decimal`, integers of any size.

    orjson first (several times faster); the standard library, with `parse_float=Decimal`, when
    the document holds a float (orjson would have made it binary) or orjson refuses it (integers
    beyond 64 bits, UTF-16).
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = _EXACT
    if document is _EXACT or _holds_float(document):
        try:
            document = json.loads(body, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedJson(f"body is not valid JSON: {exc}") from exc
    return document


_EXACT = object()  # marks "parse again with the standard library"


def _holds_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_holds_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_float(item) for item in value)
    return False


def read_envelope(document: Any) -> CloudEventEnvelope:
    """One event's checked envelope; `RowError` naming the attribute otherwise."""
    if not isinstance(document, dict):
        raise RowError("event", "an event must be a JSON object")
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
