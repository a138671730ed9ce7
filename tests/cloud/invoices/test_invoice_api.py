"""The invoice API (over ASGI) and the `tollgate-cloud invoice` commands, on both backends."""

import asyncio
import io
from datetime import timedelta

import httpx
import pytest

from cloud.auth.service import create_api_key
from cloud.cli import main
from cloud.db import Database
from cloud.errors import InvalidSettings
from cloud.invoices.cli import ProgressBar, table
from cloud.schema import migrate
from cloud.settings import Settings
from tests.cloud.invoices.test_runs import Billing, billing, reading, utc

__all__ = ["billing"]


async def admin_headers(billing: Billing) -> dict[str, str]:
    """The Authorization header of a new admin key."""
    async with billing.db.transaction(write=True) as session:
        issued = await create_api_key(session=session, name="test admin")
    return {"Authorization": f"Bearer {issued.secret}"}


async def metered_account(billing: Billing, account_id: str = "home-a") -> None:
    """An account on plan home with 3 kWh in October: 10.00 + 3 x 0.20 = 10.60."""
    await billing.account(account_id)
    await billing.device(f"m-{account_id}", "meter", account_id)
    await billing.send(reading(f"m-{account_id}", utc(2026, 10, 3), "3"))


async def test_every_route_needs_an_admin_key(client: httpx.AsyncClient) -> None:
    for method, path in (
        ("POST", "/v1/invoice-runs"),
        ("GET", "/v1/invoices"),
        ("GET", "/v1/invoices/1"),
        ("POST", "/v1/invoices/1/finalize"),
        ("DELETE", "/v1/invoices/1"),
    ):
        response = await client.request(method, path, json={"period": "2026-10"})
        assert response.status_code == 401, (method, path)
        assert response.json()["error"]["code"] == "unauthorized"


async def test_run_list_show_finalize_and_discard(
    client: httpx.AsyncClient, billing: Billing
) -> None:
    headers = await admin_headers(billing)
    await metered_account(billing, "home-a")
    await metered_account(billing, "home-b")
    await billing.account("no-plan", plan=None)

    run = await client.post("/v1/invoice-runs", json={"period": "2026-10"}, headers=headers)

    assert run.status_code == 200
    report = run.json()
    assert (report["drafted"], report["skipped"], report["unchanged_finalized"]) == (2, 1, 0)
    assert {r["account_id"]: r["total"] for r in report["accounts"]} == {
        "home-a": "10.60",
        "home-b": "10.60",
        "no-plan": None,
    }
    listed = await client.get("/v1/invoices", params={"status": "draft"}, headers=headers)
    assert [(i["account_id"], i["number"]) for i in listed.json()] == [
        ("home-a", None),
        ("home-b", None),
    ]
    invoice_id = listed.json()[0]["id"]
    shown = (await client.get(f"/v1/invoices/{invoice_id}", headers=headers)).json()
    assert shown["total"] == "10.60"
    assert [(ln["n"], ln["kind"], ln["amount"]) for ln in shown["lines"]] == [
        (1, "base_fee", "10.00"),
        (2, "usage", "0.00"),
        (3, "usage", "0.60"),
    ]

    # the draft is in its grace period: finalizing it now needs force (its refusal:
    # test_credit_notes.test_finalizing_in_the_grace_period_needs_force)
    force = {"force": "true"}
    final = await client.post(f"/v1/invoices/{invoice_id}/finalize", params=force, headers=headers)
    again = await client.post(f"/v1/invoices/{invoice_id}/finalize", params=force, headers=headers)
    delete_final = await client.delete(f"/v1/invoices/{invoice_id}", headers=headers)
    other = listed.json()[1]["id"]
    delete_draft = await client.delete(f"/v1/invoices/{other}", headers=headers)

    assert (final.status_code, final.json()["number"], final.json()["status"]) == (
        200,
        "INV-000001",
        "finalized",
    )
    assert (again.status_code, again.json()["error"]["code"]) == (409, "invoice_finalized")
    assert (delete_final.status_code, delete_final.json()["error"]["code"]) == (
        409,
        "invoice_finalized",
    )
    assert delete_draft.status_code == 204
    gone = await client.get(f"/v1/invoices/{other}", headers=headers)
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "invoice_not_found")
    finalized = await client.get(
        "/v1/invoices", params={"status": "finalized", "period": "2026-10"}, headers=headers
    )
    assert [i["id"] for i in finalized.json()] == [invoice_id]


