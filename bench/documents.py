"""`make bench` document numbers: what one invoice costs as JSON, HTML, PDF and Factur-X.

The billing bench's month (bench/billing.py) for a few accounts, taxed at German VAT with a
seller configured, rated by a real invoice run and finalized; then every finalized invoice is
exported in each format through `export_invoice`, the code behind
`GET /v1/invoices/{id}/export` and `tollgate-cloud invoice export`. A billing team sending
10,000 PDFs a month reads the PDF and Factur-X rows.

Setup shortcut (untimed, as in bench/billing.py): events written straight into `events`.

    python -m bench.documents [--accounts 40] [--events 40000]
"""

import argparse
import asyncio
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select, update

from bench.billing import NOW, PERIOD, generate, load
from cloud.catalog.models import Account
from cloud.catalog.tax_rates import add_tax_rate
from cloud.db import Database
from cloud.invoices.exports import export_invoice
from cloud.invoices.finalization import finalize_invoice
from cloud.invoices.models import Invoice
from cloud.invoices.service import run_invoices
from cloud.schema import migrate
from tests.support.seller import SELLER

FORMATS = ("json", "html", "pdf", "facturx")


async def finalized_invoices(db: Database, accounts: int, events: int) -> list[int]:
    """Load the month, tax it at 19 %, run and finalize it: the invoice ids (untimed)."""
    await migrate(db.engine)
    await load(db, generate(accounts, events), accounts)
    async with db.transaction(write=True) as session:
        await add_tax_rate(
            session=session,
            country="DE",
            category="standard",
            valid_from=date(2020, 1, 1),
            rate=Decimal(19),
        )
        address = {"lines": ["Lagerweg 5"], "postcode": "20457", "city": "Hamburg", "country": "DE"}
        await session.execute(update(Account).values(country="DE", locale="de_DE", address=address))
    await run_invoices(db=db, period=PERIOD, now=NOW, grace=timedelta(days=5))
    async with db.transaction() as session:
        ids = list(await session.scalars(select(Invoice.id).order_by(Invoice.id)))
    for invoice_id in ids:
        await finalize_invoice(db=db, invoice_id=invoice_id, now=NOW, force=True, seller=SELLER)
    return ids


async def time_format(db: Database, ids: list[int], export_format: str) -> tuple[float, int]:
    """Seconds to export every invoice in one format, and the bytes written."""
    size = 0
    start = time.perf_counter()
    for invoice_id in ids:
        async with db.transaction() as session:
            body, _ = await export_invoice(
                session=session, invoice_id=invoice_id, export_format=export_format, seller=SELLER
            )
        size += len(body)
    return time.perf_counter() - start, size


async def main(accounts: int, events: int) -> None:
    """Print per format: ms per invoice, documents per second, average size."""
    with tempfile.TemporaryDirectory() as tmp:
        async with Database(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite'}") as db:
            ids = await finalized_invoices(db, accounts, events)
            await time_format(db, ids[:1], "pdf")  # WeasyPrint's first page loads its fonts
            for export_format in FORMATS:
                seconds, size = await time_format(db, ids, export_format)
                print(
                    f"invoice export {export_format:8}: {len(ids)} finalized invoices in "
                    f"{seconds:.2f} s = {1000 * seconds / len(ids):.1f} ms per invoice "
                    f"({len(ids) / seconds:,.1f} per s, {size / len(ids) / 1024:,.0f} KiB each)"
                )


def cli() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=40)
    parser.add_argument("--events", type=int, default=40_000)
    args = parser.parse_args()
    asyncio.run(main(args.accounts, args.events))


if __name__ == "__main__":
    cli()
