"""Block-priced tiers through the real API on SQLite and PostgreSQL: a plan version posted over
HTTP, an invoice run over HTTP, the line amount by hand, and verify-invoice re-rating it.

The scenario is `test_evidence`'s (water 130 l in November 2026, stream 3.5 h with 1 h
included, base fee 10.00); plan `basic` v2 from 2026-11-01 (Berlin) prices water in blocks of
50 l: (0, 100] at 0.40 a block, above at 0.30 a block. 130 l are ceil(130 / 50) = 3 blocks:

    graduated  2 blocks x 0.40 + 1 block x 0.30   = 0.80 + 0.30 = 1.10   total 12.35
    volume     150 l in blocks > 100: 3 x 0.30                  = 0.90   total 12.15

(total = 10.00 base + 2.5 h x 0.50 = 1.25 + water)
"""

from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cloud.db import Database
from cloud.invoices.verify import verify_invoice
from tests.cloud.conftest import error_code
from tests.cloud.invoices.test_evidence import (
    Billed,
    fetch_documents,
    line_of,
    send_usage,
    set_up_catalog,
)

D = Decimal


def block_version(model: str, **water: Any) -> dict[str, Any]:
    """Plan `basic` v2: stream as in v1, water in blocks of 50 l (overridable)."""
    return {
        "effective_from": "2026-11-01T00:00:00+01:00",
        "base_fee": "10.00",
        "charges": [
            {"metric": "stream_hours", "model": "standard", "unit_price": "0.50",
             "included_units": "1"},
            {"metric": "water", "model": model, "block_size": "50",
             "tiers": [{"up_to": "100", "block_price": "0.40"}, {"block_price": "0.30"}],
             **water},
        ],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("model", "water", "total", "steps"),
    [
        ("graduated", "1.10", "12.35", [("2", "0.40"), ("1", "0.30")]),
        ("volume", "0.90", "12.15", [("3", "0.30")]),
    ],
)
async def test_block_tiers_bill_and_verify(
    app: FastAPI,
    client: httpx.AsyncClient,
    db: Database,
    model: str,
    water: str,
    total: str,
    steps: list[tuple[str, str]],
) -> None:
    secret = await set_up_catalog(db)
    headers = {"Authorization": f"Bearer {secret}"}
    posted = await client.post(
        "/v1/plans/basic/versions", json=block_version(model), headers=headers
    )
    assert posted.status_code == 201, posted.text
    assert posted.json()["terms"]["charges"][1]["block_size"] == "50"
    feed, batches = await send_usage(db)
    run = await client.post(
        "/v1/invoice-runs", json={"period": "2026-11", "account_id": "acme"}, headers=headers
    )
    assert run.status_code == 200, run.text
    (result,) = run.json()["accounts"]
    assert result["invoice_id"] is not None, result
    assert D(result["total"]) == D(total)

    billed = Billed(invoice_id=result["invoice_id"], api_key=secret, feed=feed, batches=batches)
    invoice, evidence = await fetch_documents(client, billed)
    line = line_of(invoice, "usage", "water")
    assert (D(line["quantity"]), D(line["amount"])) == (D(130), D(water))
    assert line["detail"]["block_size"] == "50" and line["detail"]["blocks"] == "3"
    assert [(s["blocks"], s["block_price"]) for s in line["detail"]["steps"]] == steps
    assert "blocks of 50, a started block billed whole" in line["description"]
    assert verify_invoice(invoice, evidence) == []


@pytest.mark.parametrize(
    ("water", "message"),
    [
        ({"block_size": "0"}, "greater than 0"),
        ({"block_size": "-50"}, "greater than 0"),
        ({"tiers": [{"up_to": "120", "block_price": "0.40"}, {"block_price": "0.30"}]},
         "up_to 120 is not a whole number of blocks of 50"),
        ({"tiers": [{"up_to": "100", "unit_price": "0.40"}, {"block_price": "0.30"}]},
         "tier 1: a charge with block_size prices tiers with block_price"),
        ({"block_size": None}, "tier 1: a charge without block_size prices tiers with unit_price"),
    ],
)  # fmt: skip
async def test_bad_block_terms_are_refused_and_nothing_is_written(
    app: FastAPI, client: httpx.AsyncClient, db: Database, water: dict[str, Any], message: str
) -> None:
    secret = await set_up_catalog(db)
    headers = {"Authorization": f"Bearer {secret}"}
    answer = await client.post(
        "/v1/plans/basic/versions", json=block_version("graduated", **water), headers=headers
    )
    assert answer.status_code == 422, answer.text
    assert error_code(answer) == "invalid_parameters"
    assert message in answer.text
    plan = await client.get("/v1/plans/basic", headers=headers)
    assert [v["version"] for v in plan.json()["versions"]] == [1]


async def test_block_size_on_a_package_charge_is_refused(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    secret = await set_up_catalog(db)
    headers = {"Authorization": f"Bearer {secret}"}
    water = {"package_size": "50", "package_price": "1", "tiers": []}
    answer = await client.post(
        "/v1/plans/basic/versions", json=block_version("package", **water), headers=headers
    )
    assert answer.status_code == 422, answer.text
    assert "a package charge takes no block_size" in answer.text
    plan = await client.get("/v1/plans/basic", headers=headers)
    assert [v["version"] for v in plan.json()["versions"]] == [1]
