"""Bindings remember when their end last changed (`changed_at`), so that ending a binding after
an invoice was finalized makes the next run re-check that invoice for adjustments.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add `bindings.changed_at` (NULL: not changed since created)."""
    op.add_column("bindings", sa.Column("changed_at", UTC_TIME, nullable=True))


def downgrade() -> None:
    """Drop `bindings.changed_at`."""
    op.drop_column("bindings", "changed_at")
