"""Metrics and plans over the API, and the domain values invoicing reads from them."""

from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from cloud.catalog.metrics import metric_specs
from cloud.catalog.plans import all_plan_versions, plan_versions
from cloud.db import Database
from cloud.domain import (
    Aggregation,
    Charge,
    DurationUnit,
    MetricField,
    MetricSource,
    MetricSpec,
    PlanVersion,
    PriceModel,
    Tier,
)
from tests.cloud.catalog.conftest import post_ok
from tests.cloud.conftest import error_code

TV_HOURS = {
    "id": "tv-hours",
    "name": "TV hours",
    "source": "sessions",
    "aggregation": "sum",
    "field": "duration",
    "profiles": ["tv"],
}
KWH = {
    "id": "kwh",
    "name": "Energy",
    "source": "events",
    "aggregation": "sum",
    "field": "quantity",
    "names": ["energy"],
    "unit": "kWh",
}
TERMS_NOV = {
    "effective_from": "2026-11-01T00:00:00+01:00",
    "base_fee": "9.90",
    "charges": [
        {
            "metric": "tv-hours",
            "model": "graduated",
            "included_units": "10",
            "tiers": [
                {"up_to": "100", "unit_price": "0.50"},
                {"up_to": None, "unit_price": "0.40", "flat_fee": "1"},
            ],
        }
    ],
}
TERMS_DEC = {
    "effective_from": "2026-12-01T00:00:00+01:00",
    "base_fee": "12",
    "minimum_amount": "15.00",
    "charges": [{"metric": "kwh", "model": "standard", "unit_price": "0.30"}],
}


@pytest.fixture
async def metered(api: httpx.AsyncClient) -> httpx.AsyncClient:
    """A tv profile, the tv-hours and kwh metrics and an EUR plan `basic`."""
    await post_ok(api, "/v1/profiles", {"id": "tv", "name": "TV", "start_on": ["power_on"]})
    await post_ok(api, "/v1/metrics", TV_HOURS)
    await post_ok(api, "/v1/metrics", KWH)
    await post_ok(api, "/v1/plans", {"id": "basic", "name": "Basic", "currency": "EUR"})
    return api


async def test_metrics_are_created_listed_and_read_as_specs(
    metered: httpx.AsyncClient, db: Database
) -> None:
    fetched = (await metered.get("/v1/metrics/tv-hours")).json()
    listed = (await metered.get("/v1/metrics")).json()
    async with db.transaction() as session:
        specs = await metric_specs(session=session)

    assert fetched["duration_unit"] == "hour" and fetched["profiles"] == ["tv"]
    assert [item["id"] for item in listed] == ["kwh", "tv-hours"]
    assert specs == {
        "tv-hours": MetricSpec(
            id="tv-hours",
            source=MetricSource.SESSIONS,
            aggregation=Aggregation.SUM,
            field=MetricField.DURATION,
            profiles=frozenset({"tv"}),
            duration_unit=DurationUnit.HOUR,
        ),
        "kwh": MetricSpec(
            id="kwh",
            source=MetricSource.EVENTS,
            aggregation=Aggregation.SUM,
            field=MetricField.QUANTITY,
            names=frozenset({"energy"}),
            unit="kWh",
        ),
    }


@pytest.mark.parametrize(
    ("changes", "status", "code", "message"),
    [
        ({"source": "events"}, 422, "invalid_billing_input", "duration is a field of sessions"),
        ({"field": None}, 422, "invalid_billing_input", "sum needs a field"),
        ({"aggregation": "count"}, 422, "invalid_billing_input", "count takes no field"),
        ({"unit": "h"}, 422, "invalid_billing_input", "unit filter applies to events only"),
        ({"aggregation": "median"}, 422, "invalid_parameters", "aggregation"),
        ({"profiles": ["radio"]}, 404, "profile_not_found", "radio"),
        ({"id": "kwh"}, 409, "already_exists", "kwh"),
    ],
    ids=[
        "duration-of-events",
        "sum-without-field",
        "count-with-field",
        "unit-on-sessions",
        "unknown-aggregation",
        "unknown-profile",
        "duplicate",
    ],
)
async def test_a_bad_metric_is_refused(
    metered: httpx.AsyncClient, changes: dict[str, object], status: int, code: str, message: str
) -> None:
    response = await metered.post("/v1/metrics", json={**TV_HOURS, "id": "new", **changes})

    assert response.status_code == status, response.text
    assert error_code(response) == code
    assert message in response.json()["error"]["message"]
    assert [item["id"] for item in (await metered.get("/v1/metrics")).json()] == ["kwh", "tv-hours"]


