"""The diagnostics page against the real agent: its uvicorn server on a real socket, a simulated
Modbus panel behind it, the technician password on disk. Nothing is mocked."""

import asyncio
import io
import socket
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import orjson
import pytest

from edge.cli import main
from edge.diagnostics.auth import CSRF_HEADER, MAX_FAILURES, SESSION_COOKIE
from edge.diagnostics.bundle import MEMORY_LOG, redact
from edge.diagnostics.password import load_password_hash
from edge.enrollment import EnrollmentRecord, write_enrollment
from firmware_sims.modbus_panel import ModbusPanel, Scenario, SimCounter
from firmware_sims.site import SimulatedPanel, render_site_config
from tests.support.agent import running_agent
from tests.support.diagnostics import DEVICE_ID, PASSWORD, DiagnosticsSite, diagnostics_site
from tests.support.waiting import free_port

WAIT = 30.0
CSRF = {CSRF_HEADER: "1"}


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[DiagnosticsSite]:
    async with diagnostics_site(tmp_path) as running:
        yield running


@asynccontextmanager
async def logged_in(site: DiagnosticsSite) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=site.url) as client:
        response = await client.post("/login", json={"password": PASSWORD})
        assert response.status_code == 200, response.text
        yield client


ROUTES = [
    ("GET", "/", 303),
    ("POST", "/logout", 303),
    ("GET", "/api/status", 401),
    ("GET", "/api/events", 401),
    ("POST", f"/api/devices/{DEVICE_ID}/poll", 401),
    ("POST", "/api/flush", 401),
    ("GET", "/api/support-bundle", 401),
]


@pytest.mark.parametrize(("method", "path", "status"), ROUTES)
@pytest.mark.parametrize("cookie", [None, "forged-token"])
async def test_anonymous_requests_are_refused(
    site: DiagnosticsSite, method: str, path: str, status: int, cookie: str | None
) -> None:
    cookies = {SESSION_COOKIE: cookie} if cookie else None
    async with httpx.AsyncClient(base_url=site.url, cookies=cookies) as client:
        response = await client.request(method, path, headers=CSRF)
    assert response.status_code == status
    if status == 303:
        assert response.headers["location"] == "/login"
    else:
        assert response.json() == {"error": "login required"}


async def test_without_a_technician_password_the_page_stays_closed(tmp_path: Path) -> None:
    async with (
        diagnostics_site(tmp_path, password=None) as site,
        httpx.AsyncClient(base_url=site.url) as client,
    ):
        for method, path in [("GET", "/"), ("GET", "/login"), ("GET", "/api/status")]:
            response = await client.request(method, path)
            assert response.status_code == 503
            assert "tollgate-edge technician set-password" in response.text
        refused = await client.post("/login", json={"password": PASSWORD})
        assert refused.status_code == 503


async def test_login_sets_a_strict_http_only_session_cookie(site: DiagnosticsSite) -> None:
    async with httpx.AsyncClient(base_url=site.url) as client:
        form = await client.get("/login")
        assert form.status_code == 200 and 'name="password"' in form.text
        response = await client.post("/login", data={"password": PASSWORD})
        assert response.status_code == 303 and response.headers["location"] == "/"
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
        page = await client.get("/")
        assert page.status_code == 200 and "gw-diag" in page.text
        assert "nonce-" in page.headers["content-security-policy"]
        logout = await client.post("/logout", headers=CSRF)
        assert logout.status_code == 200
        assert (await client.get("/api/status")).status_code == 401


async def test_wrong_passwords_are_refused_then_rate_limited(site: DiagnosticsSite) -> None:
    async with httpx.AsyncClient(base_url=site.url) as client:
        for _ in range(MAX_FAILURES):
            response = await client.post("/login", json={"password": "not the password"})
            assert response.status_code == 401
            assert SESSION_COOKIE not in response.cookies
        limited = await client.post("/login", json={"password": PASSWORD})
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert (await client.get("/api/status")).status_code == 401


async def test_posts_need_the_csrf_header(site: DiagnosticsSite) -> None:
    async with logged_in(site) as client:
        response = await client.post("/api/flush")
        assert response.status_code == 403
        assert CSRF_HEADER in response.json()["error"]


async def test_status_has_every_section(site: DiagnosticsSite) -> None:
    async with logged_in(site) as client:
        status = (await client.get("/api/status")).json()
    assert status["gateway_id"] == "gw-diag"
    assert status["identity"]["cloud_url"] == "http://127.0.0.1:9"
    assert len(status["identity"]["key_fingerprint"]) == 64
    assert status["clock"] in ("synced", "unsynced")
    assert status["enrollment"] is None  # never enrolled: the page says so
    assert {"last_success", "last_error", "batches_sent"} <= status["cloud_link"].keys()
    outbox = status["outbox"]
    assert {"backlog", "oldest_unsent_age_s", "used_bytes", "budget_bytes", "used_pct"} <= set(
        outbox
    )
    [device] = status["devices"]
    assert device["device_id"] == DEVICE_ID and device["driver"] == "modbus"
    assert {"address", "state", "last_values", "errors", "last_event"} <= device.keys()


async def test_status_shows_the_enrollment_record(site: DiagnosticsSite) -> None:
    record = EnrollmentRecord("gw-diag", "site-7", "http://127.0.0.1:9", "2026-01-02T03:04:05Z")
    write_enrollment(site.data_dir, record)
    async with logged_in(site) as client:
        status = (await client.get("/api/status")).json()
    assert status["enrollment"]["site_id"] == "site-7"


