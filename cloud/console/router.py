"""The console's routes: login, logout, the overview and the user list (include_in_schema=False).

Every route declares its access rule: PUBLIC for the login page, its form and the stylesheet;
`ConsoleAccess(rule)` (cloud.console.access) for the rest. `install_console` is what the app
calls: the routes, the session settings, the login limiter and the login-needed answer.
"""

import secrets
import time
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from cloud.answers import answer
from cloud.api import PUBLIC, DatabaseDep
from cloud.console.access import (
    COOKIE,
    LOGIN_PATH,
    SAFE_METHODS,
    ConsoleAdminDep,
    ConsoleReadDep,
    LoginNeeded,
)
from cloud.console.forms import check_same_origin, field, read_form
from cloud.console.logins import ConsoleSettings, close_session, now_utc, open_session
from cloud.console.models import MAX_NAME, MAX_PASSWORD
from cloud.console.overview import read_overview
from cloud.console.pages import api_link, render
from cloud.console.rate_limit import LoginLimiter
from cloud.console.users import check_login, list_users
from cloud.errors import CollectorError, Forbidden
from cloud.settings import Settings

LOGIN_COOKIE = "tollgate_console_login"  # the login form's CSRF token (double submit)
STATIC = Path(__file__).with_name("static")
WRONG_LOGIN = "Wrong name or password."

router = APIRouter(prefix="/console", include_in_schema=False)


class TooManyLogins(CollectorError):
    """Too many failed logins from this address or for this name: wait Retry-After seconds."""

    status = 429
    code = "too_many_logins"


def install_console(app: FastAPI, settings: Settings) -> None:
    """Serve the console on `app`: these routes, then each area's (cloud/console/*_pages.py)."""
    from cloud.console.area_routers import AREA_ROUTERS

    app.state.console = ConsoleSettings.load(public_url=settings.public_url)
    app.state.console_logins = LoginLimiter()
    app.include_router(router)
    for area in AREA_ROUTERS:
        app.include_router(area)
    app.add_exception_handler(LoginNeeded, _login_needed)


async def _login_needed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginNeeded)
    if request.method in SAFE_METHODS:
        return RedirectResponse(_root(request) + LOGIN_PATH, status_code=303)
    return answer(request, exc)


@router.get("/login", dependencies=[PUBLIC])
async def get_login(
    request: Request,
    error: Annotated[Literal["1"] | None, Query()] = None,
    ended: Annotated[Literal["1"] | None, Query()] = None,
) -> Response:
    """The login form, with a fresh CSRF token in the form and in a cookie."""
    token = _random_token()
    page = render(
        request,
        "login.html",
        user=None,
        error=WRONG_LOGIN if error else None,
        notice="You are logged out." if ended else None,
        login_csrf=token,
        max_name=MAX_NAME,
        max_password=MAX_PASSWORD,
    )
    _set_cookie(request, page, LOGIN_COOKIE, token, path=LOGIN_PATH, max_age=3600)
    return page


@router.post("/login", dependencies=[PUBLIC])
async def post_login(request: Request, db: DatabaseDep) -> Response:
    """Log in: same-origin, the form's token, bounded fields and the rate limit, then argon2."""
    check_same_origin(request)
    form = await read_form(request)
    sent = field(form, "csrf_token", max_length=128)
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not sent or not secrets.compare_digest(sent.encode(), cookie.encode()):
        raise Forbidden(
            "the login form's token does not match its cookie: reload the login page",
            detail={"missing": "csrf_token"},
        )
    name = field(form, "name", max_length=MAX_NAME)
    password = field(form, "password", max_length=MAX_PASSWORD)
    limiter: LoginLimiter = request.app.state.console_logins
    keys = [f"addr:{request.client.host if request.client else '-'}", f"name:{name.lower()}"]
    wait = limiter.retry_after(keys, time.monotonic())
    if wait is not None:
        refused = answer(
            request,
            TooManyLogins(
                f"too many failed logins; try again in {wait} s", detail={"retry_after": wait}
            ),
        )
        refused.headers["Retry-After"] = str(wait)
        return refused
    async with db.transaction() as session:
        user = await check_login(session=session, name=name, password=password)
    if user is None:
        limiter.failed(keys, time.monotonic())
        return RedirectResponse(f"{_root(request)}{LOGIN_PATH}?error=1", status_code=303)
    limiter.succeeded(keys[1])
    async with db.transaction(write=True) as session:
        token, _ = await open_session(
            session=session, user=user, settings=request.app.state.console, now=now_utc()
        )
    moved = RedirectResponse(f"{_root(request)}/console", status_code=303)
    _set_cookie(request, moved, COOKIE, token, path="/console", max_age=None)
    moved.delete_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
    return moved


@router.post("/logout")
async def post_logout(request: Request, db: DatabaseDep, live: ConsoleReadDep) -> Response:
    """End this session and go back to the login page."""
    async with db.transaction(write=True) as session:
        await close_session(session=session, session_id=live.session_id)
    moved = RedirectResponse(f"{_root(request)}{LOGIN_PATH}?ended=1", status_code=303)
    moved.delete_cookie(COOKIE, path="/console")
    return moved


@router.get("")
async def get_overview(request: Request, db: DatabaseDep, live: ConsoleReadDep) -> Response:
    """Events today and the ingest rate, open incidents, gateways offline, drafts, last run."""
    overview = await read_overview(db=db, now=now_utc())
    app = request.app
    run = overview.last_run
    links = {
        "events": api_link(app, "GET", "/v1/events"),
        "incidents": api_link(app, "GET", "/v1/quality/incidents", "state=open"),
        "gateways": api_link(app, "GET", "/v1/gateways", "status=offline"),
        "drafts": api_link(app, "GET", "/v1/invoices", f"period={overview.period}&status=draft"),
        "run": run
        and api_link(
            app, "GET", "/v1/invoice-runs/{run_id}", shown=f"/v1/invoice-runs/{run.run_id}"
        ),
    }
    return render(request, "overview.html", user=live, overview=overview, links=links)


@router.get("/users")
async def get_users(request: Request, db: DatabaseDep, live: ConsoleAdminDep) -> Response:
    """Every console user (admin only)."""
    async with db.transaction() as session:
        users = await list_users(session=session)
    return render(request, "users.html", user=live, users=users)


@router.get("/assets/console.css", dependencies=[PUBLIC])
async def get_stylesheet() -> FileResponse:
    """The console's own stylesheet."""
    return FileResponse(
        STATIC / "console.css", media_type="text/css", headers={"Cache-Control": "max-age=3600"}
    )


def _set_cookie(
    request: Request, response: Response, name: str, value: str, *, path: str, max_age: int | None
) -> None:
    secure = request.url.scheme == "https" or request.app.state.console.secure_cookies
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        secure=secure,
        httponly=True,
        samesite="strict",
    )


def _random_token() -> str:
    return secrets.token_urlsafe(32)


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")
