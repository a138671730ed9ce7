"""The diagnostics routes (Starlette), all behind the technician login.

    GET  /login                      the login form (the only page served to anonymous users)
    POST /login                      password -> session cookie; rate limited per client address
    POST /logout                     ends the session
    GET  /                           the page (HTML; anonymous -> redirect to /login)
    GET  /api/status                 identity, cloud link, outbox, clock, devices (JSON)
    GET  /api/events                 live tail of committed events (server-sent events)
    POST /api/devices/{id}/poll      poll a Modbus device now; returns the fresh values
    POST /api/flush                  wake the forwarder to send what is waiting now
    GET  /api/support-bundle         zip: the CLI bundle's members
                                     (edge.installer.support_bundle) plus the live status and
                                     recent events
    GET  /metrics                    Prometheus text format (edge.metrics); HTTP Basic with the
                                     technician password, or a logged-in session

With no technician password stored every route answers 503 and says how to set one: the page is
never open. Anonymous API requests get 401 JSON; POSTs also need the CSRF header. `/metrics`
shows device names, error counts and the backlog, so it is guarded like the page; Prometheus
cannot log in, so it sends the password with HTTP Basic, limited like a login per client address
(`ScrapeCredentials` spares the slow hash on every scrape once the password has verified).
"""

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from edge.config import SiteConfig
from edge.diagnostics.auth import (
    CSRF_HEADER,
    FAILURE_DELAY,
    SESSION_COOKIE,
    LoginLimiter,
    ScrapeCredentials,
    Sessions,
    basic_password,
)
from edge.diagnostics.bundle import RecentLogs, build_bundle
from edge.diagnostics.page import login_page, main_page
from edge.diagnostics.password import load_password_hash, verify_password
from edge.diagnostics.tail import EventTail
from edge.enrollment import read_enrollment
from edge.errors import DriverError, GatewayError
from edge.readings import Reading

POLL_TIMEOUT = 15.0
KEEPALIVE_SECONDS = 15.0
NO_PASSWORD = (
    "No technician password is set, so the diagnostics page stays closed. "
    "Set one with `tollgate-edge technician set-password`."
)

Handler = Callable[[Request], Awaitable[Response]]


class Gateway(Protocol):
    """What the page needs from the running agent."""

    @property
    def config(self) -> SiteConfig: ...
    @property
    def tail(self) -> EventTail: ...
    async def status(self, state: str) -> dict[str, Any]: ...
    async def poll_now(self, device_id: str) -> list[Reading]: ...
    def flush(self) -> None: ...


