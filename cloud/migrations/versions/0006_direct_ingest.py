"""Direct ingestion: sources (CloudEvents and file imports), their idempotency keys and imports.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SURROGATE_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create sources, source_uris, direct_event_keys and imports."""
    op.create_table(
        "sources",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("gateway_id", sa.String(128), nullable=False),
        sa.Column("mapping", sa.JSON(), nullable=False),
        sa.Column("private_key_pem", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sources"),
        sa.UniqueConstraint("gateway_id", name="uq_sources_gateway_id"),
    )
    op.create_table(
        "source_uris",
        sa.Column("uri", sa.String(255), nullable=False),
        sa.Column("source_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("uri", name="pk_source_uris"),
    )
    op.create_table(
        "direct_event_keys",
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("origin", sa.String(255), nullable=False),
        sa.Column("gateway_id", sa.String(128), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "origin", name="pk_direct_event_keys"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "imports",
        sa.Column("id", SURROGATE_KEY, autoincrement=True, nullable=False),
        sa.Column("source_id", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("file_format", sa.String(8), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("stored", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_imports"),
    )


def downgrade() -> None:
    """Drop the direct-ingestion tables (the events they stored stay in `events`)."""
    for table in ("imports", "direct_event_keys", "source_uris", "sources"):
        op.drop_table(table)
