"""A console form as the browser posts it: bounded before it is read, and same-origin.

Forms are `application/x-www-form-urlencoded`, at most 4 KiB and 8 fields, each value bounded by
the route; the body is parsed here (no multipart parser is needed). A POST must come from a
page of this collector: its `Origin` (else its `Referer`) is this request's own origin or that
of TOLLGATE_PUBLIC_URL; a request with neither is refused.
"""

from urllib.parse import parse_qsl, urlsplit

from fastapi import Request

from cloud.errors import BodyTooLarge, Forbidden, InvalidParameters

MAX_FORM_BYTES = 4096
MAX_FIELDS = 8
FORM_TYPE = "application/x-www-form-urlencoded"
_CACHE = "console_form"


async def read_form(request: Request) -> dict[str, str]:
    """The posted fields (read once per request, then cached on `request.state`)."""
    cached: dict[str, str] | None = getattr(request.state, _CACHE, None)
    if cached is not None:
        return cached
    if not is_form(request):
        raise InvalidParameters(f"a console form is sent as {FORM_TYPE}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise BodyTooLarge(f"a console form has at most {MAX_FORM_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise BodyTooLarge(f"a console form has at most {MAX_FORM_BYTES} bytes")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict"
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidParameters(f"the form cannot be read: {exc}") from None
    form = dict(pairs)
    setattr(request.state, _CACHE, form)
    return form


def is_form(request: Request) -> bool:
    """Whether the request's body is declared a urlencoded form."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == FORM_TYPE


def field(form: dict[str, str], name: str, *, max_length: int) -> str:
    """A field's value, at most `max_length` characters; InvalidParameters naming it otherwise."""
    value = form.get(name, "")
    if len(value) > max_length or "\x00" in value:
        raise InvalidParameters(
            f"form field {name!r} has at most {max_length} characters",
            detail={"field": name, "max_length": max_length},
        )
    return value


def check_same_origin(request: Request) -> None:
    """Forbidden unless the POST comes from a page of this collector (Origin, else Referer)."""
    sent = request.headers.get("origin") or _origin_of(request.headers.get("referer", ""))
    if not sent or sent == "null" or sent not in _own_origins(request):
        raise Forbidden(
            "a console form must be posted from the console's own pages",
            detail={"missing": "same_origin", "origin": sent[:200]},
        )


def _own_origins(request: Request) -> set[str]:
    origins = {f"{request.url.scheme}://{request.url.netloc}"}
    public_url: str = getattr(request.app.state.settings, "public_url", "")
    if public_url:
        origins.add(_origin_of(public_url))
    return origins


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
