"""`tollgate-cloud verify-invoice`, `invoice evidence` and `invoice export`.

    tollgate-cloud verify-invoice 7 --url http://HOST:PORT --api-key-file KEY [--trust-key GW=PEM]
    tollgate-cloud verify-invoice 7 --from-dir DIR          (files saved by `invoice evidence`)
    tollgate-cloud verify-invoice 7 --db URL --archive DIR   (events of archived months)
    tollgate-cloud invoice evidence 7 --out DIR [--url ... --api-key-file ... | --db URL]
    tollgate-cloud invoice export 7 --format json|csv|html|pdf|facturx|cii --output FILE [--db URL]

An exported file is read on its own: its links are absolute to TOLLGATE_PUBLIC_URL, and without
one the page says that evidence needs the collector instead of printing dead relative links.

verify-invoice prints every check with ✓ or ✗ and exits 0 when all pass, 1 when one fails, 2 on a
usage, file or connection error. It trusts the gateway keys inside the evidence unless
`--trust-key` pins a gateway's key. `--archive DIR` verifies the archive files in DIR and adds the
batches of billed events of archived months to the evidence (`cloud.archive.evidence`).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from cloud.invoices.verify import Check
import orjson

from cloud.choices import ExportFormat
from cloud.cli_support import DB_HELP, CommandFailed, Commands
from cloud.settings import Settings

EXIT_CHECK_FAILED = 1
INVOICE_FILE = "invoice.json"
HTTP_TIMEOUT = 60.0
Documents = tuple[dict[str, Any], list[dict[str, Any]]]


def add_commands(commands: Commands) -> None:
    """Register `verify-invoice`, and `evidence` and `export` under `invoice`."""
    verify = commands.add_parser(
        "verify-invoice", help="re-verify an invoice from its evidence alone"
    )
    verify.add_argument("invoice_id", type=int, metavar="ID")
    _source_options(verify)
    verify.add_argument("--from-dir", type=Path, help="verify files saved by `invoice evidence`")
    verify.add_argument(
        "--trust-key",
        action="append",
        default=[],
        metavar="GATEWAY=PEMFILE",
        help="verify this gateway's batches with this public key, not the evidence's",
    )
    verify.add_argument(
        "--archive",
        type=Path,
        metavar="DIR",
        help="take billed events of archived months from the archive files in DIR",
    )
    verify.set_defaults(run=_verify_invoice)
    actions = _invoice_actions(commands)
    if "evidence" not in actions.choices:
        evidence = actions.add_parser("evidence", help="save an invoice and its lines' evidence")
        evidence.add_argument("invoice_id", type=int, metavar="ID")
        evidence.add_argument("--out", type=Path, required=True, help="directory to write")
        _source_options(evidence)
        evidence.set_defaults(run=_save_evidence)
    if "export" not in actions.choices:
        export = actions.add_parser(
            "export", help="write an invoice as JSON, CSV, HTML, PDF, Factur-X or CII XML"
        )
        export.add_argument("invoice_id", type=int, metavar="ID")
        export.add_argument(
            "--format",
            default="json",
            dest="export_format",
            help=f"one of {', '.join(ExportFormat)} (facturx: PDF/A-3 with the EN 16931 XML)",
        )
        export.add_argument(
            "--output", "--out", dest="out", type=Path, required=True, help="file to write"
        )
        export.add_argument("--db", help=DB_HELP)
        export.set_defaults(run=_export)


def _source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="collector base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--api-key-file", type=Path, help="file holding an admin API key")
    parser.add_argument("--db", help=f"read the database directly (no --url): {DB_HELP}")


def _invoice_actions(commands: Commands) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """The subcommands of `invoice` (created here if the invoice module has not)."""
    parser = commands.choices.get("invoice")
    if parser is None:
        parser = commands.add_parser("invoice", help="invoice runs, exports and evidence")
        return parser.add_subparsers(dest="action", required=True)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return parser.add_subparsers(dest="action", required=True)


# --- commands ---------------------------------------------------------------------------------


def _verify_invoice(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.archive.evidence import with_archive
    from cloud.archive.files import ArchiveInvalid
    from cloud.invoices.verify import check_invoice

    trusted = _trusted_keys(args.trust_key)
    if args.from_dir is not None:
        invoice, evidence = read_saved(args.from_dir)
    else:
        invoice, evidence = _collect(args, settings)
    if args.archive is not None:
        try:
            evidence, used = with_archive(evidence, args.archive)
        except ArchiveInvalid as exc:
            raise CommandFailed(f"--archive: {exc}") from exc
        print(f"archive {args.archive}: batches taken from {', '.join(used) or 'no file'}")
    checks = check_invoice(invoice, evidence, trusted_keys=trusted)
    for check in checks:
        print(format_check(check))
    failed = sum(1 for check in checks if not check.ok)
    print(f"invoice {invoice.get('id')}: {len(checks) - failed} checks passed, {failed} failed")
    if failed:
        raise SystemExit(EXIT_CHECK_FAILED)


def _save_evidence(args: argparse.Namespace, settings: Settings) -> None:
    invoice, evidence = _collect(args, settings)
    write_saved(args.out, invoice, evidence)
    print(f"invoice {args.invoice_id}: {len(evidence)} line evidence files written to {args.out}")


def _export(args: argparse.Namespace, settings: Settings) -> None:
    from cloud.db import Database
    from cloud.invoices.exports import check_format, export_invoice
    from cloud.invoices.html import PageLinks

    check_format(args.export_format)

    async def run() -> bytes:
        async with Database(settings.db_url) as db, db.transaction() as session:
            body, _ = await export_invoice(
                session=session,
                invoice_id=args.invoice_id,
                export_format=args.export_format,
                as_of=datetime.now(UTC),
                links=PageLinks(base=settings.public_url, standalone=True),
                seller=settings.seller,
            )
        return body

    body = asyncio.run(run())
    try:
        args.out.write_bytes(body)
    except OSError as exc:
        raise CommandFailed(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    print(f"invoice {args.invoice_id} written to {args.out} ({args.export_format})")


def format_check(check: Check) -> str:
    """One line per check: ✓ or ✗, where, what, and why."""
    mark = "✓" if check.ok else "✗"
    where = "invoice" if check.line is None else f"line {check.line}"
    detail = f": {check.detail}" if check.detail and not check.ok else ""
    return f"{mark} {where}: {check.what}{detail}"


# --- where the documents come from ------------------------------------------------------------


def _collect(args: argparse.Namespace, settings: Settings) -> Documents:
    if args.url is not None:
        return fetch_documents(args.url, _api_key(args.api_key_file), args.invoice_id)
    return asyncio.run(load_documents(settings.db_url, args.invoice_id))


def fetch_documents(url: str, api_key: str, invoice_id: int) -> Documents:
    """The invoice (`GET /v1/invoices/{id}`) and each line's evidence from a running collector."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=HTTP_TIMEOUT) as client:
            invoice = _get(client, f"/v1/invoices/{invoice_id}", {})
            evidence = [
                _get(client, f"/v1/invoices/{invoice_id}/lines/{line['n']}/evidence", {})
                for line in invoice["lines"]
            ]
    except httpx.HTTPError as exc:
        raise CommandFailed(f"cannot reach the collector at {url}: {exc}") from exc
    return invoice, evidence


