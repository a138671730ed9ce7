"""A profile's expected reporting interval, through the catalog API, the loader and the CLI;
out-of-range values are refused with a JSON error and nothing stored."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from cloud.auth.service import create_api_key
from cloud.catalog import devices
from cloud.catalog.loader import load_catalog, parse_catalog
from cloud.catalog.models import DeviceProfile
from cloud.cli import main
from cloud.db import Database
from cloud.errors import AlreadyExists, InvalidBillingInput
from tests.cloud.conftest import http_client
from tests.cloud.test_cli import plain_url

CATALOG = """
[[profiles]]
id = "meter"
name = "Meter"
expected_interval_seconds = 900
"""


@pytest.fixture
async def api(app: FastAPI, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with db.transaction(write=True) as session:
        issued = await create_api_key(session=session, name="fleet tests")
    async with http_client(app) as http:
        http.headers["Authorization"] = f"Bearer {issued.secret}"
        yield http


async def _profiles(db: Database) -> int:
    async with db.transaction() as session:
        return await session.scalar(select(func.count()).select_from(DeviceProfile)) or 0


async def test_the_api_stores_and_answers_the_interval(api: httpx.AsyncClient) -> None:
    created = await api.post(
        "/v1/profiles", json={"id": "meter", "name": "M", "expected_interval_seconds": 600}
    )
    assert created.status_code == 201, created.text
    assert created.json()["expected_interval_seconds"] == 600
    plain = await api.post("/v1/profiles", json={"id": "tv", "name": "TV"})
    assert plain.json()["expected_interval_seconds"] is None
    shown = await api.get("/v1/profiles/meter")
    assert shown.json()["expected_interval_seconds"] == 600


@pytest.mark.parametrize("value", [0, -5, 366 * 86400 + 1, "ten", 1.5])
async def test_the_api_refuses_bad_intervals(
    api: httpx.AsyncClient, db: Database, value: object
) -> None:
    response = await api.post(
        "/v1/profiles", json={"id": "meter", "name": "M", "expected_interval_seconds": value}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"]
    assert await _profiles(db) == 0


async def test_the_service_refuses_what_the_schema_would(db: Database) -> None:
    async with db.transaction(write=True) as session:
        with pytest.raises(InvalidBillingInput, match="expected_interval_seconds"):
            await devices.create_profile(
                session=session, profile_id="meter", name="M", expected_interval_seconds=0
            )


async def test_the_loader_creates_and_compares_the_interval(db: Database) -> None:
    async with db.transaction(write=True) as session:
        await load_catalog(session=session, catalog=parse_catalog(CATALOG))
    async with db.transaction(write=True) as session:  # idempotent
        await load_catalog(session=session, catalog=parse_catalog(CATALOG))
        profile = await session.get(DeviceProfile, "meter")
        assert profile is not None and profile.expected_interval_seconds == 900
    changed = CATALOG.replace("900", "60")
    async with db.transaction(write=True) as session:
        with pytest.raises(AlreadyExists, match="expected_interval_seconds"):
            await load_catalog(session=session, catalog=parse_catalog(changed))


def test_profile_add_takes_an_expected_interval(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = plain_url(db_url)
    assert main(["migrate", "--db", url]) == 0
    assert (
        main(
            [
                "profile",
                "add",
                "--id",
                "meter",
                "--name",
                "M",
                "--expected-interval",
                "15m",
                "--db",
                url,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "profile",
                "add",
                "--id",
                "bad",
                "--name",
                "B",
                "--expected-interval",
                "0s",
                "--db",
                url,
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("tollgate-cloud: error:")
