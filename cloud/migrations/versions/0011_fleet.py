"""The fleet view: a twin per device and per gateway, and the expected reporting interval.

`device_twins` and `gateway_twins` are read models kept by the change feed (`cloud.fleet.twins`)
and by received heartbeats (`cloud.fleet.heartbeats`), never rebuilt by rescanning `events`.
`device_profiles.expected_interval_seconds` stays NULL on existing profiles: no silence check.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create device_twins and gateway_twins; add device_profiles.expected_interval_seconds."""
    op.add_column(
        "device_profiles", sa.Column("expected_interval_seconds", sa.Integer(), nullable=True)
    )
    op.create_table(
        "device_twins",
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("gateway_id", sa.String(128), nullable=False),
        sa.Column("last_occurred_at", UTC_TIME, nullable=True),
        sa.Column("last_received_at", UTC_TIME, nullable=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.String(16), nullable=True),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("points", sa.JSON(), nullable=False),
        sa.Column("counter", sa.JSON(), nullable=True),
        sa.Column("battery", sa.Integer(), nullable=True),
        sa.Column("firmware", sa.String(64), nullable=True),
        sa.Column("clock_offset_ms", sa.BigInteger(), nullable=True),
        sa.Column("health", sa.JSON(), nullable=True),
        sa.Column("health_at", UTC_TIME, nullable=True),
        sa.Column("silent_since", UTC_TIME, nullable=True),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("device_id", name="pk_device_twins"),
    )
    for column in ("gateway_id", "last_received_at", "state", "silent_since", "battery"):
        op.create_index(f"ix_device_twins_{column}", "device_twins", [column])
    op.create_table(
        "gateway_twins",
        sa.Column("gateway_id", sa.String(128), nullable=False),
        sa.Column("last_report_at", UTC_TIME, nullable=True),
        sa.Column("last_batch_at", UTC_TIME, nullable=True),
        sa.Column("last_heartbeat_at", UTC_TIME, nullable=True),
        sa.Column("heartbeat_sent_at", UTC_TIME, nullable=True),
        sa.Column("heartbeat", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_since", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("gateway_id", name="pk_gateway_twins"),
    )
    op.create_index(
        "ix_gateway_twins_status_last_report_at", "gateway_twins", ["status", "last_report_at"]
    )


def downgrade() -> None:
    """Drop both twin tables and the profile column (ALTER TABLE DROP COLUMN on both backends)."""
    op.drop_table("gateway_twins")
    op.drop_table("device_twins")
    op.drop_column("device_profiles", "expected_interval_seconds")
