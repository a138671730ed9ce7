"""`catalog load`: a TOML file applied idempotently in one transaction; a differing object is an
error naming it, and a failing file changes nothing."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cloud.catalog.loader import load_catalog, parse_catalog
from cloud.catalog.models import (
    Account,
    Binding,
    Device,
    DeviceProfile,
    Metric,
    Plan,
    PlanVersionRow,
)
from cloud.cli import main
from cloud.db import Database
from cloud.errors import AlreadyExists, BindingOverlap, InvalidBillingInput, PlanNotFound
from cloud.gateways.models import Site
from cloud.schema import migrate
from tests.cloud.test_cli import plain_url

CATALOG = """
[[sites]]
id = "block-a"
name = "Block A"

[[profiles]]
id = "tv"
name = "Television"
start_on = ["power_on"]
end_on = ["power_off", "standby"]
timeout_seconds = 14400

[[metrics]]
id = "tv-hours"
name = "TV hours"
source = "sessions"
aggregation = "sum"
field = "duration"
profiles = ["tv"]

[[plans]]
id = "basic"
name = "Basic"
currency = "EUR"

[[plans.versions]]
effective_from = 2026-11-01T00:00:00+01:00
base_fee = "9.90"
[[plans.versions.charges]]
metric = "tv-hours"
model = "graduated"
included_units = "10"
tiers = [{ up_to = "100", unit_price = "0.50" }, { unit_price = "0.40" }]

[[plans.versions]]
effective_from = 2027-01-01T00:00:00+01:00
base_fee = "11"

[[accounts]]
id = "smith"
name = "The Smiths"
kind = "household"
currency = "EUR"
time_zone = "Europe/Berlin"
plan_id = "basic"

[[accounts]]
id = "jones"
name = "The Joneses"
kind = "household"
currency = "EUR"
time_zone = "Europe/Berlin"
plan_id = "basic"
invoice_series = "J"

[[devices]]
id = "tv-1"
name = "Living room TV"
profile_id = "tv"
site_id = "block-a"

[[bindings]]
device_id = "tv-1"
account_id = "smith"
valid_from = 2026-11-01T00:00:00+01:00
valid_to = 2026-11-15T00:00:00+01:00

[[bindings]]
device_id = "tv-1"
account_id = "jones"
valid_from = 2026-11-15T00:00:00+01:00
"""
MODELS = (Site, DeviceProfile, Metric, Plan, PlanVersionRow, Account, Device, Binding)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A migrated database without the app."""
    async with Database(db_url) as database:
        await migrate(database.engine)
        yield database


async def counts(db: Database) -> dict[str, int]:
    """Rows per catalog table."""
    async with db.transaction() as session:
        return {
            model.__tablename__: await session.scalar(select(func.count()).select_from(model)) or 0
            for model in MODELS
        }


async def load(db: Database, text: str) -> str:
    """Apply a catalog text in one write transaction; the report's summary."""
    catalog = parse_catalog(text)
    async with db.transaction(write=True) as session:
        report = await load_catalog(session=session, catalog=catalog)
    return report.summary()


async def test_a_catalog_is_created_then_loading_it_again_changes_nothing(db: Database) -> None:
    first = await load(db, CATALOG)
    after_first = await counts(db)
    second = await load(db, CATALOG)

    assert first.splitlines() == [
        "sites: 1 created, 0 updated, 0 unchanged",
        "profiles: 1 created, 0 updated, 0 unchanged",
        "metrics: 1 created, 0 updated, 0 unchanged",
        "plans: 1 created, 0 updated, 0 unchanged",
        "plan versions: 2 created, 0 updated, 0 unchanged",
        "accounts: 2 created, 0 updated, 0 unchanged",
        "devices: 1 created, 0 updated, 0 unchanged",
        "bindings: 2 created, 0 updated, 0 unchanged",
    ]
    assert after_first == {
        "sites": 1,
        "device_profiles": 1,
        "metrics": 1,
        "plans": 1,
        "plan_versions": 2,
        "accounts": 2,
        "devices": 1,
        "bindings": 2,
    }
    assert "created" in second and all(" 0 created" in line for line in second.splitlines())
    assert await counts(db) == after_first


async def test_equal_values_written_differently_are_unchanged(db: Database) -> None:
    await load(db, CATALOG)
    # The same instants in UTC, the same amounts with other digits, lists in another order.
    same = (
        CATALOG.replace("2026-11-01T00:00:00+01:00", "2026-10-31T23:00:00Z")
        .replace('base_fee = "9.90"', 'base_fee = "9.9"')
        .replace('["power_off", "standby"]', '["standby", "power_off"]')
    )

    summary = await load(db, same)

    assert all(" 0 created" in line for line in summary.splitlines())