class Diagnostics:
    """The app and its state: sessions, login limiter, recent logs."""

    def __init__(self, gateway: Gateway, *, logs: RecentLogs | None = None) -> None:
        self.gateway = gateway
        self.sessions = Sessions()
        self.limiter = LoginLimiter()
        self.scrapers = ScrapeCredentials()
        self.logs = logs or RecentLogs()
        self.app = Starlette(
            routes=[
                Route("/login", self._login_form, methods=["GET"]),
                Route("/login", self._login, methods=["POST"]),
                Route("/logout", self._guard(self._logout), methods=["POST"]),
                Route("/", self._guard(self._page), methods=["GET"]),
                Route("/api/status", self._guard(self._status), methods=["GET"]),
                Route("/api/events", self._guard(self._events), methods=["GET"]),
                Route("/api/devices/{device_id}/poll", self._guard(self._poll), methods=["POST"]),
                Route("/api/flush", self._guard(self._flush), methods=["POST"]),
                Route("/api/support-bundle", self._guard(self._bundle), methods=["GET"]),
                Route("/metrics", self._metrics, methods=["GET"]),
            ]
        )

    @property
    def _data_dir(self) -> Path:
        return self.gateway.config.gateway.data_dir

    async def _password_hash(self) -> str | None:
        # Read on every request: a password set while the agent runs counts at once, and a
        # replaced one ends the sessions opened with it (`Sessions.valid`). No cache: the file
        # is one line, read only when someone uses the page.
        return await asyncio.to_thread(load_password_hash, self._data_dir)

    def _guard(self, handler: Handler) -> Handler:
        """Wrap a route: 503 without a password, 401 or /login when anonymous, CSRF on POST."""

        async def guarded(request: Request) -> Response:
            stored = await self._password_hash()
            if stored is None:
                return _closed(request)
            if not self.sessions.valid(request.cookies.get(SESSION_COOKIE), stored):
                if _wants_json(request):
                    return JSONResponse({"error": "login required"}, status_code=401)
                return RedirectResponse("/login", status_code=303)
            if request.method == "POST" and request.headers.get(CSRF_HEADER) != "1":
                return JSONResponse({"error": f"missing {CSRF_HEADER} header"}, status_code=403)
            return await handler(request)

        return guarded

    async def _login_form(self, request: Request) -> Response:
        if await self._password_hash() is None:
            return _closed(request)
        return _html(login_page, status=200)

    async def _login(self, request: Request) -> Response:
        stored = await self._password_hash()
        if stored is None:
            return _closed(request)
        client = request.client.host if request.client else "unknown"
        wait = self.limiter.retry_after(client)
        if wait:
            return _refuse(
                request, 429, "too many failed logins; try later", {"Retry-After": str(wait)}
            )
        password = await _password_from(request)
        # Count the attempt before the (slow) check, so parallel guesses cannot slip past the limit.
        self.limiter.failed(client)
        if not await asyncio.to_thread(verify_password, stored, password):
            await asyncio.sleep(FAILURE_DELAY)
            return _refuse(request, 401, "wrong password", {})
        self.limiter.succeeded(client)
        response: Response = (
            JSONResponse({"ok": True})
            if _wants_json(request)
            else RedirectResponse("/", status_code=303)
        )
        response.set_cookie(
            SESSION_COOKIE,
            self.sessions.open(stored),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    async def _logout(self, request: Request) -> Response:
        self.sessions.close(request.cookies.get(SESSION_COOKIE))
        response = JSONResponse({"ok": True})
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def _page(self, request: Request) -> Response:
        return _html(main_page, status=200, gateway_id=self.gateway.config.gateway.id)

    async def _status(self, request: Request) -> Response:
        document = enrich_status(await self.gateway.status("running"))
        document["enrollment"] = await self._enrollment()
        last = self.gateway.tail.last_by_device
        for device in document["devices"]:
            device["last_event"] = last.get(device["device_id"])
        return _json(document)

    async def _enrollment(self) -> dict[str, Any] | None:
        """The enrollment record `tollgate-edge enroll` stored, None before enrollment."""
        try:
            record = await asyncio.to_thread(read_enrollment, self._data_dir)
        except GatewayError as exc:
            return {"error": str(exc)}
        return None if record is None else dict(record.__dict__)

    async def _events(self, request: Request) -> Response:
        return StreamingResponse(
            self._stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _stream(self) -> AsyncIterator[bytes]:
        tail = self.gateway.tail
        async with tail.subscribe() as queue:
            yield b": connected\n\n"
            for recent in list(tail.recent):
                yield _sse(recent)
            while True:
                try:
                    async with asyncio.timeout(KEEPALIVE_SECONDS):
                        event = await queue.get()
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if event is None:
                    return
                yield _sse(event)

    async def _poll(self, request: Request) -> Response:
        device_id = request.path_params["device_id"]
        try:
            async with asyncio.timeout(POLL_TIMEOUT):
                readings = await self.gateway.poll_now(device_id)
        except LookupError:
            return _json({"error": f"no device {device_id!r}"}, status=404)
        except ValueError as exc:
            return _json({"error": str(exc)}, status=409)
        except DriverError as exc:
            return _json({"error": f"{type(exc).__name__}: {exc}"}, status=502)
        except TimeoutError:
            return _json(
                {"error": f"{device_id} did not answer within {POLL_TIMEOUT:g}s (see its state)"},
                status=504,
            )
        return _json(
            {
                "device_id": device_id,
                "polled_at": datetime.now(UTC).isoformat(),
                "values": {r.point: _plain(r.value) for r in readings},
            }
        )

    async def _flush(self, request: Request) -> Response:
        self.gateway.flush()
        status = await self.gateway.status("running")
        return _json({"ok": True, "backlog": status["outbox"]["backlog"]})

    async def _bundle(self, request: Request) -> Response:
        gateway = self.gateway
        body = await asyncio.to_thread(  # reads the outbox and up to 10 MiB of logs
            build_bundle,
            config=gateway.config,
            status=await gateway.status("running"),
            logs=list(self.logs.lines),
            events=list(gateway.tail.recent),
        )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        name = f"tollgate-support-{gateway.config.gateway.id}-{stamp}.zip".replace("/", "_")
        return Response(
            body,
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{name}"', **_NO_CACHE},
        )

    async def _metrics(self, request: Request) -> Response:
        refusal = await self._scrape_refusal(request)
        if refusal is not None:
            return refusal
        from edge.metrics import CONTENT_TYPE, render  # prometheus-client on the first scrape

        body = render(await self.gateway.status("running"), self.gateway.tail.committed)
        return Response(body, media_type=CONTENT_TYPE, headers=_NO_CACHE)

    async def _scrape_refusal(self, request: Request) -> Response | None:
        """None when the scraper holds a session or the technician password (HTTP Basic)."""
        stored = await self._password_hash()
        if stored is None:
            return JSONResponse({"error": NO_PASSWORD}, status_code=503)
        if self.sessions.valid(request.cookies.get(SESSION_COOKIE), stored):
            return None
        password = basic_password(request.headers.get("authorization"))
        if password is None:
            return _ask_for_password("the technician password is required (HTTP Basic)")
        if self.scrapers.known(stored, password):
            return None
        client = request.client.host if request.client else "unknown"
        wait = self.limiter.retry_after(client)
        if wait:
            return JSONResponse(
                {"error": "too many failed logins; try later"},
                status_code=429,
                headers={"Retry-After": str(wait)},
            )
        self.limiter.failed(client)  # before the slow check, as at /login
        if not await asyncio.to_thread(verify_password, stored, password):
            await asyncio.sleep(FAILURE_DELAY)
            return _ask_for_password("wrong password")
        self.limiter.succeeded(client)
        self.scrapers.remember(stored, password)
        return None


def _ask_for_password(message: str) -> Response:
    return JSONResponse(
        {"error": message},
        status_code=401,
        headers={"WWW-Authenticate": 'Basic realm="tollgate-edge", charset="UTF-8"'},
    )


def enrich_status(document: dict[str, Any]) -> dict[str, Any]:
    """Add what the page shows but the status file leaves to the reader: ages and percentages."""
    outbox = dict(document["outbox"])
    oldest = outbox.get("oldest_unsent")
    outbox["oldest_unsent_age_s"] = (
        round((datetime.now(UTC) - datetime.fromisoformat(oldest)).total_seconds(), 1)
        if oldest
        else None
    )
    budget = outbox.get("budget_bytes") or 0
    outbox["used_pct"] = round(100 * outbox["used_bytes"] / budget, 1) if budget else None
    return {**document, "outbox": outbox}


_NO_CACHE = {"Cache-Control": "no-store"}


def _wants_json(request: Request) -> bool:
    """API paths, and scripts that send or accept JSON, get JSON answers instead of pages."""
    headers = request.headers
    return (
        request.url.path.startswith("/api/")
        or "application/json" in headers.get("accept", "")
        or headers.get("content-type", "").startswith("application/json")
    )


async def _password_from(request: Request) -> str:
    body = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            return ""
        value = document.get("password") if isinstance(document, dict) else None
        return value if isinstance(value, str) else ""
    fields = parse_qs(body.decode("utf-8", "replace"))
    values: Sequence[str] = fields.get("password", [""])
    return values[0]


def _closed(request: Request) -> Response:
    return _refuse(request, 503, NO_PASSWORD, {})


def _refuse(request: Request, status: int, message: str, headers: dict[str, str]) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": message}, status_code=status, headers=headers)
    return _html(login_page, status=status, error=message, headers=headers)


def _html(
    render: Callable[..., str],
    *,
    status: int,
    headers: dict[str, str] | None = None,
    **values: str,
) -> Response:
    nonce = secrets.token_urlsafe(16)
    policy = (
        f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )
    return HTMLResponse(
        render(nonce=nonce, **values),
        status_code=status,
        headers={
            "Content-Security-Policy": policy,
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            **_NO_CACHE,
            **(headers or {}),
        },
    )


def _json(document: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(document, default=str),
        status_code=status,
        media_type="application/json",
        headers=_NO_CACHE,
    )


def _sse(event: dict[str, Any]) -> bytes:
    return b"event: usage\ndata: " + orjson.dumps(event, default=str) + b"\n\n"


def _plain(value: int | bool | Decimal | str) -> int | bool | str:
    return str(value) if isinstance(value, Decimal) else value