def _get(client: httpx.Client, path: str, params: Mapping[str, str]) -> dict[str, Any]:
    import httpx

    response = client.get(path, params=params)
    if response.status_code != httpx.codes.OK:
        raise CommandFailed(f"GET {path}: {response.status_code} {_error_message(response)}")
    document: dict[str, Any] = response.json()
    return document


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


async def load_documents(db_url: str, invoice_id: int) -> Documents:
    """The invoice and each line's evidence, read from the database."""
    from cloud.db import Database
    from cloud.invoices.evidence import line_evidence
    from cloud.invoices.exports import invoice_document

    async with Database(db_url) as db, db.transaction() as session:
        invoice = await invoice_document(session=session, invoice_id=invoice_id)
        evidence = [
            await line_evidence(session=session, invoice_id=invoice_id, n=int(line["n"]))
            for line in invoice["lines"]
        ]
    return invoice, evidence


def write_saved(directory: Path, invoice: dict[str, Any], evidence: list[dict[str, Any]]) -> None:
    """`invoice.json` and `line-NNNN.json` per line, indented JSON."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / INVOICE_FILE).write_bytes(orjson.dumps(invoice, option=orjson.OPT_INDENT_2))
        for document in evidence:
            name = f"line-{int(document['line']['n']):04d}.json"
            (directory / name).write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    except OSError as exc:
        raise CommandFailed(f"cannot write to {directory}: {exc.strerror or exc}") from exc


def read_saved(directory: Path) -> Documents:
    """The documents `write_saved` wrote; `CommandFailed` when missing or not JSON."""
    try:
        invoice = orjson.loads((directory / INVOICE_FILE).read_bytes())
        evidence = [
            orjson.loads(path.read_bytes()) for path in sorted(directory.glob("line-*.json"))
        ]
    except (OSError, orjson.JSONDecodeError) as exc:
        raise CommandFailed(f"cannot read saved evidence in {directory}: {exc}") from exc
    return invoice, evidence


def _api_key(path: Path | None) -> str:
    if path is None:
        raise CommandFailed("--url needs --api-key-file (a file holding an admin API key)")
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CommandFailed(f"cannot read API key file {path}: {exc.strerror or exc}") from exc
    if not key:
        raise CommandFailed(f"API key file {path} is empty")
    return key


def _trusted_keys(pairs: list[str]) -> dict[str, str]:
    keys = {}
    for pair in pairs:
        gateway, sep, file = pair.partition("=")
        if not sep or not gateway or not file:
            raise CommandFailed(f"--trust-key {pair!r}: use GATEWAY=PEMFILE")
        try:
            keys[gateway] = Path(file).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandFailed(f"cannot read key file {file}: {exc}") from exc
    return keys
