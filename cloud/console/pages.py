"""Rendering console pages: Jinja2 templates shipped in this package, autoescaped.

A number on a page names the API operation it comes from (`ApiLink`), and links to that
operation in the API docs (Swagger UI's deep link `#/<tag>/<operationId>`), read from the app's
own OpenAPI document so that a renamed route cannot leave a dead link unnoticed.
"""

from dataclasses import dataclass
from functools import cache
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined


@cache
def environment() -> Environment:
    """The templates of cloud/console/templates."""
    return Environment(
        loader=PackageLoader("cloud.console", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
    )


def render(request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    """A page; `root` (the app's root path) is given to every template."""
    root = str(request.scope.get("root_path", "")).rstrip("/")
    from cloud.console.area_routers import nav

    html = environment().get_template(template).render(root=root, nav=nav(), **values)
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )


@dataclass(frozen=True, slots=True)
class ApiLink:
    """The API operation behind a number (`GET /v1/...?...`) and its place in the API docs."""

    api: str
    href: str


def api_link(
    app: FastAPI, method: str, path: str, query: str = "", *, shown: str | None = None
) -> ApiLink | None:
    """The docs link of `method path` (None if the app has no such operation); `shown` is the
    path as the number's caption names it (the ids filled in)."""
    operation = app.openapi().get("paths", {}).get(path, {}).get(method.lower())
    if operation is None:
        return None
    tag = (operation.get("tags") or ["default"])[0]
    caption = (shown or path) + (f"?{query}" if query else "")
    return ApiLink(api=f"{method} {caption}", href=f"/docs#/{tag}/{operation['operationId']}")
