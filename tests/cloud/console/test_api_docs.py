"""/docs and /redoc use only the collector's own URLs, and each of them answers."""

import re

import httpx
import pytest


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_a_docs_page_loads_nothing_from_elsewhere(
    client: httpx.AsyncClient, page: str
) -> None:
    html = (await client.get(page)).text
    referenced = set(re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html))
    referenced |= set(re.findall(r"""\b(?:url|spec-url)\s*[:=]\s*["']([^"']+)["']""", html))
    absolute = re.findall(r"""(?:https?:)?//[\w.-]+\.\w+""", html)  # a CDN, Google Fonts

    assert referenced, html
    assert all(url.startswith("/") and not url.startswith("//") for url in referenced), referenced
    assert absolute == []
    for url in sorted(referenced):
        answer = await client.get(url)
        assert answer.status_code == 200, url
        assert answer.content, url


async def test_the_assets_are_the_packaged_bundles(client: httpx.AsyncClient) -> None:
    swagger = await client.get("/docs/assets/swagger-ui-bundle.js")
    redoc = await client.get("/docs/assets/redoc.standalone.js")
    other = await client.get("/docs/assets/..%2Fcore.py")

    assert swagger.headers["content-type"].startswith("text/javascript")
    assert b"SwaggerUIBundle" in swagger.content
    assert b"Redoc" in redoc.content
    assert other.status_code == 404 and other.json()["error"]["code"] == "http_404"


async def test_redoc_may_load_images_only_from_here(client: httpx.AsyncClient) -> None:
    """ReDoc's bundle puts its logo from cdn.redoc.ly on the page: the policy refuses it."""
    policy = (await client.get("/redoc")).headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))

    assert directives["default-src"] == "'self'"
    assert directives["img-src"] == "'self' data:"
    assert "http" not in policy
