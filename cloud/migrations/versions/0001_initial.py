"""Initial schema: gateways, batches, events, incidents.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out here rather than imported from cloud.db, so that this revision never changes.
SURROGATE_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
QUANTITY = sa.Numeric().with_variant(sa.Text(), "sqlite")
UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the four ingest tables and their indexes."""
    op.create_table(
        "gateways",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("registered_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_gateways"),
    )
    op.create_table(
        "batches",
        sa.Column("id", SURROGATE_KEY, autoincrement=True, nullable=False),
        sa.Column("gateway_id", sa.String(128), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(256), nullable=False),
        sa.Column("received_at", UTC_TIME, nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["gateway_id"], ["gateways.id"], name="fk_batches_gateway_id_gateways"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_batches"),
    )
    op.create_table(
        "events",
        sa.Column("gateway_id", sa.String(128), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("channel", sa.String(64), nullable=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("quantity", QUANTITY, nullable=True),
        sa.Column("unit", sa.String(64), nullable=True),
        sa.Column("occurred_at", UTC_TIME, nullable=False),
        sa.Column("observed_at", UTC_TIME, nullable=False),
        sa.Column("clock", sa.String(16), nullable=False),
        sa.Column("attrs", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("batch_id", SURROGATE_KEY, nullable=False),
        sa.Column("received_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["gateway_id"], ["gateways.id"], name="fk_events_gateway_id_gateways"
        ),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], name="fk_events_batch_id_batches"),
        sa.PrimaryKeyConstraint("gateway_id", "seq", name="pk_events"),
    )
    op.create_index("ix_events_device_id_occurred_at", "events", ["device_id", "occurred_at"])
    op.create_index("ix_events_occurred_at", "events", ["occurred_at"])
    op.create_table(
        "incidents",
        sa.Column("id", SURROGATE_KEY, autoincrement=True, nullable=False),
        sa.Column("gateway_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_incidents"),
    )
    op.create_index("ix_incidents_gateway_id_kind", "incidents", ["gateway_id", "kind"])


def downgrade() -> None:
    """Drop everything `upgrade` created."""
    op.drop_index("ix_incidents_gateway_id_kind", table_name="incidents")
    op.drop_table("incidents")
    op.drop_index("ix_events_occurred_at", table_name="events")
    op.drop_index("ix_events_device_id_occurred_at", table_name="events")
    op.drop_table("events")
    op.drop_table("batches")
    op.drop_table("gateways")
