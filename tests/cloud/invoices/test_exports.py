"""Invoice exports: JSON, CSV that parses back to the same amounts, and the printable HTML page.

Over the scenario of `test_evidence`: lines base fee 10.00, stream_hours 1.25, water 1.60,
total 12.85 EUR, account name with markup in it.
"""

import asyncio
import csv
import io
import re
from decimal import Decimal
from pathlib import Path

import httpx
from fastapi import FastAPI

from cloud.cli import main
from cloud.db import Database
from cloud.invoices.exports import CSV_COLUMNS
from cloud.invoices.finalization import finalize_invoice
from tests.cloud.conftest import error_code
from tests.cloud.invoices.test_evidence import ACCOUNT_NAME, NOW, billed_invoice


async def test_json_export_has_every_line_with_exact_decimals(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    billed = await billed_invoice(db)
    response = await client.get(
        f"/v1/invoices/{billed.invoice_id}/export?format=json", headers=billed.headers
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert (document["status"], document["number"], document["period"]) == (
        "draft",
        None,
        "2026-11",
    )
    assert document["time_zone"] == "Europe/Berlin"
    assert document["account"]["name"] == ACCOUNT_NAME
    # November in Berlin: 2026-11-01 00:00 CET = 10-31 23:00Z, to 11-30 23:00Z.
    assert document["period_start"] == "2026-10-31T23:00:00+00:00"
    assert document["period_end"] == "2026-11-30T23:00:00+00:00"
    assert [(line["kind"], line["metric"], line["amount"]) for line in document["lines"]] == [
        ("base_fee", None, "10.00"),
        ("usage", "stream_hours", "1.25"),
        ("usage", "water", "1.60"),
    ]
    assert document["total"] == "12.85"
    assert [Decimal(line["quantity"]) for line in document["lines"][1:]] == [Decimal("3.5"), 130]


async def test_csv_parses_back_to_the_same_amounts(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    billed = await billed_invoice(db)
    url = f"/v1/invoices/{billed.invoice_id}/export"
    as_json = (await client.get(f"{url}?format=json", headers=billed.headers)).json()
    response = await client.get(f"{url}?format=csv", headers=billed.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.content.count(b"\r\n") == 4  # header + 3 lines, RFC 4180 line ends
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8"), newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [row["amount"] for row in rows] == [line["amount"] for line in as_json["lines"]]
    assert sum(Decimal(row["amount"]) for row in rows) == Decimal(as_json["total"])
    assert {row["account"] for row in rows} == {"acme"}
    assert {(row["currency"], row["period"], row["invoice_number"]) for row in rows} == {
        ("EUR", "2026-11", "")  # a draft has no number yet
    }
    water = rows[2]
    assert (water["metric"], water["quantity"], water["billable"]) == ("water", "130", "130")
    assert water["part_start"] == "2026-10-31T23:00:00+00:00"
    assert water["corrects"] == ""


async def test_html_page_shows_lines_total_chart_and_escapes_the_account_name(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    billed = await billed_invoice(db)
    page = await client.get(f"/v1/invoices/{billed.invoice_id}.html", headers=billed.headers)
    same = await client.get(
        f"/v1/invoices/{billed.invoice_id}/export?format=html", headers=billed.headers
    )
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    html = page.text
    assert html == same.text
    assert "<script" not in html  # neither ours (no JavaScript) nor the account name's
    assert "Acme &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; Söhne" in html
    for n, amount in ((1, "€10.00"), (2, "€1.25"), (3, "€1.60")):  # en_GB
        assert f'<tr id="line-{n}">' in html
        assert f'<td class="num amount">{amount}</td>' in html
        link = f'href="/v1/invoices/{billed.invoice_id}/lines/{n}/evidence"'
        assert (link in html) is (n != 1)  # the base fee is not rated from events: no evidence
    assert '<td class="num" id="total">€12.85</td>' in html
    assert "1 Nov 2026 to 30 Nov 2026" in html  # the period in local dates
    assert '<td class="num">3.5 h</td><td class="num">2.5 h</td>' in html  # units
    assert 'class="watermark"' in html and "DRAFT" in html
    assert "@media print" in html and "size: A4" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # no CDN
    # One chart per usage line, one bar per local day of November.
    assert html.count("<svg") == 2
    chart = html.split('<figure id="chart-3">')[1].split("</figure>")[0]
    assert chart.count('<rect class="bar"') == 30
    assert "<title>2026-11-05: 60</title>" in chart
    assert "<title>2026-11-06: 70</title>" in chart
    # The x axis names days of the month, the caption the zone and the local dates.
    assert re.findall(r'<text class="day"[^>]*>(\d+)</text>', chart) == ["1", "8", "15", "22", "29"]
    assert "per local day (Europe/Berlin), 1 Nov 2026 to 30 Nov 2026" in chart


async def test_export_refuses_unknown_format_and_invoice(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    billed = await billed_invoice(db)
    bad = await client.get(
        f"/v1/invoices/{billed.invoice_id}/export?format=docx", headers=billed.headers
    )
    missing = await client.get("/v1/invoices/999999.html", headers=billed.headers)
    anonymous = await client.get(f"/v1/invoices/{billed.invoice_id}/export")
    assert (bad.status_code, error_code(bad)) == (422, "invalid_parameters")
    assert (missing.status_code, error_code(missing)) == (404, "invoice_not_found")
    assert anonymous.status_code == 401


async def test_cli_export_writes_each_format(
    app: FastAPI, db: Database, db_url: str, tmp_path: Path
) -> None:
    billed = await billed_invoice(db)
    written = {}
    for fmt in ("json", "csv", "html"):
        out = tmp_path / f"invoice.{fmt}"
        argv = ["invoice", "export", str(billed.invoice_id), "--format", fmt, "--out", str(out)]
        assert await asyncio.to_thread(main, [*argv, "--db", db_url]) == 0
        written[fmt] = out.read_bytes().decode("utf-8")
    assert '"total": "12.85"' in written["json"]
    assert written["csv"].startswith(",".join(CSV_COLUMNS) + "\r\n")
    assert '<td class="num" id="total">€12.85</td>' in written["html"]
    assert 'href="' not in written["html"]  # no public URL: no dead relative links in a file
    assert 'id="evidence-note"' in written["html"]
    bad_out = str(tmp_path / "x")
    bad = ["invoice", "export", str(billed.invoice_id), "--format", "docx", "--out", bad_out]
    assert await asyncio.to_thread(main, [*bad, "--db", db_url]) == 2
    assert not (tmp_path / "x").exists()


async def test_finalized_invoice_shows_its_number_and_no_watermark(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    billed = await billed_invoice(db)
    finalized = await finalize_invoice(db=db, invoice_id=billed.invoice_id, now=NOW, force=True)
    assert finalized.number == 1
    url = f"/v1/invoices/{billed.invoice_id}"
    html = (await client.get(f"{url}.html", headers=billed.headers)).text
    rows = (await client.get(f"{url}/export?format=csv", headers=billed.headers)).text
    document = (await client.get(f"{url}/export?format=json", headers=billed.headers)).json()
    assert "<h1>Invoice INV-000001</h1>" in html
    assert 'class="watermark"' not in html
    assert '<span class="status">finalized</span>' in html
    assert rows.splitlines()[1].startswith("INV-000001,acme,2026-11,1,base_fee,")
    assert (document["status"], document["printed_number"]) == ("finalized", "INV-000001")
    assert document["finalized_at"] == NOW.isoformat()
