"""Taxes and invoice documents (seller/buyer data, VAT rates, per-line tax, totals per rate).

Reserved for issue 15; filled in by the change that needs it (a no-op until then).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from collections.abc import Sequence

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing yet."""


def downgrade() -> None:
    """Nothing yet."""
