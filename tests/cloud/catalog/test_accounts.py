"""Accounts over the API: create, get, list (paged), patch; every refusal leaves nothing behind."""

import httpx
import pytest

from tests.cloud.catalog.conftest import account_body, post_ok
from tests.cloud.conftest import error_code


async def test_create_get_and_list_accounts(api: httpx.AsyncClient) -> None:
    created = await post_ok(api, "/v1/accounts", account_body("smith"))
    await post_ok(
        api,
        "/v1/accounts",
        account_body(
            "acme",
            name="ACME",
            kind="company",
            currency="USD",
            time_zone="America/New_York",
            invoice_series="ACME-US",
        ),
    )

    fetched = (await api.get("/v1/accounts/smith")).json()
    listed = (await api.get("/v1/accounts")).json()

    assert created == fetched
    assert fetched["invoice_series"] == "INV" and fetched["plan_id"] is None
    assert fetched["kind"] == "household" and fetched["time_zone"] == "Europe/Berlin"
    assert [item["id"] for item in listed["items"]] == ["acme", "smith"]
    assert listed["next_after"] is None


async def test_accounts_are_listed_in_pages(api: httpx.AsyncClient) -> None:
    for account_id in ("a1", "a2", "a3"):
        await post_ok(api, "/v1/accounts", account_body(account_id))

    first = (await api.get("/v1/accounts", params={"limit": 2})).json()
    second = (
        await api.get("/v1/accounts", params={"limit": 2, "after": first["next_after"]})
    ).json()

    assert [item["id"] for item in first["items"]] == ["a1", "a2"]
    assert first["next_after"] == "a2"
    assert [item["id"] for item in second["items"]] == ["a3"]
    assert second["next_after"] is None
    bad = await api.get("/v1/accounts", params={"limit": 0})
    assert bad.status_code == 422 and error_code(bad) == "invalid_parameters"


async def test_patch_renames_and_changes_the_plan(api: httpx.AsyncClient) -> None:
    await post_ok(api, "/v1/plans", {"id": "basic", "name": "Basic", "currency": "EUR"})
    await post_ok(api, "/v1/accounts", account_body("smith"))

    renamed = await api.patch("/v1/accounts/smith", json={"name": "Smith family"})
    on_plan = await api.patch("/v1/accounts/smith", json={"plan_id": "basic"})
    name_only = await api.patch("/v1/accounts/smith", json={"name": "Smiths"})
    off_plan = await api.patch("/v1/accounts/smith", json={"plan_id": None})

    assert renamed.json()["name"] == "Smith family"
    assert on_plan.json()["plan_id"] == "basic"
    assert name_only.json()["plan_id"] == "basic"  # an absent field is left alone
    assert off_plan.json()["plan_id"] is None and off_plan.json()["name"] == "Smiths"


async def test_an_account_can_be_created_on_a_plan(api: httpx.AsyncClient) -> None:
    await post_ok(api, "/v1/plans", {"id": "basic", "name": "Basic", "currency": "EUR"})

    created = await post_ok(api, "/v1/accounts", account_body("smith", plan_id="basic"))

    assert created["plan_id"] == "basic"


@pytest.mark.parametrize(
    ("changes", "status", "code", "message"),
    [
        ({"currency": "XYZ"}, 422, "invalid_billing_input", "unknown currency 'XYZ'"),
        ({"currency": "eur"}, 422, "invalid_billing_input", "unknown currency"),
        ({"time_zone": "Europe/Atlantis"}, 422, "invalid_billing_input", "Europe/Atlantis"),
        ({"kind": "club"}, 422, "invalid_parameters", "kind"),
        ({"id": "Smith"}, 422, "invalid_parameters", "id"),
        ({"id": "-smith"}, 422, "invalid_parameters", "id"),
        ({"invoice_series": "inv"}, 422, "invalid_parameters", "invoice_series"),
        ({"name": ""}, 422, "invalid_parameters", "name"),
        ({"colour": "red"}, 422, "invalid_parameters", "colour"),
        ({"plan_id": "gold"}, 404, "plan_not_found", "gold"),
        ({"plan_id": "dollar"}, 422, "invalid_billing_input", "bills in USD"),
    ],
    ids=[
        "unknown-currency",
        "lowercase-currency",
        "unknown-time-zone",
        "bad-kind",
        "uppercase-id",
        "id-starting-with-dash",
        "lowercase-series",
        "empty-name",
        "unknown-field",
        "unknown-plan",
        "plan-in-another-currency",
    ],
)
async def test_a_bad_account_is_refused_and_not_stored(
    api: httpx.AsyncClient, changes: dict[str, object], status: int, code: str, message: str
) -> None:
    await post_ok(api, "/v1/plans", {"id": "dollar", "name": "Dollar", "currency": "USD"})

    response = await api.post("/v1/accounts", json=account_body("smith", **changes))

    assert response.status_code == status, response.text
    assert error_code(response) == code
    assert message in response.json()["error"]["message"]
    assert (await api.get("/v1/accounts")).json()["items"] == []


async def test_a_duplicate_account_is_refused_and_the_first_kept(api: httpx.AsyncClient) -> None:
    await post_ok(api, "/v1/accounts", account_body("smith"))

    response = await api.post("/v1/accounts", json=account_body("smith", name="Impostor"))

    assert response.status_code == 409 and error_code(response) == "already_exists"
    assert (await api.get("/v1/accounts/smith")).json()["name"] == "The Smiths"


async def test_patch_refusals_change_nothing(api: httpx.AsyncClient) -> None:
    await post_ok(api, "/v1/plans", {"id": "dollar", "name": "Dollar", "currency": "USD"})
    await post_ok(api, "/v1/accounts", account_body("smith"))

    wrong_currency = await api.patch(
        "/v1/accounts/smith", json={"name": "New", "plan_id": "dollar"}
    )
    unknown_plan = await api.patch("/v1/accounts/smith", json={"plan_id": "gold"})
    unknown_account = await api.patch("/v1/accounts/jones", json={"name": "Jones"})

    assert wrong_currency.status_code == 422
    assert error_code(wrong_currency) == "invalid_billing_input"
    assert unknown_plan.status_code == 404 and error_code(unknown_plan) == "plan_not_found"
    assert unknown_account.status_code == 404
    assert error_code(unknown_account) == "account_not_found"
    stored = (await api.get("/v1/accounts/smith")).json()
    assert stored["name"] == "The Smiths" and stored["plan_id"] is None


async def test_an_unknown_account_is_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/accounts/nobody")

    assert response.status_code == 404 and error_code(response) == "account_not_found"
