"""Every /console route, listed from the app's own routes, against every kind of caller.

Console routes take a session cookie, not an API key (tests/cloud/test_access.py skips them):
anonymous GETs are sent to the login page (303), anonymous POSTs get the 401 error body; a
logged-in user of a role the route's rule does not admit gets 403; an API key is no session.
Only the login page, its form and the stylesheet are public.
"""

import httpx
from fastapi import FastAPI

from cloud.auth.access import access_rule, api_routes
from cloud.auth.roles import Rule
from cloud.db import Database
from tests.cloud.conftest import READER, http_client
from tests.cloud.console.helpers import ORIGIN, add_users, logged_in

PUBLIC_ROUTES = {
    ("GET", "/console/login"),
    ("POST", "/console/login"),
    ("GET", "/console/assets/console.css"),
}
ADMITTED = {
    Rule.READ: {"viewer", "billing", "admin"},
    Rule.BILLING: {"billing", "admin"},
    Rule.ADMIN: {"admin"},
}


def console_routes(app: FastAPI) -> list[tuple[str, str, Rule | None]]:
    """(method, path, rule) of every /console route of the app."""
    found: list[tuple[str, str, Rule | None]] = []
    for route in api_routes(app):
        path = route.path_format or ""
        if path == "/console" or path.startswith("/console/"):
            found.extend(
                (method, path, access_rule(route)) for method in sorted(route.methods or ())
            )
    return found


def test_console_routes_are_listed_and_each_declares_a_rule() -> None:
    from cloud.app import create_app

    routes = console_routes(create_app())
    paths = {(method, path) for method, path, _ in routes}

    assert {("GET", "/console"), ("POST", "/console/logout"), ("GET", "/console/users")} <= paths
    assert paths >= PUBLIC_ROUTES
    assert [(m, p) for m, p, rule in routes if rule is None] == []
    public = {(m, p) for m, p, rule in routes if rule is Rule.PUBLIC}
    assert public == PUBLIC_ROUTES
    assert all(rule in ADMITTED for m, p, rule in routes if (m, p) not in PUBLIC_ROUTES)


def test_console_routes_stay_out_of_the_openapi() -> None:
    from cloud.app import create_app

    assert not [path for path in create_app().openapi()["paths"] if path.startswith("/console")]


async def test_anonymous_callers_are_refused_on_every_console_route(app: FastAPI) -> None:
    wrong: list[str] = []
    async with http_client(app) as client:
        for method, path, rule in console_routes(app):
            if (method, path) in PUBLIC_ROUTES:
                continue
            for headers in ({}, READER):  # no credential; an API key is no console session
                answer = await _call(client, method, path, {**headers, **ORIGIN})
                problem = _anonymous_problem(method, answer)
                if problem:
                    wrong.append(f"{method} {path} ({rule}) {sorted(headers)}: {problem}")

    assert wrong == []


async def test_each_role_is_admitted_by_the_rule_of_each_route(app: FastAPI, db: Database) -> None:
    await add_users(db)
    wrong: list[str] = []
    for role in ("viewer", "billing", "admin"):
        async with http_client(app) as client:
            csrf = await logged_in(client, role)
            for method, path, rule in console_routes(app):
                if (method, path) in PUBLIC_ROUTES or path == "/console/logout":
                    continue  # logout ends the session: tests/cloud/console/test_sessions.py
                assert rule is not None
                answer = await _call(client, method, path, ORIGIN, csrf=csrf)
                admitted = role in ADMITTED[rule]
                if admitted and answer.status_code not in _admitted_statuses(method, path):
                    wrong.append(f"{method} {path} as {role}: {answer.status_code}")
                if not admitted and (
                    answer.status_code != 403 or answer.json()["error"]["code"] != "forbidden"
                ):
                    wrong.append(f"{method} {path} as {role}: {answer.status_code}, expected 403")

    assert wrong == []


def _admitted_statuses(method: str, path: str) -> set[int]:
    """200; a path with parameters is called with its placeholders ("{account_id}"), so past
    its access rule it may also find nothing (404) or refuse the placeholder (422); a POST is
    sent without its form's fields, which its page may refuse (422)."""
    if "{" in path:
        return {200, 404, 422}
    return {200, 422} if method == "POST" else {200}


async def _call(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    headers: dict[str, str],
    *,
    csrf: str | None = None,
) -> httpx.Response:
    data = None if method == "GET" else {"csrf_token": csrf or "x"}
    return await client.request(method, path, headers=headers, data=data)


def _anonymous_problem(method: str, answer: httpx.Response) -> str | None:
    if method == "GET":
        if answer.status_code != 303 or answer.headers.get("location") != "/console/login":
            return f"{answer.status_code} {answer.headers.get('location')}, expected 303 to login"
        return None
    if answer.status_code != 401:
        return f"{answer.status_code}, expected 401"
    error = answer.json()["error"]
    if error["code"] != "unauthorized" or error["detail"] != {"missing": "console_session"}:
        return f"not the refusal body: {error}"
    return None
