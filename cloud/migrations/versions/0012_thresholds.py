"""Usage thresholds and their firings: an account is told (webhook `usage.threshold_reached`)
when its usage so far this billing period crosses a threshold, once per period.

A threshold measures one metric's units, one metric's amount, or (metric NULL) the amount of all
the account's usage so far; `value` is exact (NUMERIC on PostgreSQL, text on SQLite, like the
billing tables). A firing's primary key (threshold_id, period_start) is what makes a threshold
fire at most once per period, whatever runs concurrently.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SURROGATE_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
QUANTITY = sa.Numeric().with_variant(sa.Text(), "sqlite")
UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create `usage_thresholds` and `threshold_firings`."""
    op.create_table(
        "usage_thresholds",
        sa.Column("id", SURROGATE_KEY, autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("metric_id", sa.String(length=64), nullable=True),
        sa.Column("measure", sa.String(length=16), nullable=False),
        sa.Column("value", QUANTITY, nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_usage_thresholds_account_id_accounts"
        ),
        sa.ForeignKeyConstraint(
            ["metric_id"], ["metrics.id"], name="fk_usage_thresholds_metric_id_metrics"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_usage_thresholds"),
    )
    op.create_index(
        "ix_usage_thresholds_account_id", "usage_thresholds", ["account_id"], unique=False
    )
    op.create_table(
        "threshold_firings",
        sa.Column("threshold_id", SURROGATE_KEY, nullable=False),
        sa.Column("period_start", UTC_TIME, nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("fired_at", UTC_TIME, nullable=False),
        sa.Column("observed", QUANTITY, nullable=False),
        sa.ForeignKeyConstraint(
            ["threshold_id"],
            ["usage_thresholds.id"],
            name="fk_threshold_firings_threshold_id_usage_thresholds",
        ),
        sa.PrimaryKeyConstraint("threshold_id", "period_start", name="pk_threshold_firings"),
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("threshold_firings")
    op.drop_index("ix_usage_thresholds_account_id", table_name="usage_thresholds")
    op.drop_table("usage_thresholds")
