"""Enrollment: sites, single-use enrollment codes, gateway key history and revocation.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SURROGATE_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create sites, enrollment_codes and gateway_keys; add site, host and revocation columns."""
    op.create_table(
        "sites",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sites"),
    )
    op.create_table(
        "enrollment_codes",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("expires_at", UTC_TIME, nullable=False),
        sa.Column("used_at", UTC_TIME, nullable=True),
        sa.Column("gateway_id", sa.String(128), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name="fk_enrollment_codes_site_id_sites"
        ),
        sa.PrimaryKeyConstraint("code_hash", name="pk_enrollment_codes"),
    )
    op.create_table(
        "gateway_keys",
        sa.Column("id", SURROGATE_KEY, autoincrement=True, nullable=False),
        sa.Column("gateway_id", sa.String(128), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("valid_from", UTC_TIME, nullable=False),
        sa.Column("valid_to", UTC_TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["gateway_id"], ["gateways.id"], name="fk_gateway_keys_gateway_id_gateways"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_gateway_keys"),
    )
    op.create_index(
        "ix_gateway_keys_gateway_id_valid_from", "gateway_keys", ["gateway_id", "valid_from"]
    )
    op.add_column("gateways", sa.Column("site_id", sa.String(64), nullable=True))
    op.add_column("gateways", sa.Column("hostname", sa.String(255), nullable=True))
    op.add_column("gateways", sa.Column("revoked_at", UTC_TIME, nullable=True))
    op.add_column("gateways", sa.Column("revoke_reason", sa.Text(), nullable=True))
    # Gateways registered before this revision: their key is the first entry of their history.
    op.execute(
        "INSERT INTO gateway_keys (gateway_id, public_key_pem, valid_from) "
        "SELECT id, public_key_pem, registered_at FROM gateways"
    )


def downgrade() -> None:
    """Drop everything `upgrade` created (the key history and revocations are lost)."""
    # Plain DROP COLUMN: SQLite has it since 3.35, and no constraint involves these columns.
    for column in ("revoke_reason", "revoked_at", "hostname", "site_id"):
        op.drop_column("gateways", column)
    op.drop_index("ix_gateway_keys_gateway_id_valid_from", table_name="gateway_keys")
    op.drop_table("gateway_keys")
    op.drop_table("enrollment_codes")
    op.drop_table("sites")
