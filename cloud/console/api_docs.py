"""/docs (Swagger UI) and /redoc from installed assets: nothing is fetched from the internet.

Both come from the PyPI package `fastapi-offline` (pinned in pyproject.toml), which ships Swagger
UI 5 and ReDoc's standalone bundle as plain files; they are served from its install directory
under /docs/assets/. ReDoc's page forbids images from elsewhere (REDOC_POLICY: its bundle would
fetch its logo from a CDN). swagger-ui-bundle 1.1.0 ships Swagger UI 4.15, which cannot show the
OpenAPI 3.1 document FastAPI writes. The routes are public like FastAPI's own docs routes.
"""

import importlib.util
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse

from cloud.api import PUBLIC

ASSETS_PATH = "/docs/assets"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
# ReDoc's bundle shows its "powered by" logo from cdn.redoc.ly: the browser may load images from
# here only (the logo stays blank), styles inline (styled-components), its worker from a blob.
REDOC_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "worker-src 'self' blob:; frame-ancestors 'none'"
)


def assets_dir() -> Path:
    """Where `fastapi-offline` installed its static files."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the package fastapi-offline is missing: pip install tollgate[cloud]")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def add_api_docs(app: FastAPI) -> None:
    """Serve /docs, /docs/oauth2-redirect, /redoc and their assets (create the app with
    `docs_url=None, redoc_url=None`)."""
    folder = assets_dir()
    title = app.title

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root(request)
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            oauth2_redirect_url=root + OAUTH2_REDIRECT,
        )

    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = _root(request)
        page = get_redoc_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = REDOC_POLICY
        return page

    async def asset(name: str) -> FileResponse:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise HTTPException(404, f"no docs asset {name!r}")
        return FileResponse(
            folder / name, media_type=media_type, headers={"Cache-Control": "max-age=86400"}
        )

    for path, endpoint in (
        ("/docs", swagger_ui),
        (OAUTH2_REDIRECT, oauth2_redirect),
        ("/redoc", redoc),
        (ASSETS_PATH + "/{name}", asset),
    ):
        app.add_api_route(
            path,
            endpoint,
            methods=["GET"],
            include_in_schema=False,
            dependencies=[PUBLIC],
            response_model=None,
        )


def _root(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")
