"""Billable sessions across devices: combined session rules.

`combined_session_rules` holds a rule per id (scope site | account, combine union |
intersection, its members as JSON: [{"profile", "channels"}]); the id is also a device profile's
id (foreign key), so a session metric names the rule in its `profiles` (cloud/catalog/
combined_rules.py).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create `combined_session_rules`."""
    op.create_table(
        "combined_session_rules",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("combine", sa.String(length=16), nullable=False),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["id"], ["device_profiles.id"], name="fk_combined_session_rules_id_device_profiles"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_combined_session_rules"),
    )


def downgrade() -> None:
    """Drop `combined_session_rules`."""
    op.drop_table("combined_session_rules")