async def test_plan_versions_are_numbered_and_read_as_domain_values(
    metered: httpx.AsyncClient, db: Database
) -> None:
    # Posted out of order: version numbers follow creation, the listing follows effective_from.
    dec = await post_ok(metered, "/v1/plans/basic/versions", TERMS_DEC)
    nov = await post_ok(metered, "/v1/plans/basic/versions", TERMS_NOV)
    plan = (await metered.get("/v1/plans/basic")).json()
    async with db.transaction() as session:
        versions = await plan_versions(session=session, plan_id="basic")
        every = await all_plan_versions(session=session)

    assert (dec["version"], nov["version"]) == (1, 2)
    assert [v["version"] for v in plan["versions"]] == [2, 1]
    assert plan["versions"][0]["terms"]["base_fee"] == "9.90"
    assert plan["versions"][0]["terms"]["charges"][0]["tiers"][1]["up_to"] is None
    assert versions == [
        PlanVersion(
            plan_id="basic",
            version=2,
            effective_from=datetime(2026, 10, 31, 23, tzinfo=UTC),
            currency="EUR",
            base_fee=Decimal("9.90"),
            charges=(
                Charge(
                    metric="tv-hours",
                    model=PriceModel.GRADUATED,
                    included_units=Decimal(10),
                    tiers=(
                        Tier(up_to=Decimal(100), unit_price=Decimal("0.50")),
                        Tier(up_to=None, unit_price=Decimal("0.40"), flat_fee=Decimal(1)),
                    ),
                ),
            ),
        ),
        PlanVersion(
            plan_id="basic",
            version=1,
            effective_from=datetime(2026, 11, 30, 23, tzinfo=UTC),
            currency="EUR",
            base_fee=Decimal(12),
            minimum_amount=Decimal("15.00"),
            charges=(Charge(metric="kwh", model=PriceModel.STANDARD, unit_price=Decimal("0.30")),),
        ),
    ]
    assert every == {"basic": versions}
    assert str(versions[0].base_fee) == "9.90"  # exact, as written


@pytest.mark.parametrize(
    ("terms", "status", "code", "message"),
    [
        ({**TERMS_NOV, "base_fee": 9.9}, 422, "invalid_parameters", "a float is not exact"),
        (
            {**TERMS_DEC, "charges": [{"metric": "kwh", "model": "standard", "unit_price": 0.3}]},
            422,
            "invalid_parameters",
            "a float is not exact",
        ),
        (
            {**TERMS_NOV, "effective_from": "2026-11-01T00:00:00"},
            422,
            "invalid_parameters",
            "effective_from",
        ),
        (
            {
                **TERMS_DEC,
                "charges": [{"metric": "litres", "model": "standard", "unit_price": "1"}],
            },
            404,
            "metric_not_found",
            "litres",
        ),
        (
            {**TERMS_DEC, "effective_from": "2026-10-31T23:00:00Z"},
            409,
            "already_exists",
            "already has version 1",
        ),
        ({**TERMS_NOV, "base_fee": "-1"}, 422, "invalid_parameters", "base_fee"),
    ],
    ids=["float-fee", "float-price", "naive-time", "unknown-metric", "same-instant", "negative"],
)
async def test_a_bad_plan_version_is_refused(
    metered: httpx.AsyncClient, terms: dict[str, object], status: int, code: str, message: str
) -> None:
    await post_ok(metered, "/v1/plans/basic/versions", TERMS_NOV)

    response = await metered.post("/v1/plans/basic/versions", json=terms)

    assert response.status_code == status, response.text
    assert error_code(response) == code
    assert message in response.json()["error"]["message"]
    assert [v["version"] for v in (await metered.get("/v1/plans/basic")).json()["versions"]] == [1]


async def test_plans_are_created_listed_and_refused(metered: httpx.AsyncClient) -> None:
    await post_ok(metered, "/v1/plans", {"id": "dollar", "name": "Dollar", "currency": "USD"})

    listed = (await metered.get("/v1/plans")).json()
    bad_currency = await metered.post("/v1/plans", json={"id": "x", "name": "X", "currency": "EUX"})
    duplicate = await metered.post(
        "/v1/plans", json={"id": "basic", "name": "B", "currency": "USD"}
    )
    unknown = await metered.get("/v1/plans/gold")
    version_of_unknown = await metered.post("/v1/plans/gold/versions", json=TERMS_DEC)

    assert [(p["id"], p["currency"], p["versions"]) for p in listed] == [
        ("basic", "EUR", []),
        ("dollar", "USD", []),
    ]
    assert bad_currency.status_code == 422 and error_code(bad_currency) == "invalid_billing_input"
    assert duplicate.status_code == 409 and error_code(duplicate) == "already_exists"
    assert unknown.status_code == 404 and error_code(unknown) == "plan_not_found"
    assert version_of_unknown.status_code == 404
    assert error_code(version_of_unknown) == "plan_not_found"
    assert len((await metered.get("/v1/plans")).json()) == 2