@pytest.mark.parametrize(
    ("old", "new", "error", "message"),
    [
        ('name = "The Smiths"', 'name = "Smith family"', AlreadyExists, "account smith"),
        ("timeout_seconds = 14400", "timeout_seconds = 600", AlreadyExists, "timeout_seconds"),
        ('base_fee = "11"', 'base_fee = "12"', AlreadyExists, "plan basic version from"),
        (
            'field = "duration"\nprofiles',
            'field = "duration"\nduration_unit = "minute"\nprofiles',
            AlreadyExists,
            "metric tv-hours",
        ),
        ("valid_to = 2026-11-15T00:00:00+01:00\n", "", AlreadyExists, "valid_to"),
    ],
    ids=["account-name", "profile-timeout", "plan-version-terms", "metric-unit", "binding-end"],
)
async def test_a_differing_object_is_an_error_naming_it_and_nothing_changes(
    db: Database, old: str, new: str, error: type[Exception], message: str
) -> None:
    await load(db, CATALOG)
    before = await counts(db)
    changed = CATALOG.replace(old, new, 1).replace(  # plus something new that must not stay
        "[[devices]]",
        '[[devices]]\nid = "tv-2"\nname = "Kitchen"\nprofile_id = "tv"\n\n[[devices]]',
    )
    assert changed != CATALOG

    with pytest.raises(error, match=message):
        await load(db, changed)

    assert await counts(db) == before
    async with db.transaction() as session:
        assert (await session.get(Account, "smith")).name == "The Smiths"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("[[profiles]]\nid = 'tv'\n", InvalidBillingInput, "profile tv: name: Field required"),
        (
            "[[plans]]\nid = 'p'\nname = 'P'\ncurrency = 'EUR'\n[[plans.versions]]\n"
            "effective_from = 2026-11-01T00:00:00Z\nbase_fee = 9.9\n",
            InvalidBillingInput,
            "a float is not exact",
        ),
        (
            "[[accounts]]\nid = 'a'\nname = 'A'\nkind = 'household'\ncurrency = 'EUR'\n"
            "time_zone = 'UTC'\nplan_id = 'gold'\n",
            PlanNotFound,
            "account a: no plan 'gold'",
        ),
        (
            "[[bindings]]\ndevice_id = 'x'\naccount_id = 'a'\nvalid_from = 2026-11-01T00:00:00\n",
            InvalidBillingInput,
            "valid_from must carry a UTC offset",
        ),
        ("[[gadgets]]\nid = 'x'\n", InvalidBillingInput, "gadgets"),
        ("profiles = [\n", InvalidBillingInput, "not a valid TOML catalog"),
        (
            "[[metrics]]\nid = 'm'\nname = 'M'\nsource = 'session'\naggregation = 'sum'\n",
            InvalidBillingInput,
            "catalog file: metric m: source: Input should be 'sessions' or 'events'",
        ),
        (
            "[[metrics]]\nid = 'm'\nname = 'M'\nsource = 'events'\naggregation = 'count'\n"
            "duration_unit = 'day'\n",
            InvalidBillingInput,
            "metric m: duration_unit: Input should be 'second', 'minute' or 'hour'",
        ),
        (
            "[[accounts]]\nid = 'a'\nname = 'A'\nkind = 'business'\ncurrency = 'EUR'\n"
            "time_zone = 'UTC'\n",
            InvalidBillingInput,
            "account a: kind: Input should be 'household' or 'company'",
        ),
        (
            "[[tax_rates]]\ncountry = 'DE'\ncategory = 'super'\nvalid_from = 2026-01-01\n"
            "rate = '19'\n",
            InvalidBillingInput,
            "tax rate 1: category: Input should be 'standard', 'reduced' or 'zero'",
        ),
    ],
    ids=[
        "missing-field",
        "float-amount",
        "unknown-plan",
        "naive-time",
        "unknown-kind",
        "bad-toml",
        "bad-source",
        "bad-duration-unit",
        "bad-account-kind",
        "bad-tax-category",
    ],
)
async def test_a_bad_file_is_refused_whole(
    db: Database, text: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await load(db, CATALOG + text)

    assert set((await counts(db)).values()) == {0}


async def test_an_overlapping_binding_in_the_file_is_refused(db: Database) -> None:
    overlapping = CATALOG + (
        "\n[[bindings]]\ndevice_id = 'tv-1'\naccount_id = 'smith'\n"
        "valid_from = 2026-12-01T00:00:00+01:00\n"
    )

    with pytest.raises(BindingOverlap, match="binding tv-1 from 2026-12-01"):
        await load(db, overlapping)

    assert set((await counts(db)).values()) == {0}


def test_catalog_load_from_the_command_line(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = plain_url(db_url)
    assert main(["migrate", "--db", url]) == 0
    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG)
    capsys.readouterr()

    assert main(["catalog", "load", str(path), "--db", url]) == 0
    assert "bindings: 2 created, 0 updated, 0 unchanged" in capsys.readouterr().out
    assert main(["catalog", "load", str(path), "--db", url]) == 0
    assert "bindings: 0 created, 0 updated, 2 unchanged" in capsys.readouterr().out

    path.write_text(CATALOG.replace('name = "The Smiths"', 'name = "Smith family"'))
    assert main(["catalog", "load", str(path), "--db", url]) == 0  # an update, through the CLI
    assert "accounts: 0 created, 1 updated, 1 unchanged" in capsys.readouterr().out

    path.write_text(CATALOG.replace('kind = "household"', 'kind = "company"', 1))
    assert main(["catalog", "load", str(path), "--db", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "account smith" in err and "kind" in err
