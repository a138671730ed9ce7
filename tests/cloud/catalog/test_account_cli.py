"""`tollgate-cloud account add | update` with the buyer's billing fields, against a real database
(both backends); a bad field is one clear line on stderr and writes nothing."""

import json
from typing import Any

import pytest

from cloud.cli import main
from tests.cloud.catalog.test_cli import fails, run
from tests.cloud.test_cli import plain_url

ADD = [
    "account",
    "add",
    "--id",
    "acme",
    "--name",
    "Acme",
    "--kind",
    "company",
    "--currency",
    "EUR",
    "--time-zone",
    "Europe/Berlin",
]
BILLING = [
    "--billing-name",
    "Acme GmbH",
    "--street",
    "Hauptstr. 1",
    "--street",
    "Hinterhaus",
    "--postcode",
    "10115",
    "--city",
    "Berlin",
    "--address-country",
    "DE",
    "--country",
    "DE",
    "--vat-id",
    "DE 136 695 976",
    "--customer-number",
    "C-1",
    "--payment-terms-days",
    "30",
    "--locale",
    "de_DE",
]


def accounts(capsys: pytest.CaptureFixture[str], url: str) -> list[dict[str, Any]]:
    """Every account as `catalog list accounts --json` prints it, without `created_at`."""
    code, out, err = run(capsys, url, "catalog", "list", "accounts", "--json")
    assert code == 0, err
    return [{k: v for k, v in a.items() if k != "created_at"} for a in json.loads(out)]


@pytest.fixture
def url(db_url: str) -> str:
    """A migrated database, as a user types its URL."""
    url = plain_url(db_url)
    assert main(["migrate", "--db", url]) == 0
    return url


def test_account_add_and_update_set_the_billing_fields(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, url, *ADD, *BILLING)[:2] == (0, "account acme added\n")
    (account,) = accounts(capsys, url)
    assert account == {
        "id": "acme",
        "name": "Acme",
        "kind": "company",
        "currency": "EUR",
        "time_zone": "Europe/Berlin",
        "plan_id": None,
        "invoice_series": "INV",
        "billing_name": "Acme GmbH",
        "address": {
            "lines": ["Hauptstr. 1", "Hinterhaus"],
            "postcode": "10115",
            "city": "Berlin",
            "country": "DE",
        },
        "country": "DE",
        "vat_id": "DE136695976",  # compacted
        "customer_number": "C-1",
        "payment_terms_days": 30,
        "locale": "de_DE",
    }

    update = ["account", "update", "--id", "acme", "--name", "Acme SA", "--country", "FR"]
    moved = ["--street", "1 rue de Rivoli", "--postcode", "75001", "--city", "Paris"]
    cleared = ["--address-country", "FR", "--clear", "vat_id", "--clear", "locale"]
    assert run(capsys, url, *update, *moved, *cleared)[:2] == (0, "account acme updated\n")
    (updated,) = accounts(capsys, url)
    assert updated == account | {
        "name": "Acme SA",
        "country": "FR",
        "address": {
            "lines": ["1 rue de Rivoli"],
            "postcode": "75001",
            "city": "Paris",
            "country": "FR",
        },
        "vat_id": None,
        "locale": None,
    }
    # a field not named is left as stored
    assert (
        run(capsys, url, "account", "update", "--id", "acme", "--payment-terms-days", "0")[0] == 0
    )
    (terms,) = accounts(capsys, url)
    assert terms == updated | {"payment_terms_days": 0}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--vat-id", "DE136695977"], "invalid VAT id 'DE136695977': The number's checksum"),
        (["--vat-id", "DE1"], "--vat-id: String should have at least 4 characters"),
        (["--payment-terms-days", "366"], "--payment-terms-days: Input should be less than or"),
        (["--country", "Germany"], "--country: String should match pattern"),
        (["--locale", "xx_YY"], "invalid locale 'xx_YY'"),
        (["--street", "Hauptstr. 1"], "an address needs --postcode, --city, --address-country"),
        (
            ["--street", "a", "--postcode", "1", "--city", "c", "--address-country", "de"],
            "--address-country: String should match pattern",
        ),
        (
            [*(["--street", "a"] * 5), "--postcode", "1", "--city", "c", "--address-country", "DE"],
            "--street: List should have at most 4 items",
        ),
        (["--billing-name", " "], "billing_name must be 1 to 200 characters"),
    ],
)
def test_a_bad_billing_field_is_refused_and_nothing_is_written(
    url: str, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    assert message in fails(capsys, url, *ADD, *options)
    assert accounts(capsys, url) == []  # not even the account
    assert run(capsys, url, *ADD)[0] == 0
    before = accounts(capsys, url)
    assert message in fails(capsys, url, "account", "update", "--id", "acme", *options)
    assert accounts(capsys, url) == before


def test_update_refuses_nothing_to_do_both_set_and_cleared_and_unknown_accounts(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, url, *ADD)[0] == 0
    update = ["account", "update", "--id", "acme"]
    assert "nothing to update" in fails(capsys, url, *update)
    both = fails(capsys, url, *update, "--locale", "de_DE", "--clear", "locale")
    assert "both set and cleared: locale" in both
    assert "no account 'nobody'" in fails(
        capsys, url, "account", "update", "--id", "nobody", "--name", "X"
    )
    assert "no plan 'gold'" in fails(capsys, url, *update, "--plan", "gold")
