"""GET /v1/accounts/{id}/usage: a metric per local day, hour or month of the account's zone.

Known answers around the end of summer time in Europe/Berlin: on 2026-10-25 clocks go from
03:00 CEST back to 02:00 CET, so that local day lasts 25 hours (10-24 22:00Z to 10-25 23:00Z).

    water (sum of litres, bound meter-1):
        10-24 22:30Z = 10-25 00:30 CEST   5 l   -> day 10-25
        10-25 22:30Z = 10-25 23:30 CET    7 l   -> day 10-25
        10-25 23:30Z = 10-26 00:30 CET   11 l   -> day 10-26
        10-25 09:00Z                   1000 l   from stray-1, bound to nobody: never counted
    stream_hours (sum of camera session hours, bound cam-1):
        session 10-25 21:00Z .. 10-26 01:00Z (4 h): 2 h before local midnight (23:00Z), 2 after

    day      10-24 (24 h)   10-25 (25 h)   10-26 (24 h)
    water    0              12             11
    stream   0              2              2
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from fastapi import FastAPI

from cloud.auth.service import create_api_key
from cloud.catalog.accounts import create_account
from cloud.catalog.bindings import create_binding
from cloud.catalog.devices import create_device, create_profile
from cloud.catalog.metrics import create_metric
from cloud.db import Database
from cloud.sessions.service import refresh_sessions
from shared.events import EventKind
from tests.cloud.conftest import error_code
from tests.support.usage import GatewayFeed, usage

START = "2026-10-24T00:00:00+02:00"  # local midnight 10-24 (CEST)
END = "2026-10-27T00:00:00+01:00"  # local midnight 10-27 (CET)


def utc(text: str) -> datetime:
    """A UTC instant from `MM-DD HH:MM` in 2026."""
    return datetime.strptime(f"2026-{text}", "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


async def set_up(db: Database) -> dict[str, str]:
    """The Berlin account, its two bound devices, the metrics and the usage; the auth header."""
    async with db.transaction(write=True) as session:
        await create_profile(
            session=session,
            profile_id="camera",
            name="Camera",
            start_on=["stream_start"],
            end_on=["stream_stop"],
        )
        await create_profile(session=session, profile_id="meter", name="Meter")
        await create_device(session=session, device_id="cam-1", name="Cam", profile_id="camera")
        await create_device(session=session, device_id="meter-1", name="Tap", profile_id="meter")
        await create_device(session=session, device_id="stray-1", name="Lost", profile_id="meter")
        await create_metric(
            session=session,
            metric_id="water",
            name="Water",
            source="events",
            aggregation="sum",
            field="quantity",
            names=["water"],
        )
        await create_metric(
            session=session,
            metric_id="stream_hours",
            name="Streaming",
            source="sessions",
            aggregation="sum",
            field="duration",
        )
        await create_account(
            session=session,
            account_id="berlin",
            name="Berlin household",
            kind="household",
            currency="EUR",
            time_zone="Europe/Berlin",
        )
        for device in ("cam-1", "meter-1"):
            await create_binding(
                session=session,
                device_id=device,
                account_id="berlin",
                valid_from=utc("10-01 00:00"),
            )
        key = await create_api_key(session=session, name="analytics-tests")
    feed = await GatewayFeed("gw-analytics").register(db)
    water = EventKind.MEASUREMENT
    await feed.send(
        db,
        [
            usage("meter-1", "water", utc("10-24 22:30"), kind=water, quantity="5"),
            usage("stray-1", "water", utc("10-25 09:00"), kind=water, quantity="1000"),
            usage("cam-1", "stream_start", utc("10-25 21:00"), kind=EventKind.ACTIVATION),
            usage("meter-1", "water", utc("10-25 22:30"), kind=water, quantity="7"),
            usage("meter-1", "water", utc("10-25 23:30"), kind=water, quantity="11"),
            usage("cam-1", "stream_stop", utc("10-26 01:00"), kind=EventKind.DEACTIVATION),
        ],
    )
    await refresh_sessions(db=db, as_of=utc("11-02 00:00"))
    return {"Authorization": f"Bearer {key.secret}"}


async def get_usage(
    client: httpx.AsyncClient, headers: dict[str, str], **params: str
) -> httpx.Response:
    """GET the berlin account's usage with these query parameters."""
    return await client.get("/v1/accounts/berlin/usage", params=params, headers=headers)


