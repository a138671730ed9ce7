"""Incidents get a lifecycle: open -> acknowledged -> resolved, with first and last seen, a count,
bounded evidence, and a device when the incident is about one device.

`created_at` becomes `first_seen` (the time the incident opened). Rows filed before this revision
were one refusal each, never bumped and never looked at: they become *resolved at creation*
(`resolved_at = first_seen`, `resolved_by = "migration 0010"`), so that the history stays
countable but no new occurrence is folded into an incident of months ago, and the list of open
incidents starts empty instead of full of refusals nobody can act on any more.

Indexes serve the list filters (kind, device, state, last seen) and the sink's lookup of the open
incident of a subject (kind, state, gateway, device).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
INDEXES = {
    "ix_incidents_kind_state_gateway_id_device_id": ["kind", "state", "gateway_id", "device_id"],
    "ix_incidents_device_id_last_seen": ["device_id", "last_seen"],
    "ix_incidents_state_last_seen": ["state", "last_seen"],
    "ix_incidents_last_seen": ["last_seen"],
}


def upgrade() -> None:
    """Rename `created_at`, add the lifecycle columns, resolve the rows filed before."""
    op.alter_column("incidents", "created_at", new_column_name="first_seen")
    op.add_column("incidents", sa.Column("device_id", sa.String(128), nullable=True))
    op.add_column("incidents", sa.Column("state", sa.String(16), nullable=True))
    op.add_column("incidents", sa.Column("last_seen", UTC_TIME, nullable=True))
    op.add_column("incidents", sa.Column("count", sa.BigInteger(), nullable=True))
    op.add_column("incidents", sa.Column("evidence", sa.JSON(), nullable=True))
    op.add_column("incidents", sa.Column("acknowledged_at", UTC_TIME, nullable=True))
    op.add_column("incidents", sa.Column("acknowledged_by", sa.String(128), nullable=True))
    op.add_column("incidents", sa.Column("acknowledged_note", sa.Text(), nullable=True))
    op.add_column("incidents", sa.Column("resolved_at", UTC_TIME, nullable=True))
    op.add_column("incidents", sa.Column("resolved_by", sa.String(128), nullable=True))
    op.add_column("incidents", sa.Column("resolved_reason", sa.Text(), nullable=True))
    op.execute(
        "UPDATE incidents SET state = 'resolved', last_seen = first_seen, count = 1, "
        "resolved_at = first_seen, resolved_by = 'migration 0010', "
        "resolved_reason = 'filed before incidents had a lifecycle'"
    )
    with op.batch_alter_table("incidents") as batch:  # SQLite: NOT NULL needs a table rebuild
        batch.alter_column("state", existing_type=sa.String(16), nullable=False)
        batch.alter_column("last_seen", existing_type=UTC_TIME, nullable=False)
        batch.alter_column("count", existing_type=sa.BigInteger(), nullable=False)
    for name, columns in INDEXES.items():
        op.create_index(name, "incidents", columns)


def downgrade() -> None:
    """Back to one row per refusal: drop the lifecycle, `first_seen` becomes `created_at`."""
    for name in INDEXES:
        op.drop_index(name, table_name="incidents")
    for column in (
        "resolved_reason",
        "resolved_by",
        "resolved_at",
        "acknowledged_note",
        "acknowledged_by",
        "acknowledged_at",
        "evidence",
        "count",
        "last_seen",
        "state",
        "device_id",
    ):
        op.drop_column("incidents", column)
    op.alter_column("incidents", "first_seen", new_column_name="created_at")
