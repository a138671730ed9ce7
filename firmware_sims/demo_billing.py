"""The demo's billing after the run: this month's invoices, the company's finalized and one of its
lines credited, every document written as the files a customer receives (HTML, PDF, Factur-X).

The terminal gets the invoice run's table and the commands the demo runs; the drafts as `invoice
show` prints them, the sessions behind them and each document's VAT summary go to a `DetailLog`
(billing-details.txt in the workdir, echoed with --verbose); what each account ended with is kept
in its `Outcome` for the demo's last lines.
"""

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from cloud.rating.periods import period_of
from firmware_sims.demo_direct import DEVICE
from firmware_sims.processes import CollectorProcess, ProcessFailed

SELLER = Path(__file__).with_name("demo_seller.toml")  # the operator on the invoices
COMPANY = "nordlicht-facility"  # its draft is finalized, credited and exported as Factur-X
CREDITED_METRIC = "active_panels"  # the company's line the demo's credit note credits
CREDIT_REASON = "panel-2 was in maintenance all month: not an active panel"
DEMO_ACCOUNTS = {  # account -> its devices whose sessions the invoice printout lists
    "weber-household": ("camera-1", "home-1", "door-lock-1"),
    "nordlicht-facility": ("waste-lock-1", DEVICE),  # DEVICE: the direct source's bin
}
BILLING_TIME_ZONE = "Europe/Berlin"
DETAILS = "billing-details.txt"  # the long printouts, in the workdir
EXPORT_NAMES = {"html": "HTML", "pdf": "PDF", "facturx": "Factur-X"}


class DetailLog:
    """The demo's long printouts: appended to a file in the workdir, and echoed with --verbose."""

    def __init__(self, path: Path, *, echo: bool = False) -> None:
        self.path = path
        self.echo = echo
        path.write_text("")

    def write(self, text: str) -> None:
        """Append `text` as lines to the file (and print it when echoing)."""
        with self.path.open("a", encoding="utf-8") as file:
            file.write(f"{text}\n")
        if self.echo:
            print(text, flush=True)


@dataclass
class Outcome:
    """What the run left for one account: its documents' summaries and files, for the end."""

    account: str
    invoice: str = "no invoice this period"
    files: dict[str, Path] = field(default_factory=dict)
    credit_note: str = ""
    credit_files: dict[str, Path] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """The account in a few lines: its invoice, then each file on its own line."""
        lines = [f"  {self.account}: {self.invoice}"]
        lines += [f"    {EXPORT_NAMES[kind]:8}  {path}" for kind, path in self.files.items()]
        if self.credit_note:
            lines.append(f"    {self.credit_note}")
            lines += [
                f"      {EXPORT_NAMES[kind]:8}  {path}" for kind, path in self.credit_files.items()
            ]
        return lines


def document_line(document: Any, kind: str) -> str:
    """A document in one line: number (or draft), state, gross."""
    number = document["printed_number"] or "draft (no number yet)"
    gross = f"{document['totals']['gross']} {document['currency']}"
    state = document.get("status") or "issued"
    return f"{kind} {number}, {state}, gross {gross}"


@dataclass
class Books:
    """What the billing works with: the collector, the workdir for the files, the detail log and
    each demo account's outcome."""

    collector: CollectorProcess
    workdir: Path
    details: DetailLog
    outcomes: dict[str, Outcome] = field(
        default_factory=lambda: {account: Outcome(account) for account in DEMO_ACCOUNTS}
    )


async def print_invoices(books: Books) -> dict[str, int]:
    """Run this month's invoices (said on the terminal) and write each demo account's draft
    with its sessions to the detail log; the invoice id per account."""
    collector = books.collector
    period = period_of(datetime.now(UTC), BILLING_TIME_ZONE).label
    print(f"\nBilling period {period}: tollgate-cloud invoice run --period {period}")
    print(await collector.admin("invoice", "run", "--period", period), flush=True)
    listed = json.loads(await collector.admin("invoice", "list", "--period", period, "--json"))
    invoice_of = {invoice["account_id"]: invoice["id"] for invoice in listed}
    books.details.write(f"Billing period {period}: the drafts and the sessions behind them")
    for account, devices in DEMO_ACCOUNTS.items():
        if account not in invoice_of:
            books.details.write(f"{account}: no invoice for {period}")
            continue
        books.details.write(await collector.admin("invoice", "show", str(invoice_of[account])))
        books.details.write("  sessions behind it:")
        for device in devices:
            sessions = json.loads(await collector.admin("sessions", "list", "--device", device))
            for session in sessions:
                books.details.write(f"    {session_line(session)}")
    return invoice_of


def session_line(session: dict[str, Any]) -> str:
    """One session as a line: device/channel, start, duration, close reason, event count."""
    start = datetime.fromisoformat(session["started_at"])
    where = session["device_id"] + (f"/{session['channel']}" if session["channel"] else "")
    if session["ended_at"] is None:
        lasted = "open"
    else:
        seconds = (datetime.fromisoformat(session["ended_at"]) - start).total_seconds()
        lasted = f"{seconds:6.1f} s"
    return (
        f"{where:20} {start:%H:%M:%S} UTC  {lasted:>8}  {session['close_reason']:11} "
        f"{len(session['events'])} events"
    )


