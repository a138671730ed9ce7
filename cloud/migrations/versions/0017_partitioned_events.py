"""The events table partitioned by UTC month on PostgreSQL; `archived_months` on both backends.

PostgreSQL: today's `events` becomes a table partitioned by RANGE (occurred_at), one partition
per UTC month named `events_YYYY_MM` ([first instant of the month, first instant of the next)).
A partitioned table's primary key must hold the partition key, so it is
(gateway_id, seq, occurred_at); (gateway_id, seq) stays unique because `store_batch` inserts only
seqs it found unstored under the gateway's row lock. The data is kept: partitions are created for
every month present (and the current month), the rows are copied with one INSERT ... SELECT, the
old table is dropped and the new one renamed; the primary key, the two indexes (on the parent,
so each partition gets its own) and the foreign keys to gateways and batches are created after
the copy. Later months get their partition from `cloud.ingest.partitions.ensure_partitions`.

SQLite keeps its one table: it has no declarative partitioning, and the embedded store is one
file on one machine whose months `tollgate-cloud archive` removes with a DELETE instead.

`archived_months` (both backends) records each month moved out by `tollgate-cloud archive`: its
file, the file's SHA-256 and what it holds (cloud/archive/models.py).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
SURROGATE_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

COLUMNS = (
    "gateway_id, seq, device_id, channel, name, kind, quantity, unit, occurred_at, observed_at, "
    "clock, attrs, prev_hash, hash, batch_id, received_at"
)
COLUMN_TYPES = """
    gateway_id VARCHAR(128) NOT NULL,
    seq BIGINT NOT NULL,
    device_id VARCHAR(128) NOT NULL,
    channel VARCHAR(64),
    name VARCHAR(64) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    quantity NUMERIC,
    unit VARCHAR(64),
    occurred_at TIMESTAMP WITH TIME ZONE NOT NULL,
    observed_at TIMESTAMP WITH TIME ZONE NOT NULL,
    clock VARCHAR(16) NOT NULL,
    attrs JSON NOT NULL,
    prev_hash VARCHAR(64) NOT NULL,
    hash VARCHAR(64) NOT NULL,
    batch_id BIGINT NOT NULL,
    received_at TIMESTAMP WITH TIME ZONE NOT NULL
"""


def upgrade() -> None:
    """Partition `events` by month (PostgreSQL) and create `archived_months`."""
    op.create_table(
        "archived_months",
        sa.Column("id", SURROGATE_KEY, autoincrement=True, nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("event_count", sa.BigInteger(), nullable=False),
        sa.Column("batch_count", sa.Integer(), nullable=False),
        sa.Column("archived_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_archived_months"),
        sa.UniqueConstraint("month", "part", name="uq_archived_months_month_part"),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"CREATE TABLE events_partitioned ({COLUMN_TYPES}) PARTITION BY RANGE (occurred_at)")
    stored = op.get_bind().execute(
        sa.text(
            "SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC') "
            "AS month FROM events"
        )
    )
    now = datetime.now(UTC)
    months = {date(now.year, now.month, 1)} | {row.month.date() for row in stored}
    for month in sorted(months):
        _create_partition("events_partitioned", month)
    op.execute(f"INSERT INTO events_partitioned ({COLUMNS}) SELECT {COLUMNS} FROM events")
    op.execute("DROP TABLE events")
    op.execute("ALTER TABLE events_partitioned RENAME TO events")
    op.execute(
        "ALTER TABLE events ADD CONSTRAINT pk_events PRIMARY KEY (gateway_id, seq, occurred_at)"
    )
    _indexes_and_keys()


def downgrade() -> None:
    """Back to one `events` table (archived months stay in their files); drop `archived_months`."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE TABLE events_single ({COLUMN_TYPES})")
        op.execute(f"INSERT INTO events_single ({COLUMNS}) SELECT {COLUMNS} FROM events")
        op.execute("DROP TABLE events")  # its partitions go with it
        op.execute("ALTER TABLE events_single RENAME TO events")
        op.execute("ALTER TABLE events ADD CONSTRAINT pk_events PRIMARY KEY (gateway_id, seq)")
        _indexes_and_keys()
    op.drop_table("archived_months")


def _create_partition(table: str, month: date) -> None:
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    op.execute(
        f"CREATE TABLE events_{month.year:04d}_{month.month:02d} PARTITION OF {table} "
        f"FOR VALUES FROM ('{month.isoformat()} 00:00:00+00') "
        f"TO ('{following.isoformat()} 00:00:00+00')"
    )


def _indexes_and_keys() -> None:
    op.create_index("ix_events_device_id_occurred_at", "events", ["device_id", "occurred_at"])
    op.create_index("ix_events_occurred_at", "events", ["occurred_at"])
    op.create_foreign_key(
        "fk_events_gateway_id_gateways", "events", "gateways", ["gateway_id"], ["id"]
    )
    op.create_foreign_key("fk_events_batch_id_batches", "events", "batches", ["batch_id"], ["id"])