async def test_bad_run_requests_are_refused(client: httpx.AsyncClient, billing: Billing) -> None:
    headers = await admin_headers(billing)
    await metered_account(billing)

    bad_period = await client.post("/v1/invoice-runs", json={"period": "2026-13"}, headers=headers)
    unknown = await client.post(
        "/v1/invoice-runs", json={"period": "2026-10", "account_id": "nobody"}, headers=headers
    )
    bad_status = await client.get("/v1/invoices", params={"status": "paid"}, headers=headers)

    assert bad_period.status_code == 422
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "account_not_found")
    assert bad_status.status_code == 422
    listed = await client.get("/v1/invoices", headers=headers)
    assert listed.json() == []  # nothing was written


async def _seed(url: str) -> None:
    async with Database(url) as db:
        await migrate(db.engine)
        await metered_account(await Billing(db).setup(), "home-c")


def test_cli_run_finalize_list_show(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(_seed(db_url))
    db = ["--db", db_url]

    assert main(["invoice", "run", "--period", "2026-10", "--grace", "36500d", *db]) == 0
    run = capsys.readouterr()
    assert "home-c   drafted  1" in run.out
    assert "10.60" in run.out
    assert "1 drafted, 0 updated" in run.out
    assert run.err.splitlines() == ["accounts: 0% (0/1)", "accounts: 100% (1/1)"]

    assert main(["invoice", "list", *db]) == 0
    assert "home-c   2026-10  draft" in capsys.readouterr().out
    assert main(["invoice", "finalize", "--id", "1", "--force", *db]) == 0  # in its grace
    assert "finalized as INV-000001" in capsys.readouterr().out
    assert main(["invoice", "show", "1", *db]) == 0
    shown = capsys.readouterr().out
    assert "invoice 1 INV-000001" in shown
    assert "total" in shown and "10.60 EUR" in shown

    assert main(["invoice", "finalize", "--id", "1", "--force", *db]) == 2
    assert "is finalized and cannot change" in capsys.readouterr().err
    assert main(["invoice", "finalize", "--due", "--now", "2026-12-01T00:00:00+00:00", *db]) == 0
    assert "0 invoice(s) finalized" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--period", "2026-13"], "2026-13"),
        (["--period", "2026-10", "--grace", "soon"], "--grace 'soon'"),
        (["--period", "2026-10", "--now", "2026-12-01T00:00"], "needs an offset"),
        (["--period", "2026-10", "--account", "nobody"], "nobody"),
    ],
)
def test_cli_refuses_bad_runs(
    db_url: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    asyncio.run(_seed(db_url))

    assert main(["invoice", "run", *argv, "--db", db_url]) == 2

    err = capsys.readouterr().err
    assert err.startswith("tollgate-cloud: error:") and message in err
    assert len(err.strip().splitlines()) == 1


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_progress_bar_redraws_in_place_on_a_terminal() -> None:
    stream = Terminal()
    bar = ProgressBar(stream, label="accounts")

    for done in (0, 5, 10):
        bar(done, 10)

    frames = stream.getvalue().split("\r")[1:]
    assert frames[1] == "accounts [" + "#" * 15 + "-" * 15 + "]  50% 5/10"
    assert frames[2].endswith("100% 10/10\n")


def test_progress_bar_prints_a_line_per_tenth_otherwise() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, label="accounts")

    for done in range(0, 101, 5):
        bar(done, 100)

    assert len(stream.getvalue().splitlines()) == 11  # 0%, 10%, ..., 100%


def test_table_pads_columns() -> None:
    assert table(["a", "bb"], [["xyz", "1"]]) == "a    bb\n---  --\nxyz  1"


def test_invoice_grace_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOLLGATE_INVOICE_GRACE", raising=False)
    assert Settings.load(db="sqlite:///x.sqlite").invoice_grace == timedelta(days=5)
    monkeypatch.setenv("TOLLGATE_INVOICE_GRACE", "36h")
    assert Settings.load(db="sqlite:///x.sqlite").invoice_grace == timedelta(hours=36)
    monkeypatch.setenv("TOLLGATE_INVOICE_GRACE", "5 days")
    with pytest.raises(InvalidSettings, match="TOLLGATE_INVOICE_GRACE"):
        Settings.load(db="sqlite:///x.sqlite")
    with pytest.raises(InvalidSettings, match="negative"):
        Settings(invoice_grace=timedelta(seconds=-1))
