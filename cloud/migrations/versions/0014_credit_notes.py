"""Credit notes in their own gap-free series.

`credit_note_series` counts each credit-note series ("INV-CN" for invoice series "INV") the way
`invoice_series` counts invoices: the number is taken in the issuing transaction. `credit_notes`
are issued final (a number from the start); `credit_note_lines` each credit one whole invoice line,
and `(invoice_id, invoice_line)` is unique: a line is never credited twice.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SURROGATE_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
AMOUNT = sa.Numeric().with_variant(sa.Text(), "sqlite")
UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create `credit_note_series`, `credit_notes` and `credit_note_lines`."""
    op.create_table(
        "credit_note_series",
        sa.Column("series", sa.String(length=40), nullable=False),
        sa.Column("next_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("series", name="pk_credit_note_series"),
    )
    op.create_table(
        "credit_notes",
        sa.Column("id", SURROGATE_KEY, autoincrement=True, nullable=False),
        sa.Column("invoice_id", SURROGATE_KEY, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("series", sa.String(length=40), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("whole", sa.Boolean(), nullable=False),
        sa.Column("net", AMOUNT, nullable=False),
        sa.Column("tax", AMOUNT, nullable=False),
        sa.Column("gross", AMOUNT, nullable=False),
        sa.Column("issued_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_credit_notes_account_id_accounts"
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name="fk_credit_notes_invoice_id_invoices"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_credit_notes"),
    )
    op.create_index("ix_credit_notes_invoice_id", "credit_notes", ["invoice_id"], unique=False)
    op.create_index("ix_credit_notes_account_id", "credit_notes", ["account_id"], unique=False)
    op.create_index(
        "ix_credit_notes_series_number", "credit_notes", ["series", "number"], unique=True
    )
    op.create_table(
        "credit_note_lines",
        sa.Column("credit_note_id", SURROGATE_KEY, nullable=False),
        sa.Column("n", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("invoice_id", SURROGATE_KEY, nullable=False),
        sa.Column("invoice_line", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("amount", AMOUNT, nullable=False),
        sa.Column("tax_category", sa.String(length=2), nullable=False),
        sa.Column("tax_rate", AMOUNT, nullable=False),
        sa.ForeignKeyConstraint(
            ["credit_note_id"],
            ["credit_notes.id"],
            name="fk_credit_note_lines_credit_note_id_credit_notes",
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id", "invoice_line"],
            ["invoice_lines.invoice_id", "invoice_lines.n"],
            name="fk_credit_note_lines_invoice_id_invoice_lines",
        ),
        sa.PrimaryKeyConstraint("credit_note_id", "n", name="pk_credit_note_lines"),
    )
    op.create_index(
        "ix_credit_note_lines_invoice_id_invoice_line",
        "credit_note_lines",
        ["invoice_id", "invoice_line"],
        unique=True,
    )


def downgrade() -> None:
    """Drop the credit-note tables (every credit note is lost)."""
    op.drop_index("ix_credit_note_lines_invoice_id_invoice_line", table_name="credit_note_lines")
    op.drop_table("credit_note_lines")
    op.drop_index("ix_credit_notes_series_number", table_name="credit_notes")
    op.drop_index("ix_credit_notes_account_id", table_name="credit_notes")
    op.drop_index("ix_credit_notes_invoice_id", table_name="credit_notes")
    op.drop_table("credit_notes")
    op.drop_table("credit_note_series")
