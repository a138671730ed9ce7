"""Credit notes: their gap-free series, the notes and their lines (migration 0014).

A credit note is issued final: it has its number from the moment it exists. Each line credits one
whole line of a finalized invoice; `(invoice_id, invoice_line)` is unique, so no line is ever
credited twice, whatever runs concurrently.
"""

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, ForeignKey, ForeignKeyConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, DecimalText, SurrogateKey, UtcDateTime


class CreditNoteSeries(Base):
    """The next number of a gap-free credit-note series ("INV-CN" for invoice series "INV")."""

    __tablename__ = "credit_note_series"

    series: Mapped[str] = mapped_column(String(40), primary_key=True)
    next_number: Mapped[int] = mapped_column(Integer)


class CreditNote(Base):
    """A credit note of one finalized invoice; amounts are positive (UNTDID 1001 type 381)."""

    __tablename__ = "credit_notes"
    __table_args__ = (Index(None, "series", "number", unique=True),)

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    series: Mapped[str] = mapped_column(String(40))
    number: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(Text)
    whole: Mapped[bool] = mapped_column(Boolean)  # asked for the whole invoice (lines: null)
    net: Mapped[Decimal] = mapped_column(DecimalText)
    tax: Mapped[Decimal] = mapped_column(DecimalText)
    gross: Mapped[Decimal] = mapped_column(DecimalText)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CreditNoteLine(Base):
    """One credited invoice line: its net amount, tax category and rate, copied."""

    __tablename__ = "credit_note_lines"
    __table_args__ = (
        Index(None, "invoice_id", "invoice_line", unique=True),
        ForeignKeyConstraint(
            ["invoice_id", "invoice_line"], ["invoice_lines.invoice_id", "invoice_lines.n"]
        ),
    )

    credit_note_id: Mapped[int] = mapped_column(ForeignKey("credit_notes.id"), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    invoice_id: Mapped[int] = mapped_column(SurrogateKey)
    invoice_line: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text)
    amount: Mapped[Decimal] = mapped_column(DecimalText)
    tax_category: Mapped[str] = mapped_column(String(2))
    tax_rate: Mapped[Decimal] = mapped_column(DecimalText)
