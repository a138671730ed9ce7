"""The access rule of a console route: a logged-in console user whose role the rule admits.

`ConsoleAccess(rule)` carries `rule` like `cloud.auth.access.Access`, so `access_rule(route)`
reads a console route's rule back and the route x role tests walk /console from the app's own
routes. Its credential is the session cookie, not an API key. Anonymous: a GET is sent to the
login page (303), anything else is 401 with the error body. A POST also needs the session's CSRF
token in its form (`csrf_token`) and a same-origin Origin/Referer, or it is 403.
"""

import secrets
from typing import Annotated

from fastapi import Depends, Request

from cloud.auth.roles import Rule, describe, key_roles
from cloud.console.forms import check_same_origin, field, is_form, read_form
from cloud.console.logins import ConsoleSettings, LiveSession, live_session, now_utc
from cloud.db import Database
from cloud.errors import Forbidden, Unauthorized

COOKIE = "tollgate_console"
LOGIN_PATH = "/console/login"
SAFE_METHODS = frozenset({"GET", "HEAD"})


class LoginNeeded(Unauthorized):
    """No live console session: GETs go to the login page, other methods get the 401 body."""


class ConsoleAccess:
    """The rule of a console route (READ: any role; BILLING: billing, admin; ADMIN: admin)."""

    credential = "console_session"

    def __init__(self, rule: Rule) -> None:
        self.rule = rule

    async def __call__(self, request: Request) -> LiveSession:
        """The caller's session, or LoginNeeded / Forbidden."""
        database: Database = request.app.state.db
        settings: ConsoleSettings = request.app.state.console
        async with database.transaction(write=True) as session:
            live = await live_session(
                session=session,
                token=request.cookies.get(COOKIE),
                settings=settings,
                now=now_utc(),
            )
        if live is None:
            raise LoginNeeded("log in to the console first", detail={"missing": "console_session"})
        roles = key_roles(self.rule)
        if live.role not in roles:
            raise Forbidden(
                f"console user {live.user_name!r} has role {live.role!r}; "
                f"{request.method} {request.url.path} needs {describe(roles)}",
                detail={"role": live.role, "required": sorted(roles)},
            )
        if request.method not in SAFE_METHODS:
            await check_csrf(request, expected=live.csrf_token)
        return live


async def check_csrf(request: Request, *, expected: str) -> None:
    """Forbidden unless the form's `csrf_token` is `expected` and the POST is same-origin."""
    check_same_origin(request)
    form = await read_form(request) if is_form(request) else {}
    sent = field(form, "csrf_token", max_length=128)
    if not sent or not secrets.compare_digest(sent.encode(), expected.encode()):
        raise Forbidden(
            "the form's CSRF token is missing or not this session's: reload the page",
            detail={"missing": "csrf_token"},
        )


ConsoleReadDep = Annotated[LiveSession, Depends(ConsoleAccess(Rule.READ))]
ConsoleBillingDep = Annotated[LiveSession, Depends(ConsoleAccess(Rule.BILLING))]
ConsoleAdminDep = Annotated[LiveSession, Depends(ConsoleAccess(Rule.ADMIN))]
