"""Invoices: gap-free numbering series, invoices, their lines and each line's evidence."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, DecimalText, SurrogateKey, UtcDateTime


class InvoiceSeries(Base):
    """The next number of a gap-free invoice numbering series."""

    __tablename__ = "invoice_series"

    series: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_number: Mapped[int] = mapped_column(Integer)


class Invoice(Base):
    """One account's invoice for one billing period (a calendar month in its time zone)."""

    __tablename__ = "invoices"
    __table_args__ = (
        Index(None, "account_id", "period", unique=True),
        Index(None, "series", "number", unique=True),
    )

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    period_start: Mapped[datetime] = mapped_column(UtcDateTime)
    period_end: Mapped[datetime] = mapped_column(UtcDateTime)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))  # draft | finalized
    series: Mapped[str] = mapped_column(String(32))
    number: Mapped[int | None] = mapped_column(Integer)
    total: Mapped[Decimal] = mapped_column(DecimalText)
    # when the run computed it (wall clock: compared with events' received_at, bindings'
    # changed_at, ...), and the time it was rated as of (the run's `now`, where still-open
    # sessions were clipped); NULL as_of (rated before migration 0008): computed_at was both
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    as_of: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # the catalog as rated: {"devices": {device: profile}, "profiles": {profile: rule}}, where a
    # rule is {"start_on", "end_on", "timeout_seconds"}; NULL: rated before migration 0008
    rated_catalog: Mapped[dict[str, Any] | None] = mapped_column(JSON, deferred=True)
    grace_until: Mapped[datetime] = mapped_column(UtcDateTime)
    finalized_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # VAT (migration 0013): `total` is the net total; NULL on invoices drafted before it.
    tax_total: Mapped[Decimal | None] = mapped_column(DecimalText)
    gross_total: Mapped[Decimal | None] = mapped_column(DecimalText)
    # seller, buyer and payment terms frozen at finalization (NULL: a draft, or older)
    parties: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    issue_date: Mapped[date | None] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date)


class InvoiceLine(Base):
    """A line of an invoice; `n` counts from 1. Adjustments name the line they correct."""

    __tablename__ = "invoice_lines"

    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text)
    plan_id: Mapped[str | None] = mapped_column(String(64))
    plan_version: Mapped[int | None] = mapped_column(Integer)
    metric: Mapped[str | None] = mapped_column(String(64))
    part_start: Mapped[datetime] = mapped_column(UtcDateTime)
    part_end: Mapped[datetime] = mapped_column(UtcDateTime)
    quantity: Mapped[Decimal | None] = mapped_column(DecimalText)
    billable: Mapped[Decimal | None] = mapped_column(DecimalText)
    amount: Mapped[Decimal] = mapped_column(DecimalText)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    corrects_invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))
    corrects_line: Mapped[int | None] = mapped_column(Integer)
    # VAT frozen when drafted (migration 0013): UNCL5305 category and percent; NULL: older line
    tax_category: Mapped[str | None] = mapped_column(String(2))
    tax_rate: Mapped[Decimal | None] = mapped_column(DecimalText)


class InvoiceEvidence(Base):
    """What a line was rated from: a session piece (session_id + piece bounds) or an event."""

    __tablename__ = "invoice_evidence"
    __table_args__ = (Index(None, "invoice_id", "line_n"),)

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    line_n: Mapped[int] = mapped_column(Integer)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sessions.id"))
    piece_start: Mapped[datetime | None] = mapped_column(UtcDateTime)
    piece_end: Mapped[datetime | None] = mapped_column(UtcDateTime)
    gateway_id: Mapped[str | None] = mapped_column(String(128))
    seq: Mapped[int | None] = mapped_column(BigInteger)
