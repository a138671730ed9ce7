"""The agent's `/metrics` on its diagnostics server: the real agent, a simulated Modbus panel that
counts, a second device nobody answers for, and a collector that cannot be reached."""

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.agent import Agent
from edge.alarms import ALARM_CODES
from edge.diagnostics.auth import MAX_FAILURES
from edge.diagnostics.password import store_password
from firmware_sims.modbus_panel import ModbusPanel, Scenario, SimCounter
from firmware_sims.site import SimulatedPanel, render_site_config
from tests.support.agent import running_agent
from tests.support.waiting import eventually, free_port

PASSWORD = "correct horse battery"
COUNTERS = (SimCounter("door_open", "input", 0, "uint16", "big", initial=40),)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class MeteredSite:
    agent: Agent
    panel: ModbusPanel
    url: str
    data_dir: Path


@asynccontextmanager
async def metered_site(tmp_path: Path) -> AsyncIterator[MeteredSite]:
    """`panel-1` counts on a simulator; `ghost-1` points at a port nothing listens on."""
    data_dir = tmp_path / "edge"
    store_password(data_dir, PASSWORD)
    async with ModbusPanel(port=0, scenario=Scenario(counters=COUNTERS, tick=0)) as panel:
        config = render_site_config(
            gateway_id="gw-metrics",
            cloud_url="http://127.0.0.1:9",  # nothing listens: every batch stays in the outbox
            data_dir=data_dir,
            panels=[
                SimulatedPanel("panel-1", panel.port, COUNTERS),
                SimulatedPanel("ghost-1", free_port(), COUNTERS),
            ],
        )
        config += '\n[diagnostics]\nlisten = "127.0.0.1:0"\n'
        async with running_agent(config) as agent:
            assert agent.diagnostics is not None and agent.diagnostics.url is not None
            yield MeteredSite(agent, panel, agent.diagnostics.url, data_dir)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[MeteredSite]:
    async with metered_site(tmp_path) as running:
        yield running


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def scrape(url: str, password: str = PASSWORD) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, auth=("prometheus", password)) as client:
        return await client.get("/metrics")


async def test_metrics_show_the_backlog_events_and_device_errors(site: MeteredSite) -> None:
    agent, tail = site.agent, site.agent.tail
    await eventually(lambda: agent.health["panel-1"].state == "ok", what="panel-1 polled")
    for count in (1, 2, 3):  # one counted unit at a time: each is one event
        await site.panel.advance("door_open")
        await eventually(lambda c=count: tail.committed["panel-1"] == c, what=f"event {count}")
    await eventually(lambda: sum(agent.health["ghost-1"].errors.values()) > 0, what="ghost fails")

    response = await scrape(site.url)
    samples = parse(response.text)
    ghost = agent.health["ghost-1"]
    counted_since = {**ghost.errors, **ghost.protocol}

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert value(samples, "tollgate_edge_outbox_backlog_events") == 3
    assert value(samples, "tollgate_edge_events_total", device="panel-1") == 3
    assert value(samples, "tollgate_edge_events_total", device="ghost-1") == 0
    assert value(samples, "tollgate_edge_outbox_oldest_age_seconds") > 0
    assert value(samples, "tollgate_edge_cloud_link_up") == 0
    assert value(samples, "tollgate_edge_batches_sent_total") == 0
    errors = {
        labels: count
        for (name, labels), count in samples.items()
        if name == "tollgate_edge_device_errors_total"
    }
    ghost_kinds = {
        dict(labels)["kind"]: n
        for labels, n in errors.items()
        if dict(labels)["device"] == "ghost-1"
    }
    assert ghost_kinds and set(ghost_kinds) <= set(counted_since)
    # The scrape read the health counters a moment ago; they only grow.
    assert all(0 < n <= counted_since[kind] for kind, n in ghost_kinds.items())
    assert not any(dict(labels)["device"] == "panel-1" for labels in errors)
    assert "process_cpu_seconds_total" in response.text  # the process's own metrics too


async def test_metrics_need_the_technician_password(site: MeteredSite) -> None:
    async with httpx.AsyncClient(base_url=site.url) as client:
        anonymous = await client.get("/metrics")
        garbled = await client.get("/metrics", headers={"Authorization": "Basic ???"})
    wrong = await scrape(site.url, "not the password")
    right = await scrape(site.url)
    again = await scrape(site.url)  # the remembered password, not the slow hash

    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith(
        "Basic"
    )
    assert garbled.status_code == 401
    assert wrong.status_code == 401 and wrong.json() == {"error": "wrong password"}
    assert right.status_code == 200 and again.status_code == 200


async def test_a_logged_in_session_may_read_the_metrics(site: MeteredSite) -> None:
    async with httpx.AsyncClient(base_url=site.url) as client:
        login = await client.post("/login", json={"password": PASSWORD})
        response = await client.get("/metrics")

    assert login.status_code == 200
    assert response.status_code == 200 and "tollgate_edge_outbox_backlog_events" in response.text


async def test_wrong_scrape_passwords_are_rate_limited_like_logins(site: MeteredSite) -> None:
    for _ in range(MAX_FAILURES):
        assert (await scrape(site.url, "not the password")).status_code == 401
    limited = await scrape(site.url)

    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


async def test_a_changed_password_forgets_the_remembered_one(site: MeteredSite) -> None:
    assert (await scrape(site.url)).status_code == 200
    store_password(site.data_dir, "a brand new password")

    old = await scrape(site.url)
    new = await scrape(site.url, "a brand new password")

    assert old.status_code == 401
    assert new.status_code == 200


async def test_without_a_password_metrics_stay_closed(tmp_path: Path) -> None:
    async with metered_site(tmp_path) as site:
        (site.data_dir / "technician.password").unlink()
        response = await scrape(site.url)

    assert response.status_code == 503
    assert "tollgate-edge technician set-password" in response.json()["error"]


async def test_metrics_show_each_alarm_the_page_shows(site: MeteredSite) -> None:
    """ghost-1 never answers: its device_errors alarm is 1 with its device; an alarm not raised
    (outbox_full: the outbox is nearly empty) is listed at 0, so alert rules find every code."""

    async def ghost_alarm() -> bool:
        samples = parse((await scrape(site.url)).text)
        raised = samples.get(("tollgate_edge_alarm", alarm_labels("device_errors", "warn")))
        alarmed = samples.get(("tollgate_edge_alarm", alarm_labels("device_errors", "alarm")))
        return 1 in (raised, alarmed)

    await eventually(ghost_alarm, what="ghost-1's device_errors alarm in /metrics")
    samples = parse((await scrape(site.url)).text)
    alarms = {labels: n for (name, labels), n in samples.items() if name == "tollgate_edge_alarm"}
    assert alarms[(("code", "outbox_full"), ("device", ""), ("severity", ""))] == 0
    assert {dict(labels)["code"] for labels in alarms} == set(ALARM_CODES)
    assert not any(dict(labels)["device"] == "panel-1" for labels in alarms)


def alarm_labels(code: str, severity: str) -> tuple[tuple[str, str], ...]:
    return (("code", code), ("device", "ghost-1"), ("severity", severity))


def test_every_alarm_code_is_listed_for_the_metrics() -> None:
    """A code derive_alarms can raise but ALARM_CODES misses would have no 0 series."""
    source = (Path(__file__).parents[2] / "edge" / "alarms.py").read_text()
    assert set(re.findall(r'code="(\w+)"', source)) == set(ALARM_CODES)
