"""Taxes and invoice documents (seller/buyer data, VAT rates, per-line tax, totals per rate).

- `accounts` gain the buyer's billing data: billing name, address (JSON: lines, postcode, city,
  country), tax country (ISO 3166 alpha-2), VAT id, customer number, payment terms (days) and
  locale (a Babel identifier). All nullable: older rows have none (no tax country: no VAT).
- `tax_rates`: a country's VAT rate (percent, exact) per category (standard, reduced, zero),
  in force from `valid_from` (a local date) until the next row's.
- `invoice_lines` gain the VAT category (UNCL5305) and rate frozen when the line was drafted.
- `invoices` gain the VAT total and the gross total (`total` stays the net total), the parties
  (seller, buyer, payment terms) frozen at finalization, and the issue and due dates.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUANTITY = sa.Numeric().with_variant(sa.Text(), "sqlite")
UTC_TIME = sa.DateTime(timezone=True)

ACCOUNT_COLUMNS = (
    ("billing_name", sa.String(length=200)),
    ("address", sa.JSON()),
    ("country", sa.String(length=2)),
    ("vat_id", sa.String(length=32)),
    ("customer_number", sa.String(length=64)),
    ("payment_terms_days", sa.Integer()),
    ("locale", sa.String(length=32)),
)
LINE_COLUMNS = (("tax_category", sa.String(length=2)), ("tax_rate", QUANTITY))
INVOICE_COLUMNS = (
    ("tax_total", QUANTITY),
    ("gross_total", QUANTITY),
    ("parties", sa.JSON()),
    ("issue_date", sa.Date()),
    ("due_date", sa.Date()),
)
NEW_COLUMNS = {
    "accounts": ACCOUNT_COLUMNS,
    "invoice_lines": LINE_COLUMNS,
    "invoices": INVOICE_COLUMNS,
}


def upgrade() -> None:
    """Create `tax_rates`; add the nullable billing columns (plain ADD COLUMN on both)."""
    op.create_table(
        "tax_rates",
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("rate", QUANTITY, nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("country", "category", "valid_from", name="pk_tax_rates"),
    )
    for table, columns in NEW_COLUMNS.items():
        for name, kind in columns:
            op.add_column(table, sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    """Drop the columns (no batch copy: the tables carry triggers) and `tax_rates`."""
    for table, columns in NEW_COLUMNS.items():
        for name, _ in reversed(columns):
            op.drop_column(table, name)  # SQLite 3.35+ drops a column in place
    op.drop_table("tax_rates")