async def customer_documents(
    books: Books, client: httpx.AsyncClient, invoice_of: dict[str, int]
) -> None:
    """The company's invoice finalized and one line credited; every demo invoice (and the credit
    note) written as the files a customer receives, a short summary each in the detail log."""
    collector, workdir = books.collector, books.workdir
    books.details.write(
        f"\nInvoices as customers receive them (seller {SELLER.name}, files in {workdir}):"
    )
    company = invoice_of.get(COMPANY)
    if company is not None:
        print(
            f"tollgate-cloud invoice finalize --id {company} --force: the demo forces it because "
            "the period is still open (its grace period has not ended); in production "
            "`invoice finalize --due` numbers drafts once their grace period is over",
            flush=True,
        )
        await collector.admin("invoice", "finalize", "--id", str(company), "--force")
    for account in DEMO_ACCOUNTS:
        if account in invoice_of:
            outcome = books.outcomes[account]
            document = await export_invoice(books, client, invoice_of[account], outcome)
            if account == COMPANY:
                await credit_one_line(books, client, document, outcome)


async def export_invoice(
    books: Books, client: httpx.AsyncClient, invoice_id: int, outcome: Outcome
) -> Any:
    """Write the invoice as HTML and PDF, and as Factur-X once finalized (a draft has no number,
    so it is no e-invoice); its summary to the detail log, its line and files to `outcome`; its
    document (the JSON export)."""
    collector, workdir = books.collector, books.workdir
    document = await fetch_document(client, f"/v1/invoices/{invoice_id}/export")
    stem = document["printed_number"] or f"draft-{document['account_id']}"
    formats = {"html": f"{stem}.html", "pdf": f"{stem}.pdf"}
    if document["status"] == "finalized":
        formats["facturx"] = f"{stem}-facturx.pdf"
    await asyncio.gather(
        *(
            collector.admin(
                "invoice", "export", str(invoice_id), "--format", name, "--out", str(workdir / file)
            )
            for name, file in formats.items()
        )
    )
    books.details.write(summary(document, "invoice", list(formats.values())))
    outcome.invoice = document_line(document, "invoice")
    outcome.files = {name: workdir / file for name, file in formats.items()}
    return document


async def credit_one_line(
    books: Books, client: httpx.AsyncClient, invoice: Any, outcome: Outcome
) -> None:
    """Credit the company's `CREDITED_METRIC` line (a credit note, numbered at once) and write
    the note in every format this collector exports credit notes to."""
    collector, workdir = books.collector, books.workdir
    line = next((item for item in invoice["lines"] if item["metric"] == CREDITED_METRIC), None)
    if line is None or Decimal(line["amount"]) <= 0:
        print(f"  (no {CREDITED_METRIC} line with an amount to credit)", flush=True)
        return
    invoice_id, n = str(invoice["id"]), str(line["n"])
    print(
        f'tollgate-cloud invoice credit {invoice_id} --line {n} --reason "{CREDIT_REASON}"',
        flush=True,
    )
    issued = await collector.admin(
        "invoice", "credit", invoice_id, "--line", n, "--reason", CREDIT_REASON
    )
    note_id = issued.split()[2]  # "credit note ID NUMBER: ..."
    note = await fetch_document(client, f"/v1/credit-notes/{note_id}/export")
    files = {
        name: f"{note['printed_number']}{suffix}"
        for name, suffix in (("html", ".html"), ("pdf", ".pdf"), ("facturx", "-facturx.pdf"))
    }
    written = await asyncio.gather(
        *(
            export_credit_note(collector, note_id, name, workdir / file)
            for name, file in files.items()
        )
    )
    kept = {name: path for name, path in zip(files, written, strict=True) if path is not None}
    books.details.write(summary(note, "credit note", [path.name for path in kept.values()]))
    outcome.credit_note = document_line(note, "credit note")
    outcome.credit_files = kept


async def export_credit_note(
    collector: CollectorProcess, note_id: str, export_format: str, path: Path
) -> Path | None:
    """`credit-note export` to `path`; None (said) when this collector does not export credit
    notes in that format."""
    try:
        await collector.admin(
            "credit-note", "export", note_id, "--format", export_format, "--out", str(path)
        )
    except ProcessFailed:
        print(f"  (credit-note export --format {export_format}: not supported here)", flush=True)
        return None
    return path


async def fetch_document(client: httpx.AsyncClient, path: str) -> Any:
    """An invoice's or credit note's document (`?format=json`, the reading key)."""
    answer = await client.get(path, params={"format": "json"})
    answer.raise_for_status()
    return answer.json()


def summary(document: Any, kind: str, files: list[str]) -> str:
    """A document in a few lines: number, buyer, dates, net, VAT per rate, gross, its files."""
    currency = document["currency"]
    totals = document["totals"]
    number = document["printed_number"] or "draft (no number yet)"
    dated = _dates(document)
    lines = [
        f"{kind} {number}: {document['account_id']}, buyer {document['buyer']['name']}, "
        f"{dated}, service {document['service_period']['start']} to "
        f"{document['service_period']['end']}"
    ]
    for reference in document.get("references") or []:
        credited = f" line {reference['line']}" if reference.get("line") else ""
        lines.append(f"  credits invoice {reference['printed_number']}{credited}")
    lines.append(f"  net {totals['net']} {currency}")
    lines += [
        f"  VAT {subtotal['category']} {subtotal['rate']}% on {subtotal['taxable']}: "
        f"{subtotal['tax']} {currency}"
        for subtotal in document["tax"]
    ]
    lines.append(f"  gross {totals['gross']} {currency}, due {totals['due']} {currency}")
    lines.append(f"  files: {', '.join(files) or 'none'}")
    return "\n".join(lines)


def _dates(document: Any) -> str:
    """ "issued D, due D" (a finalized invoice), "issued D" (a credit note) or "not issued"."""
    if not document.get("issue_date"):
        return "not issued (a draft)"
    due = f", due {document['due_date']}" if document.get("due_date") else ""
    return f"issued {document['issue_date']}{due}"
