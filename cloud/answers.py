"""Every error the collector answers, expected or not, as the documented JSON error body.

    {"error": {"id": "e-...", "code": ..., "message": ..., "detail": {...}}}

The `id` is new for each error answer and is also in the collector's log line for it, so a user
who quotes it can be matched to the log. `CollectorError`s are answered by their status; request
validation errors are 422 `invalid_parameters`; Starlette's own 404 and 405 keep their status;
anything unexpected is 500 `internal_error` (logged with its traceback) and a database that
cannot be reached is 503 `database_unavailable` (worth retrying), never plain text.
"""

import logging
import secrets
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.errors import CollectorError, InvalidParameters, error_locations
from cloud.storable_text import StorableUrl

log = logging.getLogger("cloud.answers")


def new_error_id() -> str:
    """A short id for one error answer (80 random bits)."""
    return "e-" + secrets.token_hex(10)


def error_body(*, code: str, message: str, detail: dict[str, Any], error_id: str) -> dict[str, Any]:
    """The documented error body."""
    return {"error": {"id": error_id, "code": code, "message": message, "detail": detail}}


def install_error_answers(app: FastAPI) -> None:
    """Map our errors, validation errors, HTTP errors and everything else to the error body."""
    app.add_exception_handler(CollectorError, _collector_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_middleware(StorableUrl)
    app.add_middleware(ErrorBoundary)  # added last: outside StorableUrl, so it answers for it


def answer(request: Request, error: CollectorError) -> JSONResponse:
    """The JSON answer for `error`, logged with its id."""
    error_id = new_error_id()
    log.info(
        "answered %s %s %s: %s [%s]",
        error.status,
        request.method,
        request.url.path,
        error.code,
        error_id,
        extra={"error_id": error_id, "code": error.code},
    )
    body = error_body(
        code=error.code, message=error.message, detail=error.detail, error_id=error_id
    )
    headers = {"WWW-Authenticate": 'Bearer realm="tollgate"'} if error.status == 401 else None
    return JSONResponse(body, status_code=error.status, headers=headers)


async def _collector_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CollectorError)
    return answer(request, exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = error_locations(exc.errors())
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(map(str, first["loc"]))
    return answer(request, InvalidParameters(f"{where}: {first['msg']}", detail={"errors": errors}))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    error_id = new_error_id()
    log.info("answered %s %s %s [%s]", exc.status_code, request.method, request.url.path, error_id)
    body = error_body(
        code=f"http_{exc.status_code}", message=str(exc.detail), detail={}, error_id=error_id
    )
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


_UNAVAILABLE = (OperationalError, InterfaceError, ConnectionError, TimeoutError)


class ErrorBoundary:
    """ASGI middleware: an exception no handler took becomes a logged JSON 500 (or 503).

    Starlette's own last resort answers plain text and re-raises; this one sits inside it, so
    the client always gets the error body and the log gets the traceback with the same id.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; answer an escaped exception if no response has started."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except CollectorError as exc:  # raised by a middleware, outside the route's handlers
            if started:
                raise
            error_id = new_error_id()
            log.info("answered %s %s: %s [%s]", exc.status, scope.get("path"), exc.code, error_id)
            body = error_body(
                code=exc.code, message=exc.message, detail=exc.detail, error_id=error_id
            )
            await _send_json(send, exc.status, body)
        except Exception as exc:
            error_id = new_error_id()
            unavailable = _is_unavailable(exc)
            log.error(
                "unexpected %s on %s %s [%s]",
                type(exc).__name__,
                scope.get("method"),
                scope.get("path"),
                error_id,
                exc_info=not unavailable,
                extra={"error_id": error_id},
            )
            if started:
                raise
            await _send_json(send, *_unexpected_answer(unavailable, error_id))


def _is_unavailable(exc: BaseException) -> bool:
    """A lost or refused database connection (retry later), not a fault of the request."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, _UNAVAILABLE)


def _unexpected_answer(unavailable: bool, error_id: str) -> tuple[int, dict[str, Any]]:
    if unavailable:
        return 503, error_body(
            code="database_unavailable",
            message="the collector cannot reach its database now; retry later",
            detail={},
            error_id=error_id,
        )
    return 500, error_body(
        code="internal_error",
        message=f"the collector failed unexpectedly; quote {error_id} to its operator",
        detail={},
        error_id=error_id,
    )


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    content = orjson.dumps(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(content))]
    if status == 503:
        headers.append((b"retry-after", b"5"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