async def test_poll_now_returns_the_devices_fresh_values(site: DiagnosticsSite) -> None:
    # The poll interval is an hour: after the start-up poll only "poll now" reads the panel.
    await site.panel.set("door_open", 1234)
    async with logged_in(site) as client:
        response = await client.post(f"/api/devices/{DEVICE_ID}/poll", headers=CSRF)
        assert response.status_code == 200, response.text
        assert response.json()["values"] == {"door_open": 1234}
        await site.panel.advance("door_open", 5)
        again = await client.post(f"/api/devices/{DEVICE_ID}/poll", headers=CSRF)
        assert again.json()["values"] == {"door_open": 1239}
        status = (await client.get("/api/status")).json()
        assert status["devices"][0]["last_values"] == {"door_open": 1239}
        unknown = await client.post("/api/devices/nope/poll", headers=CSRF)
        assert unknown.status_code == 404


async def test_flush_wakes_the_forwarder(site: DiagnosticsSite) -> None:
    async with logged_in(site) as client:
        response = await client.post("/api/flush", headers=CSRF)
    assert response.status_code == 200
    assert response.json()["ok"] is True and response.json()["backlog"] >= 0


async def test_event_tail_streams_committed_events(site: DiagnosticsSite) -> None:
    async with (
        logged_in(site) as client,
        asyncio.timeout(WAIT),
        client.stream("GET", "/api/events") as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        assert await anext(lines) == ": connected"
        await site.panel.advance("door_open", 3)
        poll = await client.post(f"/api/devices/{DEVICE_ID}/poll", headers=CSRF)
        assert poll.status_code == 200
        event = await next_usage(lines, lambda e: e["name"] == "door_open")
    assert event["device_id"] == DEVICE_ID
    assert event["kind"] == "activity" and event["quantity"] == "3"
    assert event["seq"] >= 1


async def next_usage(lines: AsyncIterator[str], match: object) -> dict[str, object]:
    async for line in lines:
        if line.startswith("data: "):
            event = orjson.loads(line.removeprefix("data: "))
            if callable(match) and match(event):
                return dict(event)
    raise AssertionError("the stream ended before the event came")


async def test_support_bundle_downloads_without_secrets(site: DiagnosticsSite) -> None:
    async with logged_in(site) as client:
        response = await client.get("/api/support-bundle")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert "attachment" in response.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    names = set(archive.namelist())
    assert {"status.json", "config.json", MEMORY_LOG, "recent-events.json"} <= names
    status = orjson.loads(archive.read("status.json"))
    assert status["devices"][0]["device_id"] == DEVICE_ID
    everything = b"".join(archive.read(name) for name in names)
    password_hash = load_password_hash(site.data_dir)
    assert password_hash is not None
    key = (site.data_dir / "gateway.key").read_bytes()
    for secret in (PASSWORD.encode(), password_hash.encode(), key, b"PRIVATE KEY"):
        assert secret not in everything


def test_redaction_keeps_paths_and_hides_secret_values() -> None:
    config = {
        "mqtt": {"password_file": "/etc/p", "api_key": "k", "nested": [{"token": "t"}]},
        "gateway": {"id": "gw"},
    }
    assert redact(config) == {
        "mqtt": {"password_file": "/etc/p", "api_key": "***", "nested": [{"token": "***"}]},
        "gateway": {"id": "gw"},
    }


async def test_a_taken_port_costs_the_page_not_the_agent(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with diagnostics_site(tmp_path, listen=f"127.0.0.1:{port}") as site:
            assert site.url == ""
            assert site.agent.diagnostics is not None and site.agent.diagnostics.url is None
            readings = await site.agent.poll_now(DEVICE_ID)
            assert [r.point for r in readings] == ["door_open"]


def site_with_diagnostics(tmp_path: Path, port: int, diagnostics: str) -> str:
    """A one-panel site config (TOML) with the given [diagnostics] table."""
    config = render_site_config(
        gateway_id="gw-diag",
        cloud_url="http://127.0.0.1:9",
        data_dir=tmp_path / "edge",
        panels=[SimulatedPanel(DEVICE_ID, port, (SimCounter("door_open", "input", 0),))],
    )
    return config + f"\n[diagnostics]\n{diagnostics}\n"


def refuses_connections(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


async def test_a_listen_that_is_not_host_and_port_is_refused_before_the_agent_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "site.toml"
    path.write_text(site_with_diagnostics(tmp_path, 502, 'listen = "off"'))
    line = path.read_text().splitlines().index('listen = "off"') + 1
    for command in ("check-config", "run"):
        assert main([command, "--config", str(path)]) == 2
        error = capsys.readouterr().err
        assert error.startswith(f"tollgate-edge: {path}:{line}: field diagnostics.listen: "), error
        assert "'off' is not host:port" in error and "set enabled = false" in error
        assert "Traceback" not in error
    assert not (tmp_path / "edge" / "outbox.sqlite").exists()  # the agent never started


async def test_enabled_false_serves_no_page_and_the_agent_runs(tmp_path: Path) -> None:
    port = free_port()
    counters = (SimCounter("door_open", "input", 0, "uint16", initial=40),)
    async with ModbusPanel(port=0, scenario=Scenario(counters=counters, tick=0)) as panel:
        config = site_with_diagnostics(
            tmp_path, panel.port, f'enabled = false\nlisten = "127.0.0.1:{port}"'
        )
        async with running_agent(config) as agent:
            assert agent.diagnostics is None
            readings = await agent.poll_now(DEVICE_ID)
            assert [(r.point, r.value) for r in readings] == [("door_open", 40)]
            assert refuses_connections(port)  # nothing bound the configured address
            status = await agent.status("running")
    assert status["devices"][0]["state"] == "ok"
