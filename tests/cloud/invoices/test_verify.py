"""verify_invoice re-checks an invoice from its evidence alone, and names what was tampered with.

Evidence comes from the real API over the scenario of `test_evidence` (total 12.85 EUR); each
tampering test changes one thing in a copy and expects the matching problem. The CLI test runs
`tollgate-cloud verify-invoice` against a real uvicorn server.
"""

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from cloud.app import create_app
from cloud.cli import main
from cloud.db import Database
from cloud.invoices.finalization import finalize_invoice
from cloud.invoices.service import run_invoices
from cloud.invoices.verify import Problem, verify_invoice
from cloud.settings import Settings
from shared.events import EventKind
from shared.signing import public_key_pem
from tests.cloud.invoices.test_evidence import (
    GRACE,
    NOW,
    Billed,
    at,
    billed_invoice,
    fetch_documents,
    line_of,
    send_usage,
    set_up_catalog,
)
from tests.support.usage import usage
from tests.support.waiting import eventually, free_port

Documents = tuple[dict[str, Any], list[dict[str, Any]]]


async def documents(client: httpx.AsyncClient, db: Database) -> tuple[Billed, Documents]:
    """The scenario's invoice and evidence, fetched over the API."""
    billed = await billed_invoice(db)
    return billed, await fetch_documents(client, billed)


def evidence_of(docs: Documents, metric: str) -> dict[str, Any]:
    """The evidence document of the usage line of `metric`."""
    invoice, evidence = docs
    n = line_of(invoice, "usage", metric)["n"]
    (document,) = [doc for doc in evidence if doc["line"]["n"] == n]
    return document


def state_total(invoice: dict[str, Any], total: str) -> None:
    """Part of a consistent lie: the invoice states `total` as its net and gross totals (no VAT
    here: the account has no tax country, every line is "O" at 0 %), so only the deeper check
    that the lie is aimed at can catch it."""
    invoice["total"] = total
    if "gross_total" in invoice:
        invoice["gross_total"] = total
    totals = invoice.get("totals")
    if isinstance(totals, dict):
        assert totals["tax"] == "0.00"
        totals.update(net=total, gross=total, due=total)


def whats(problems: list[Problem]) -> list[tuple[int | None, str]]:
    """(line, what) of each problem, without the batch names."""
    return [(p.line, p.what.split(": ")[-1]) for p in problems]


