"""Invoices keep their as-of time apart from when they were computed, and freeze the catalog
they were rated with (each billed device's profile and each profile's session rule), so that
their pages and evidence show what was rated, not what the catalog says today.

`invoices.computed_at` is from now on the wall clock of the run (what events' `received_at`
and bindings' `changed_at` are compared with); `invoices.as_of` is the run's `now` (where
still-open sessions were clipped). Both new columns stay NULL on invoices rated before: their
`computed_at` was the as-of time, and their catalog was not kept (finalized rows cannot be
updated anyway: migration 0004's triggers).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add `invoices.as_of` and `invoices.rated_catalog` (NULL on earlier invoices)."""
    op.add_column("invoices", sa.Column("as_of", UTC_TIME, nullable=True))
    op.add_column("invoices", sa.Column("rated_catalog", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drop both columns (ALTER TABLE DROP COLUMN: a batch rebuild would lose 0004's triggers)."""
    op.drop_column("invoices", "rated_catalog")
    op.drop_column("invoices", "as_of")