def values(document: dict[str, Any]) -> list[Decimal]:
    """The bucket values as decimals."""
    return [Decimal(bucket["value"]) for bucket in document["buckets"]]


def hours(document: dict[str, Any]) -> list[float]:
    """How long each bucket lasts, in hours."""
    return [
        (datetime.fromisoformat(b["end"]) - datetime.fromisoformat(b["start"])) / timedelta(hours=1)
        for b in document["buckets"]
    ]


async def test_daily_buckets_across_the_berlin_dst_day(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    headers = await set_up(db)
    water = await get_usage(client, headers, metric="water", start=START, end=END)
    stream = await get_usage(client, headers, metric="stream_hours", start=START, end=END)
    assert water.status_code == 200, water.text
    document = water.json()
    assert (document["account_id"], document["metric"]) == ("berlin", "water")
    assert (document["time_zone"], document["granularity"]) == ("Europe/Berlin", "day")
    assert [b["start"] for b in document["buckets"]] == [
        "2026-10-23T22:00:00+00:00",
        "2026-10-24T22:00:00+00:00",
        "2026-10-25T23:00:00+00:00",
    ]
    assert hours(document) == [24, 25, 24]
    assert values(document) == [0, 12, 11]
    assert values(stream.json()) == [0, 2, 2]


async def test_hourly_buckets_of_the_25_hour_day(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    headers = await set_up(db)
    response = await get_usage(
        client,
        headers,
        metric="stream_hours",
        granularity="hour",
        start="2026-10-25T00:00:00+02:00",
        end="2026-10-26T00:00:00+01:00",
    )
    document = response.json()
    assert len(document["buckets"]) == 25
    streamed = values(document)
    # 21:00Z and 22:00Z are the last two local hours of the day (22:00, 23:00 CET).
    assert streamed[-2:] == [1, 1] and sum(streamed) == 2


async def test_monthly_buckets(app: FastAPI, client: httpx.AsyncClient, db: Database) -> None:
    headers = await set_up(db)
    response = await get_usage(
        client,
        headers,
        metric="water",
        granularity="month",
        start="2026-10-01T00:00:00+02:00",
        end="2026-12-01T00:00:00+01:00",
    )
    document = response.json()
    # October holds 5 + 7 + 11 (all before 11-01 00:00 CET = 10-31 23:00Z); November nothing.
    assert values(document) == [23, 0]
    assert [b["end"] for b in document["buckets"]] == [
        "2026-10-31T23:00:00+00:00",
        "2026-11-30T23:00:00+00:00",
    ]


async def test_bad_requests_are_refused(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    headers = await set_up(db)
    metric = await get_usage(client, headers, metric="nope", start=START, end=END)
    granularity = await get_usage(client, headers, metric="water", granularity="week")
    backwards = await get_usage(client, headers, metric="water", start=END, end=START)
    naive = await get_usage(client, headers, metric="water", start="2026-10-24T00:00:00", end=END)
    too_long = await get_usage(
        client, headers, metric="water", start="2025-01-01T00:00:00Z", end="2026-03-01T00:00:00Z"
    )
    unknown = await client.get(
        "/v1/accounts/nobody/usage", params={"metric": "water"}, headers=headers
    )
    anonymous = await client.get("/v1/accounts/berlin/usage", params={"metric": "water"})
    assert (metric.status_code, error_code(metric)) == (404, "metric_not_found")
    assert (unknown.status_code, error_code(unknown)) == (404, "account_not_found")
    for refused in (granularity, backwards, naive, too_long):
        assert (refused.status_code, error_code(refused)) == (422, "invalid_parameters")
    assert "400 day buckets" in too_long.json()["error"]["message"]
    assert anonymous.status_code == 401
