"""No request text may hold what cannot be stored: U+0000 or a lone surrogate.

PostgreSQL refuses U+0000 in text (SQLite keeps it), and a lone surrogate cannot be encoded at
all, so a request carrying either is refused, the same on both backends, before any work is done
with it: `RequestBody` (the base of every JSON body the API reads) names the place of the first
one (`name`, `terms.charges[0].description`); `StorableUrl` (ASGI middleware) answers 422 for a
path or query string holding `%00`, whatever route it is for.
"""

from collections.abc import Iterator, Mapping
from typing import Any, Self

from pydantic import BaseModel, model_validator
from starlette.types import ASGIApp, Receive, Scope, Send

from cloud.errors import InvalidParameters
from shared.bounds import check_text

_NUL = (b"%00", b"\x00")


class RequestBody(BaseModel):
    """A request body whose every string (field, list item, mapping key or value) is storable."""

    @model_validator(mode="after")
    def _storable_text(self) -> Self:
        for place, text in _strings(self, ()):
            try:
                check_text(text)
            except ValueError as exc:
                where = ".".join(place) or "body"
                raise ValueError(f"{where}: {exc}") from None
        return self


def _strings(value: Any, place: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    if isinstance(value, str):
        yield place, value
    elif isinstance(value, BaseModel):
        for name, item in value.__dict__.items():
            yield from _strings(item, (*place, name))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(key, (*place, "<key>"))
            yield from _strings(item, (*place, str(key)))
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            yield from _strings(item, (*place[:-1], f"{place[-1] if place else ''}[{index}]"))


class StorableUrl:
    """ASGI middleware: a path or query string with U+0000 is refused before routing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or raise `InvalidParameters` for a NUL in its URL."""
        if scope["type"] == "http":
            raw = bytes(scope.get("raw_path") or scope["path"].encode("utf-8", "surrogatepass"))
            query = bytes(scope.get("query_string", b""))
            if any(nul in part for part in (raw.lower(), query.lower()) for nul in _NUL):
                raise InvalidParameters(
                    "the path or query string holds U+0000, which no id or value may contain",
                    detail={"errors": [{"loc": ["url"], "msg": "text may not contain U+0000"}]},
                )
        await self.app(scope, receive, send)
