"""Invoice guards: the database itself refuses to change a finalized invoice, its lines or its
evidence (UPDATE and DELETE of the invoice; INSERT, UPDATE and DELETE of its lines and evidence).

The services already refuse (`InvoiceFinalized`); these triggers also stop a stray SQL statement.
Finalizing (draft -> finalized) is an update of a draft, so it stays allowed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSAGE = "invoice_finalized: a finalized invoice never changes"
CHILDREN = ("invoice_lines", "invoice_evidence")


def upgrade() -> None:
    """Create the triggers (plpgsql functions on PostgreSQL, RAISE(ABORT) on SQLite)."""
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_upgrade()
    else:
        _sqlite_upgrade()


def downgrade() -> None:
    """Drop the triggers."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS invoices_finalized_guard ON invoices")
        for table in CHILDREN:
            for event in _PG_EVENTS:
                name = f"{table}_finalized_{event.lower()}"
                op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS tollgate_guard_finalized_invoice()")
        op.execute("DROP FUNCTION IF EXISTS tollgate_guard_finalized_invoice_part()")
        return
    for name in _sqlite_trigger_names():
        op.execute(f"DROP TRIGGER IF EXISTS {name}")


def _postgresql_upgrade() -> None:
    op.execute(
        f"""
        CREATE FUNCTION tollgate_guard_finalized_invoice() RETURNS trigger AS $$
        BEGIN
            IF OLD.status = 'finalized' THEN
                RAISE EXCEPTION '{MESSAGE} (invoice %)', OLD.id USING ERRCODE = 'check_violation';
            END IF;
            IF TG_OP = 'DELETE' THEN
                RETURN OLD;
            END IF;
            RETURN NEW;
        END
        $$ LANGUAGE plpgsql
        """
    )
    # Lines and evidence: one check per statement over its transition tables (a run inserts a
    # row of evidence per billed event; a per-row trigger would cost a query per row).
    op.execute(
        f"""
        CREATE FUNCTION tollgate_guard_finalized_invoice_part() RETURNS trigger AS $$
        DECLARE
            target bigint;
        BEGIN
            -- one primary-key lookup per distinct invoice of the statement (a join with the
            -- transition table, which has no statistics, may scan every invoice instead)
            IF TG_OP IN ('INSERT', 'UPDATE') THEN
                FOR target IN SELECT DISTINCT invoice_id FROM new_rows LOOP
                    IF EXISTS (SELECT 1 FROM invoices WHERE id = target AND status = 'finalized')
                    THEN
                        RAISE EXCEPTION '{MESSAGE} (invoice %)', target
                            USING ERRCODE = 'check_violation';
                    END IF;
                END LOOP;
            END IF;
            IF TG_OP IN ('UPDATE', 'DELETE') THEN
                FOR target IN SELECT DISTINCT invoice_id FROM old_rows LOOP
                    IF EXISTS (SELECT 1 FROM invoices WHERE id = target AND status = 'finalized')
                    THEN
                        RAISE EXCEPTION '{MESSAGE} (invoice %)', target
                            USING ERRCODE = 'check_violation';
                    END IF;
                END LOOP;
            END IF;
            RETURN NULL;
        END
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER invoices_finalized_guard BEFORE UPDATE OR DELETE ON invoices "
        "FOR EACH ROW EXECUTE FUNCTION tollgate_guard_finalized_invoice()"
    )
    for table in CHILDREN:
        for event, tables in _PG_EVENTS.items():
            op.execute(
                f"CREATE TRIGGER {table}_finalized_{event.lower()} AFTER {event} ON {table} "
                f"REFERENCING {tables} FOR EACH STATEMENT "
                "EXECUTE FUNCTION tollgate_guard_finalized_invoice_part()"
            )


_PG_EVENTS = {
    "INSERT": "NEW TABLE AS new_rows",
    "UPDATE": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "DELETE": "OLD TABLE AS old_rows",
}


def _finalized(row: str) -> str:
    return f"(SELECT status FROM invoices WHERE id = {row}.invoice_id) = 'finalized'"


def _sqlite_trigger_names() -> list[str]:
    names = ["invoices_finalized_no_update", "invoices_finalized_no_delete"]
    for table in CHILDREN:
        names += [f"{table}_finalized_no_{op_}" for op_ in ("insert", "update", "delete")]
    return names


def _sqlite_upgrade() -> None:
    abort = f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
    op.execute(
        "CREATE TRIGGER invoices_finalized_no_update BEFORE UPDATE ON invoices "
        f"WHEN OLD.status = 'finalized' {abort}"
    )
    op.execute(
        "CREATE TRIGGER invoices_finalized_no_delete BEFORE DELETE ON invoices "
        f"WHEN OLD.status = 'finalized' {abort}"
    )
    for table in CHILDREN:
        op.execute(
            f"CREATE TRIGGER {table}_finalized_no_insert BEFORE INSERT ON {table} "
            f"WHEN {_finalized('NEW')} {abort}"
        )
        op.execute(
            f"CREATE TRIGGER {table}_finalized_no_update BEFORE UPDATE ON {table} "
            f"WHEN {_finalized('OLD')} OR {_finalized('NEW')} {abort}"
        )
        op.execute(
            f"CREATE TRIGGER {table}_finalized_no_delete BEFORE DELETE ON {table} "
            f"WHEN {_finalized('OLD')} {abort}"
        )
