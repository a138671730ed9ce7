"""`archived_heads`: per gateway, the newest event `tollgate-cloud archive` moved out of `events`.

One row per gateway with archived events: the highest archived seq, that event's `prev_hash` and
`hash` (cloud/ingest/archived_heads.py). The store, direct sealing and the gateway view read it
so that the chain goes on past archived months: archived seqs are duplicates, not new, not gaps.
Both backends. Starts empty: months archived before this migration (0017 came the same day)
leave no head; only archives run from now on record theirs.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `archived_heads`."""
    op.create_table(
        "archived_heads",
        sa.Column("gateway_id", sa.String(length=128), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["gateway_id"], ["gateways.id"], name="fk_archived_heads_gateway_id_gateways"
        ),
        sa.PrimaryKeyConstraint("gateway_id", name="pk_archived_heads"),
    )


def downgrade() -> None:
    """Drop `archived_heads`."""
    op.drop_table("archived_heads")