async def test_real_evidence_verifies(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    billed, (invoice, evidence) = await documents(client, db)
    assert len(evidence) == 3  # base fee, stream_hours, water
    assert verify_invoice(invoice, evidence) == []
    # The invoice as GET /v1/invoices/{id} gives it (other time and number spellings) works too.
    shown = await client.get(f"/v1/invoices/{billed.invoice_id}", headers=billed.headers)
    assert verify_invoice(shown.json(), evidence) == []


async def test_altered_event_quantity_breaks_the_chain_and_the_amount(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    _, docs = await documents(client, db)
    tampered = copy.deepcopy(docs)
    water = evidence_of(tampered, "water")
    # meter-1's 60 l become 6 l everywhere they appear (billed events and batch 1).
    for event in [*water["events"], *water["batches"][0]["events"]]:
        if event["quantity"] == "60":
            event["quantity"] = "6"
    problems = verify_invoice(*tampered)
    n = water["line"]["n"]
    assert whats(problems) == [
        (n, "chain recomputes"),
        (n, "all 2 billed events are signed batch events, unchanged"),
        (n, "quantity and amount recompute from the evidence"),
    ]
    assert "hashes to" in problems[0].detail
    # 6 + 70 = 76 l: 0.76 instead of 1.60
    assert "quantity 76 (stored 130)" in problems[2].detail
    assert "amount 0.76 (stored 1.60)" in problems[2].detail


async def test_altered_signature_fails(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    _, docs = await documents(client, db)
    tampered = copy.deepcopy(docs)
    stream = evidence_of(tampered, "stream_hours")
    batch = stream["batches"][1]
    signature = batch["signature"]
    batch["signature"] = ("B" if signature[0] == "A" else "A") + signature[1:]
    problems = verify_invoice(*tampered)
    n = stream["line"]["n"]
    # The batch fails, so its billed events are no longer backed by a verified batch, and the
    # sessions made of them no longer recompute from signed events.
    assert whats(problems) == [
        (n, "signature verifies"),
        (n, "all 4 billed events are signed batch events, unchanged"),
        (n, "each session recomputes from the signed events under its profile's rules"),
    ]
    assert problems[0].what.startswith("batch gw-billing 5..7")


async def test_event_removed_from_a_batch_fails(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    _, docs = await documents(client, db)
    tampered = copy.deepcopy(docs)
    water = evidence_of(tampered, "water")
    del water["batches"][0]["events"][3]  # the stray event: not billed, still signed over
    problems = verify_invoice(*tampered)
    assert whats(problems)[0] == (water["line"]["n"], "chain recomputes")
    assert "seq" in problems[0].detail


async def test_altered_line_amount_fails(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    _, docs = await documents(client, db)
    invoice, evidence = copy.deepcopy(docs)
    # A consistent lie: 1.60 -> 0.60 in the invoice, the evidence line and the total.
    line = line_of(invoice, "usage", "water")
    line["amount"] = "0.60"
    evidence_of((invoice, evidence), "water")["line"]["amount"] = "0.60"
    state_total(invoice, "11.85")
    problems = verify_invoice(invoice, evidence)
    assert whats(problems) == [(line["n"], "quantity and amount recompute from the evidence")]
    assert "amount 1.60 (stored 0.60)" in problems[0].detail


async def test_stretched_session_fails(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    _, docs = await documents(client, db)
    invoice, evidence = copy.deepcopy(docs)
    stream = evidence_of((invoice, evidence), "stream_hours")
    # A consistent lie: the 1 h session "lasted" 2 h, so 4.5 h, 3.5 billable, 1.75 EUR.
    session = stream["sessions"][1]
    session["ended_at"] = session["piece_end"] = "2026-11-10T22:00:00+00:00"
    for line in (stream["line"], line_of(invoice, "usage", "stream_hours")):
        line.update(quantity="4.5", billable="3.5", amount="1.75")
    state_total(invoice, "13.35")
    problems = verify_invoice(invoice, evidence)
    assert whats(problems) == [
        (
            stream["line"]["n"],
            "each session recomputes from the signed events under its profile's rules",
        )
    ]
    assert problems[0].detail == (
        f"session {session['id']}: ended_at 2026-11-10T22:00:00+00:00 "
        "(recomputed 2026-11-10T21:00:00+00:00)"
    )


async def test_altered_total_fails(app: FastAPI, client: httpx.AsyncClient, db: Database) -> None:
    _, docs = await documents(client, db)
    invoice, evidence = copy.deepcopy(docs)
    invoice["total"] = "12.86"
    problems = verify_invoice(invoice, evidence)
    assert whats(problems) == [(None, "total equals the sum of the line amounts")]
    assert problems[0].detail == "total 12.86, lines sum to 12.85"


async def test_evidence_event_in_no_batch_fails(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    _, docs = await documents(client, db)
    tampered = copy.deepcopy(docs)
    water = evidence_of(tampered, "water")
    del water["batches"][1]  # the batch holding the 70 l event
    problems = verify_invoice(*tampered)
    assert whats(problems) == [
        (water["line"]["n"], "all 2 billed events are signed batch events, unchanged")
    ]
    assert "gw-billing/5" in problems[0].detail


async def test_pinned_key_of_another_gateway_fails(
    app: FastAPI, client: httpx.AsyncClient, db: Database, gateway_key: Ed25519PrivateKey
) -> None:
    _, docs = await documents(client, db)
    other = public_key_pem(gateway_key.public_key())  # a real key, not this gateway's
    problems = verify_invoice(*docs, trusted_keys={"gw-billing": other})
    assert {p.what.split(": ")[-1] for p in problems} >= {"signature verifies"}


@contextlib.asynccontextmanager
async def serving(db_url: str) -> AsyncIterator[str]:
    """A real collector (uvicorn) on a free port over the test's database; its base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(Settings(db_url=db_url)), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started, what="uvicorn to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def cli(*argv: str) -> int:
    """`tollgate-cloud ARGV` in a thread (it makes blocking HTTP calls); its exit status."""

    def run() -> int:
        try:
            return main(list(argv))
        except SystemExit as exc:
            return int(exc.code or 0)

    return await asyncio.to_thread(run)


async def test_cli_verifies_against_a_real_server_and_fails_on_a_tampered_copy(
    app: FastAPI, client: httpx.AsyncClient, db: Database, db_url: str, tmp_path: Path, capsys: Any
) -> None:
    billed = await billed_invoice(db)
    key_file = tmp_path / "admin.key"
    key_file.write_text(billed.api_key + "\n")
    saved = tmp_path / "evidence"
    invoice_id = str(billed.invoice_id)
    async with serving(db_url) as url:
        source = ("--url", url, "--api-key-file", str(key_file))
        assert await cli("verify-invoice", invoice_id, *source) == 0
        assert await cli("invoice", "evidence", invoice_id, "--out", str(saved), *source) == 0
        unknown = await cli("verify-invoice", "999999", *source)
    out = capsys.readouterr()
    assert "✓ invoice: total equals the sum of the line amounts" in out.out
    assert "✗" not in out.out.split("invoice 999999")[0]
    assert unknown == 2 and "invoice_not_found" not in out.err  # one readable line instead
    assert "no invoice 999999" in out.err

    assert await cli("verify-invoice", invoice_id, "--from-dir", str(saved)) == 0
    right, wrong = tmp_path / "right.pem", tmp_path / "wrong.pem"
    right.write_text(public_key_pem(billed.feed.key.public_key()))
    wrong.write_text(public_key_pem(Ed25519PrivateKey.generate().public_key()))
    offline = ("verify-invoice", invoice_id, "--from-dir", str(saved))
    assert await cli(*offline, "--trust-key", f"gw-billing={right}") == 0
    assert await cli(*offline, "--trust-key", f"gw-billing={wrong}") == 1
    assert await cli(*offline, "--trust-key", "gw-billing") == 2  # not GATEWAY=FILE
    line_file = sorted(saved.glob("line-*.json"))[-1]
    document = orjson.loads(line_file.read_bytes())
    document["line"]["amount"] = "0.01"
    line_file.write_bytes(orjson.dumps(document))
    capsys.readouterr()
    assert await cli("verify-invoice", invoice_id, "--from-dir", str(saved)) == 1
    assert "✗ line" in capsys.readouterr().out


async def test_cli_refuses_unreachable_server_and_missing_files(tmp_path: Path) -> None:
    key_file = tmp_path / "admin.key"
    key_file.write_text("tg_whatever")
    url = f"http://127.0.0.1:{free_port()}"
    assert await cli("verify-invoice", "1", "--url", url, "--api-key-file", str(key_file)) == 2
    assert await cli("verify-invoice", "1", "--from-dir", str(tmp_path / "nothing")) == 2
    assert await cli("verify-invoice", "1", "--url", url) == 2  # no key file


async def test_adjustment_for_a_late_event_after_finalization_verifies(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    # November is finalized at 12.85; a late 10 l for 11-20 arrives; the December run adds an
    # adjustment naming November's water line: 140 l = 1.00 + 40 x 0.02 = 1.80, so +0.20.
    # Late means received after the invoice was computed: the run uses the real clock here.
    computed = datetime.now(UTC)
    billed = await billed_invoice(db, now=computed)
    november = await finalize_invoice(db=db, invoice_id=billed.invoice_id, now=computed, force=True)
    await billed.feed.send(
        db,
        [
            usage("meter-1", "water", at("11-20 10:00"), kind=EventKind.MEASUREMENT,
                  quantity="10", unit="l"),
        ],
    )  # fmt: skip
    later = max(computed, NOW) + timedelta(days=31)
    report = await run_invoices(db=db, period="2026-12", now=later, grace=GRACE, account_id="acme")
    december = report.accounts[0].invoice_id
    assert december is not None
    docs = await fetch_documents(client, Billed(december, billed.api_key, billed.feed, []))
    invoice, evidence = docs
    (adjustment,) = [line for line in invoice["lines"] if line["kind"] == "adjustment"]
    assert adjustment["amount"] == "0.20"
    assert (adjustment["corrects_invoice_id"], adjustment["corrects_line"]) == (november.id, 3)
    document = evidence_of_line(docs, adjustment["n"])
    assert document["corrects"]["number"] == november.number
    assert document["corrects"]["line"]["amount"] == "1.60"
    assert len(document["line_events"]) == 3  # 60 + 70 + the late 10
    assert verify_invoice(invoice, evidence) == []

    # The adjustment claiming more than new minus previous is caught.
    adjustment["amount"] = "0.30"
    document["line"]["amount"] = "0.30"
    state_total(invoice, str(Decimal(invoice["total"]) + Decimal("0.10")))
    assert whats(verify_invoice(invoice, evidence)) == [
        (adjustment["n"], "adjustment is the new amount minus the amount billed before")
    ]


def evidence_of_line(docs: Documents, n: int) -> dict[str, Any]:
    """The evidence document of line `n`."""
    (document,) = [doc for doc in docs[1] if doc["line"]["n"] == n]
    return document


# --- sessions recomputed from the signed events -----------------------------------------------

AS_OF = at("11-30 00:00")  # inside November: the last session is still open, clipped here


async def session_documents(client: httpx.AsyncClient, db: Database) -> Documents:
    """The scenario plus cam-1 sessions of every kind, rated as of `AS_OF`.

    11-12 08:00 start, superseded by the 09:00 start (1 h), which stops at 09:30 (0.5 h);
    11-29 22:00 start, still open at AS_OF (2 h). stream_hours: 3.5 + 1 + 0.5 + 2 = 7 h,
    6 billable x 0.50 = 3.00; total 10.00 + 3.00 + 1.60 = 14.60.
    """
    secret = await set_up_catalog(db)
    feed, batches = await send_usage(db)
    await feed.send(
        db,
        [
            usage("cam-1", "stream_start", at("11-12 08:00"), kind=EventKind.ACTIVATION),
            usage("cam-1", "stream_start", at("11-12 09:00"), kind=EventKind.ACTIVATION),
            usage("cam-1", "stream_stop", at("11-12 09:30"), kind=EventKind.DEACTIVATION),
            usage("cam-1", "stream_start", at("11-29 22:00"), kind=EventKind.ACTIVATION),
        ],
    )
    report = await run_invoices(db=db, period="2026-11", now=AS_OF, grace=GRACE, account_id="acme")
    (result,) = report.accounts
    assert result.invoice_id is not None and result.total == Decimal("14.60"), report
    return await fetch_documents(client, Billed(result.invoice_id, secret, feed, batches))


def session_of(document: dict[str, Any], reason: str) -> dict[str, Any]:
    """The one session of the evidence closed for `reason`."""
    sessions: list[dict[str, Any]] = document["sessions"]
    (found,) = [item for item in sessions if item["close_reason"] == reason]
    return found


RECOMPUTES = "each session recomputes from the signed events under its profile's rules"


async def test_sessions_of_every_close_reason_verify_with_their_rules_and_as_of(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    docs = await session_documents(client, db)
    stream = evidence_of(docs, "stream_hours")
    assert stream["as_of"] == AS_OF.isoformat() == docs[0]["as_of"]
    assert stream["session_rules"] == {
        "camera": {"start_on": ["stream_start"], "end_on": ["stream_stop"], "timeout_seconds": None}
    }
    assert [s["close_reason"] for s in stream["sessions"]] == [
        "deactivated",
        "deactivated",
        "superseded",
        "deactivated",
        "still_open",
    ]
    superseded = session_of(stream, "superseded")
    # the start that superseded it (the next session's first event) is in the evidence
    closing = stream["sessions"][3]["events"][0]
    assert closing in [[e["gateway_id"], e["seq"]] for e in stream["events"]]
    assert superseded["ended_at"] == "2026-11-12T09:00:00+00:00"
    assert session_of(stream, "still_open")["piece_end"] == AS_OF.isoformat()
    assert verify_invoice(*docs) == []


async def test_tampered_superseded_session_end_fails(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    invoice, evidence = copy.deepcopy(await session_documents(client, db))
    stream = evidence_of((invoice, evidence), "stream_hours")
    superseded = session_of(stream, "superseded")
    superseded["ended_at"] = superseded["piece_end"] = "2026-11-12T08:30:00+00:00"

    problems = verify_invoice(invoice, evidence)

    n = stream["line"]["n"]
    assert whats(problems) == [
        (n, RECOMPUTES),
        (n, "quantity and amount recompute from the evidence"),
    ]
    assert problems[0].detail == (
        f"session {superseded['id']}: ended_at 2026-11-12T08:30:00+00:00 "
        "(recomputed 2026-11-12T09:00:00+00:00)"
    )


async def test_tampered_still_open_session_end_fails(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    docs = await session_documents(client, db)
    n = evidence_of(docs, "stream_hours")["line"]["n"]
    # Its piece runs on past the as-of time: 1 h more, consistently billed (7.5 h -> 3.25).
    invoice, evidence = copy.deepcopy(docs)
    stream = evidence_of((invoice, evidence), "stream_hours")
    still_open = session_of(stream, "still_open")
    still_open["piece_end"] = "2026-11-30T01:00:00+00:00"
    for line in (stream["line"], line_of(invoice, "usage", "stream_hours")):
        line.update(quantity="8", billable="7", amount="3.50")
    state_total(invoice, "15.10")
    problems = verify_invoice(invoice, evidence)
    assert whats(problems) == [(n, "session pieces lie inside the line's part and their session")]
    assert problems[0].detail == f"sessions outside: {still_open['id']}"

    # It "ended" at 23:00 instead: the signed events never end it.
    invoice, evidence = copy.deepcopy(docs)
    stream = evidence_of((invoice, evidence), "stream_hours")
    still_open = session_of(stream, "still_open")
    still_open["ended_at"] = still_open["piece_end"] = "2026-11-29T23:00:00+00:00"
    still_open["close_reason"] = "timed_out"
    problems = verify_invoice(invoice, evidence)
    assert whats(problems)[0] == (n, RECOMPUTES)
    assert problems[0].detail == (
        f"session {still_open['id']}: ended_at 2026-11-29T23:00:00+00:00 (recomputed None), "
        "close_reason timed_out (recomputed still_open)"
    )

    # The as-of time moved along with it: it is not the invoice's.
    invoice, evidence = copy.deepcopy(docs)
    evidence_of((invoice, evidence), "stream_hours")["as_of"] = "2026-11-30T01:00:00+00:00"
    assert (n, "the evidence is as of the invoice's as-of time") in whats(
        verify_invoice(invoice, evidence)
    )


async def test_tampered_session_rules_fail(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    docs = await session_documents(client, db)
    n = evidence_of(docs, "stream_hours")["line"]["n"]
    invoice, evidence = copy.deepcopy(docs)
    stream = evidence_of((invoice, evidence), "stream_hours")
    # A 30 min timeout would have closed every session at its start (timed_out).
    stream["session_rules"]["camera"]["timeout_seconds"] = 1800
    problems = verify_invoice(invoice, evidence)
    assert whats(problems) == [(n, RECOMPUTES)]
    assert "close_reason deactivated (recomputed timed_out)" in problems[0].detail

    invoice, evidence = copy.deepcopy(docs)
    evidence_of((invoice, evidence), "stream_hours")["session_rules"] = {}
    problems = verify_invoice(invoice, evidence)
    assert whats(problems) == [(n, RECOMPUTES)]
    assert "the evidence carries no session rule for profile 'camera'" in problems[0].detail
