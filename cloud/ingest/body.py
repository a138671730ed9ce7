"""Reading an ingest request body: byte limits first, then gzip with a hard cap on inflation.

The body is read by us (not by FastAPI) so that a declared `Content-Length` over the limit is
refused before a byte is read, a chunked body is cut off as soon as it passes the limit, and a
gzip bomb is stopped by `zlib.decompressobj(...).decompress(data, max_length)` instead of being
inflated into memory first.
"""

import zlib

from starlette.datastructures import Headers
from starlette.requests import Request

from cloud.errors import BodyTooLarge, MalformedBody, UnsupportedMediaType
from cloud.settings import Limits
from shared.bounds import MAX_JSON_CONTAINERS_PER_EVENT, MAX_JSON_VALUES_PER_EVENT

BATCH_MEDIA_TYPE = "application/json"
_GZIP = {"gzip", "x-gzip"}
_IDENTITY = {"", "identity"}
INFLATE_STEP = 1024 * 1024


async def read_body(request: Request, *, limits: Limits, max_events: int | None = None) -> bytes:
    """The request body, inflated if gzip-encoded, or `BodyTooLarge` / `MalformedBody`.

    With `max_events` (a batch), a gzip body is inflated step by step and refused as soon as
    what came out may hold more JSON values than that many events can (see `ValueCounter`):
    a bomb of empty objects costs the first steps, not the whole inflation.
    """
    check_declared_length(request.headers, limit=limits.max_body_bytes)
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limits.max_body_bytes:
            raise _too_large("body", limits.max_body_bytes)
    counter = None if max_events is None else ValueCounter(max_events=max_events)
    return decode_content(
        bytes(received), request.headers, limit=limits.max_inflated_bytes, counter=counter
    )


def check_content_type(headers: Headers) -> None:
    """Refuse a batch whose `Content-Type` is not `application/json` (parameters allowed)."""
    declared = headers.get("content-type")
    media_type = (declared or "").split(";", 1)[0].strip().lower()
    if media_type != BATCH_MEDIA_TYPE:
        shown = "(none)" if declared is None else repr(declared[:100])
        raise UnsupportedMediaType(
            f"Content-Type {shown} is not accepted: send a batch as {BATCH_MEDIA_TYPE} "
            "(gzip it with Content-Encoding: gzip)",
            detail={"content_type": declared, "accepted": [BATCH_MEDIA_TYPE]},
        )


def check_declared_length(headers: Headers, *, limit: int) -> None:
    """Refuse a body whose declared `Content-Length` is over `limit` or not a number."""
    declared = headers.get("content-length")
    if declared is None:
        return
    if not declared.isdigit():
        raise MalformedBody(f"Content-Length {declared!r} is not a byte count")
    if int(declared) > limit:
        raise _too_large("body", limit, size=int(declared))


def decode_content(
    data: bytes, headers: Headers, *, limit: int, counter: "ValueCounter | None" = None
) -> bytes:
    """Undo the `Content-Encoding` (gzip or identity) of a body."""
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding in _IDENTITY:
        return data
    if encoding in _GZIP:
        return gunzip(data, limit=limit, counter=counter)
    raise MalformedBody(f"Content-Encoding {encoding!r} is not supported: send gzip or identity")


def gunzip(data: bytes, *, limit: int, counter: "ValueCounter | None" = None) -> bytes:
    """Inflate one gzip member, never producing more than `limit` bytes.

    It inflates `INFLATE_STEP` bytes at a time; `counter` (if any) sees each step.
    """
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    inflated = bytearray()
    pending = data
    try:
        while True:
            step = inflater.decompress(pending, INFLATE_STEP)
            pending = inflater.unconsumed_tail
            inflated += step
            if len(inflated) > limit:
                raise _too_large("inflated body", limit)
            if counter is not None:
                counter.add(step)
            if inflater.eof or not (step or pending):
                break
    except zlib.error as exc:
        raise MalformedBody(f"body is not a valid gzip stream: {exc}") from exc
    if not inflater.eof or inflater.unused_data:
        raise MalformedBody("gzip stream is truncated or followed by extra bytes")
    return bytes(inflated)


def check_value_count(data: bytes, *, max_events: int) -> None:
    """Refuse a body that may hold more JSON values than a batch of `max_events` can, unparsed."""
    ValueCounter(max_events=max_events).add(data)


class ValueCounter:
    """Counts what may become JSON values, over one or more pieces of a body, and refuses it
    once past a batch's budget.

    Every value after the first in an array or object follows a comma, and every container opens
    with a bracket, so these counts (C loops, about 1 ms per MiB) bound the values orjson would
    build; containers, the costly values, have a budget of their own: 300,000 empty events in
    1 KiB of gzip are refused before a single one is made. Characters inside strings count too;
    both budgets per event leave room for them.
    """

    def __init__(self, *, max_events: int) -> None:
        self.max_events = max_events
        self.container_budget = (max_events + 1) * MAX_JSON_CONTAINERS_PER_EVENT
        self.budget = (max_events + 1) * MAX_JSON_VALUES_PER_EVENT
        self.containers = 0
        self.values = 0

    def add(self, piece: bytes) -> None:
        """Count `piece`; `BodyTooLarge` once a budget is passed."""
        containers = piece.count(b"{") + piece.count(b"[")
        self.containers += containers
        self.values += piece.count(b",") + containers
        if self.containers > self.container_budget or self.values > self.budget:
            raise self._refusal()

    def _refusal(self) -> BodyTooLarge:
        return BodyTooLarge(
            f"body may hold {self.values} JSON values ({self.containers} objects or arrays); a "
            f"batch of at most {self.max_events} events holds at most {self.budget} "
            f"({self.container_budget}): send fewer events per batch",
            detail={
                "json_values": self.values,
                "json_containers": self.containers,
                "limit_json_values": self.budget,
                "limit_json_containers": self.container_budget,
                "limit_events": self.max_events,
            },
        )


def _too_large(what: str, limit: int, *, size: int | None = None) -> BodyTooLarge:
    detail = {"limit_bytes": limit} if size is None else {"limit_bytes": limit, "size_bytes": size}
    return BodyTooLarge(f"{what} is larger than {limit} bytes", detail=detail)
