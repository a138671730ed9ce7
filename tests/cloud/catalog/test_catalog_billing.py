"""`catalog load`: an account's billing fields (the buyer on its invoices) declared in the file,
checked like the API's, applied on creation; a changed one is an update; a bad one writes nothing.
"""

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from cloud.catalog.loader import load_catalog, parse_catalog
from cloud.catalog.models import Account
from cloud.db import Database
from cloud.errors import AlreadyExists, InvalidBillingInput
from cloud.schema import migrate

ACCOUNT = """
[[accounts]]
id = "nordlicht"
name = "Nordlicht"
kind = "company"
currency = "EUR"
time_zone = "Europe/Berlin"
billing_name = "Nordlicht Facility GmbH"
country = "DE"
vat_id = "DE 123 456 788"
customer_number = "K-20042"
payment_terms_days = 30
locale = "de_DE"

[accounts.address]
lines = ["Hafenstraße 40", "Halle B"]
postcode = "28217"
city = "Bremen"
country = "DE"
"""


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A migrated database without the app."""
    async with Database(db_url) as database:
        await migrate(database.engine)
        yield database


async def load(db: Database, text: str) -> str:
    """Apply a catalog text in one write transaction; the report's summary."""
    async with db.transaction(write=True) as session:
        report = await load_catalog(session=session, catalog=parse_catalog(text))
    return report.summary()


async def stored(db: Database) -> Account | None:
    async with db.transaction() as session:
        return await session.get(Account, "nordlicht")


async def test_billing_fields_are_stored_checked_and_loading_again_changes_nothing(
    db: Database,
) -> None:
    assert "accounts: 1 created" in await load(db, ACCOUNT)
    account = await stored(db)
    assert account is not None
    assert account.billing_name == "Nordlicht Facility GmbH"
    assert account.address == {
        "lines": ["Hafenstraße 40", "Halle B"],
        "postcode": "28217",
        "city": "Bremen",
        "country": "DE",
    }
    assert (account.country, account.vat_id) == ("DE", "DE123456788")  # compacted by the check
    assert (account.customer_number, account.payment_terms_days) == ("K-20042", 30)
    assert account.locale == "de_DE"

    compact = ACCOUNT.replace('"DE 123 456 788"', '"DE123456788"')
    assert "accounts: 0 created, 0 updated, 1 unchanged" in await load(db, compact)


async def test_an_account_without_billing_fields_keeps_the_defaults(db: Database) -> None:
    plain = "\n".join(ACCOUNT.splitlines()[:7])  # id .. time_zone
    await load(db, plain)
    account = await stored(db)
    assert account is not None
    assert (account.billing_name, account.address, account.vat_id) == (None, None, None)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('"DE 123 456 788"', '"DE123456789"', "invalid VAT id 'DE123456789'"),
        ("payment_terms_days = 30", "payment_terms_days = 400", "payment_terms_days 400"),
        ('locale = "de_DE"', 'locale = "xx_YY_ZZ"', "invalid locale"),
        (
            'city = "Bremen"',
            'city = "Bremen"\nstate = "HB"',
            "account nordlicht: address.state: Extra inputs",
        ),
        ('country = "DE"\nvat_id', 'country = "Germany"\nvat_id', "country"),
    ],
    ids=["vat-checksum", "terms", "locale", "address-field", "country"],
)
async def test_a_bad_billing_field_is_refused_and_nothing_is_written(
    db: Database, old: str, new: str, message: str
) -> None:
    bad = ACCOUNT.replace(old, new, 1)
    assert bad != ACCOUNT
    with pytest.raises(InvalidBillingInput, match=message):
        await load(db, bad)
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Account)) == 0


async def test_a_changed_billing_field_is_an_update_refused_without_a_guard(db: Database) -> None:
    await load(db, ACCOUNT)
    with pytest.raises(AlreadyExists, match="customer_number: 'K-20042' -> 'K-20043'"):
        await load(db, ACCOUNT.replace("K-20042", "K-20043"))
    account = await stored(db)
    assert account is not None and account.customer_number == "K-20042"
