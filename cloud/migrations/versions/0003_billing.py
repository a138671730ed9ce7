"""Billing: API keys, accounts, device profiles, devices, bindings, metrics, plans and their
versions, sessions (with the ingest work queue), invoice series, invoices, lines and evidence.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SURROGATE_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
QUANTITY = sa.Numeric().with_variant(sa.Text(), "sqlite")
UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the billing tables."""
    op.create_table(
        "api_keys",
        sa.Column("id", SURROGATE_KEY, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("revoked_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_table(
        "device_profiles",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("start_on", sa.JSON(), nullable=False),
        sa.Column("end_on", sa.JSON(), nullable=False),
        sa.Column("timeout_seconds", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_device_profiles"),
    )
    op.create_table(
        "invoice_series",
        sa.Column("series", sa.String(length=32), nullable=False),
        sa.Column("next_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("series", name="pk_invoice_series"),
    )
    op.create_table(
        "metrics",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("aggregation", sa.String(length=16), nullable=False),
        sa.Column("field", sa.String(length=16), nullable=True),
        sa.Column("profiles", sa.JSON(), nullable=False),
        sa.Column("names", sa.JSON(), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=True),
        sa.Column("duration_unit", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_metrics"),
    )
    op.create_table(
        "plans",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_plans"),
    )
    op.create_table(
        "session_work",
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("since", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("device_id", "channel", name="pk_session_work"),
    )
    op.create_table(
        "sessions",
        sa.Column("id", SURROGATE_KEY, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("started_at", UTC_TIME, nullable=False),
        sa.Column("ended_at", UTC_TIME, nullable=True),
        sa.Column("last_activity_at", UTC_TIME, nullable=False),
        sa.Column("close_reason", sa.String(length=16), nullable=False),
        sa.Column("start_gateway_id", sa.String(length=128), nullable=False),
        sa.Column("start_seq", sa.BigInteger(), nullable=False),
        sa.Column("event_keys", sa.JSON(), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("computed_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
    )
    op.create_index(
        ("ix_sessions_current_device_id_channel_started_at"),
        "sessions",
        ["current", "device_id", "channel", "started_at"],
        unique=False,
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=True),
        sa.Column("invoice_series", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name="fk_accounts_plan_id_plans"),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=True),
        sa.Column("profile_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["device_profiles.id"], name="fk_devices_profile_id_device_profiles"
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name="fk_devices_site_id_sites"),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
    )
    op.create_table(
        "plan_versions",
        sa.Column("plan_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("effective_from", UTC_TIME, nullable=False),
        sa.Column("terms", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name="fk_plan_versions_plan_id_plans"),
        sa.PrimaryKeyConstraint("plan_id", "version", name="pk_plan_versions"),
    )
    op.create_table(
        "bindings",
        sa.Column("id", SURROGATE_KEY, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("valid_from", UTC_TIME, nullable=False),
        sa.Column("valid_to", UTC_TIME, nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_bindings_account_id_accounts"
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_bindings_device_id_devices"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_bindings"),
    )
    op.create_index("ix_bindings_account_id", "bindings", ["account_id"], unique=False)
    op.create_index(
        ("ix_bindings_device_id_valid_from"), "bindings", ["device_id", "valid_from"], unique=False
    )
    op.create_table(
        "invoices",
        sa.Column("id", SURROGATE_KEY, autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("period_start", UTC_TIME, nullable=False),
        sa.Column("period_end", UTC_TIME, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("series", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=True),
        sa.Column("total", QUANTITY, nullable=False),
        sa.Column("computed_at", UTC_TIME, nullable=False),
        sa.Column("grace_until", UTC_TIME, nullable=False),
        sa.Column("finalized_at", UTC_TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_invoices_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_invoices"),
    )
    op.create_index(
        ("ix_invoices_account_id_period"), "invoices", ["account_id", "period"], unique=True
    )
    op.create_index("ix_invoices_series_number", "invoices", ["series", "number"], unique=True)
    op.create_table(
        "invoice_evidence",
        sa.Column("id", SURROGATE_KEY, autoincrement=True, nullable=False),
        sa.Column("invoice_id", SURROGATE_KEY, nullable=False),
        sa.Column("line_n", sa.Integer(), nullable=False),
        sa.Column("session_id", SURROGATE_KEY, nullable=True),
        sa.Column("piece_start", UTC_TIME, nullable=True),
        sa.Column("piece_end", UTC_TIME, nullable=True),
        sa.Column("gateway_id", sa.String(length=128), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name="fk_invoice_evidence_invoice_id_invoices"
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name="fk_invoice_evidence_session_id_sessions"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_invoice_evidence"),
    )
    op.create_index(
        ("ix_invoice_evidence_invoice_id_line_n"),
        "invoice_evidence",
        ["invoice_id", "line_n"],
        unique=False,
    )
    op.create_table(
        "invoice_lines",
        sa.Column("invoice_id", SURROGATE_KEY, nullable=False),
        sa.Column("n", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=True),
        sa.Column("plan_version", sa.Integer(), nullable=True),
        sa.Column("metric", sa.String(length=64), nullable=True),
        sa.Column("part_start", UTC_TIME, nullable=False),
        sa.Column("part_end", UTC_TIME, nullable=False),
        sa.Column("quantity", QUANTITY, nullable=True),
        sa.Column("billable", QUANTITY, nullable=True),
        sa.Column("amount", QUANTITY, nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("corrects_invoice_id", SURROGATE_KEY, nullable=True),
        sa.Column("corrects_line", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["corrects_invoice_id"],
            ["invoices.id"],
            name="fk_invoice_lines_corrects_invoice_id_invoices",
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name="fk_invoice_lines_invoice_id_invoices"
        ),
        sa.PrimaryKeyConstraint("invoice_id", "n", name="pk_invoice_lines"),
    )


def downgrade() -> None:
    """Drop the billing tables (all billing data is lost)."""
    op.drop_table("invoice_lines")
    op.drop_index("ix_invoice_evidence_invoice_id_line_n", table_name="invoice_evidence")
    op.drop_table("invoice_evidence")
    op.drop_index("ix_invoices_series_number", table_name="invoices")
    op.drop_index("ix_invoices_account_id_period", table_name="invoices")
    op.drop_table("invoices")
    op.drop_index("ix_bindings_device_id_valid_from", table_name="bindings")
    op.drop_index("ix_bindings_account_id", table_name="bindings")
    op.drop_table("bindings")
    op.drop_table("plan_versions")
    op.drop_table("devices")
    op.drop_table("accounts")
    op.drop_index("ix_sessions_current_device_id_channel_started_at", table_name="sessions")
    op.drop_table("sessions")
    op.drop_table("session_work")
    op.drop_table("plans")
    op.drop_table("metrics")
    op.drop_table("invoice_series")
    op.drop_table("device_profiles")
    op.drop_table("api_keys")
