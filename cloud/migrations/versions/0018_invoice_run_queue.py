"""The queue of account chunks that invoice run workers claim (issue 17).

`invoice_runs` holds one row per `invoice run --workers N`: its period, `now` and grace (what
every worker rates with), state (running | finished | failed), started/finished times, who
started it and the totals once finished. `invoice_run_chunks` holds the run's accounts in chunks
(`accounts`: JSON [[id, time_zone, currency, plan_id, series], ...] as the parent loaded them),
each pending | claimed | done | failed, with the worker that claimed it, when (the lease), the
number of claims, and the accounts' results (JSON) once done.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create `invoice_runs` and `invoice_run_chunks`."""
    op.create_table(
        "invoice_runs",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("now", UTC_TIME, nullable=False),
        sa.Column("grace_seconds", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("workers", sa.Integer(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("accounts", sa.Integer(), nullable=False),
        sa.Column("totals", sa.JSON(), nullable=True),
        sa.Column("started_at", UTC_TIME, nullable=False),
        sa.Column("finished_at", UTC_TIME, nullable=True),
        sa.Column("started_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_invoice_runs"),
    )
    op.create_table(
        "invoice_run_chunks",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("run_id", ROW_ID, nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("accounts", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claimed_at", UTC_TIME, nullable=True),
        sa.Column("claims", sa.Integer(), nullable=False),
        sa.Column("finished_at", UTC_TIME, nullable=True),
        sa.Column("results", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["invoice_runs.id"], name="fk_invoice_run_chunks_run_id_invoice_runs"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_invoice_run_chunks"),
    )
    op.create_index(
        "ix_invoice_run_chunks_run_id_chunk_index",
        "invoice_run_chunks",
        ["run_id", "chunk_index"],
        unique=True,
    )
    op.create_index("ix_invoice_run_chunks_run_id_state", "invoice_run_chunks", ["run_id", "state"])


def downgrade() -> None:
    """Drop `invoice_run_chunks` and `invoice_runs`."""
    op.drop_index("ix_invoice_run_chunks_run_id_state", table_name="invoice_run_chunks")
    op.drop_index("ix_invoice_run_chunks_run_id_chunk_index", table_name="invoice_run_chunks")
    op.drop_table("invoice_run_chunks")
    op.drop_table("invoice_runs")
