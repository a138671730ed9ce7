"""Roles: API keys that expire, and share links that open one invoice.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SURROGATE_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add api_keys.expires_at and create share_links."""
    with op.batch_alter_table("api_keys") as table:
        table.add_column(sa.Column("expires_at", UTC_TIME, nullable=True))
    op.create_table(
        "share_links",
        sa.Column("id", SURROGATE_KEY, autoincrement=True, nullable=False),
        sa.Column("invoice_id", SURROGATE_KEY, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("expires_at", UTC_TIME, nullable=False),
        sa.Column("revoked_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_share_links"),
        sa.UniqueConstraint("token_hash", name="uq_share_links_token_hash"),
    )
    op.create_index("ix_share_links_invoice_id", "share_links", ["invoice_id"])


def downgrade() -> None:
    """Drop share_links and api_keys.expires_at."""
    op.drop_index("ix_share_links_invoice_id", table_name="share_links")
    op.drop_table("share_links")
    with op.batch_alter_table("api_keys") as table:
        table.drop_column("expires_at")
