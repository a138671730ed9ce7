"""Billing tables: accounts, devices, bindings, metrics, plans, sessions, invoices, API keys.

Times are UTC (`UtcDateTime`); money and quantities are exact (`DecimalText`). A device's `id`
is the `device_id` its events carry (device ids are unique across the whole collector).
"""

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, DecimalText, SurrogateKey, UtcDateTime


class ApiKey(Base):
    """An API key: only its SHA-256 is stored; `prefix` (its first characters) names it."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(200))  # "admin" (later: "ingest:<source>")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Account(Base):
    """Who is billed: a household or a company, in one currency and one time zone."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # household | company
    currency: Mapped[str] = mapped_column(String(3))
    time_zone: Mapped[str] = mapped_column(String(64))
    plan_id: Mapped[str | None] = mapped_column(ForeignKey("plans.id"))
    invoice_series: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class DeviceProfile(Base):
    """A kind of device and how its events form sessions (no `start_on`: no sessions)."""

    __tablename__ = "device_profiles"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    start_on: Mapped[list[str]] = mapped_column(JSON)
    end_on: Mapped[list[str]] = mapped_column(JSON)
    timeout_seconds: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Device(Base):
    """A billable device: its id is the `device_id` of its events."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    site_id: Mapped[str | None] = mapped_column(ForeignKey("sites.id"))
    profile_id: Mapped[str] = mapped_column(ForeignKey("device_profiles.id"))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Binding(Base):
    """A device billed to an account over [valid_from, valid_to) (None: still bound)."""

    __tablename__ = "bindings"
    __table_args__ = (Index(None, "device_id", "valid_from"), Index(None, "account_id"))

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Metric(Base):
    """A billable metric (see `cloud.billing.domain.MetricSpec`)."""

    __tablename__ = "metrics"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16))
    aggregation: Mapped[str] = mapped_column(String(16))
    field: Mapped[str | None] = mapped_column(String(16))
    profiles: Mapped[list[str]] = mapped_column(JSON)
    names: Mapped[list[str]] = mapped_column(JSON)
    unit: Mapped[str | None] = mapped_column(String(64))
    duration_unit: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Plan(Base):
    """A price plan; its terms live in `PlanVersionRow`s."""

    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PlanVersionRow(Base):
    """One version of a plan's terms, effective from `effective_from` (a JSON document)."""

    __tablename__ = "plan_versions"

    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    effective_from: Mapped[datetime] = mapped_column(UtcDateTime)
    terms: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SessionRow(Base):
    """A computed session. Recomputation marks rows `current = False` and never deletes them,
    so an invoice's evidence keeps pointing at the sessions it was rated from."""

    __tablename__ = "sessions"
    __table_args__ = (Index(None, "current", "device_id", "channel", "started_at"),)

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(64))  # "" for events without a channel
    name: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_activity_at: Mapped[datetime] = mapped_column(UtcDateTime)
    close_reason: Mapped[str] = mapped_column(String(16))
    start_gateway_id: Mapped[str] = mapped_column(String(128))
    start_seq: Mapped[int] = mapped_column(BigInteger)
    event_keys: Mapped[list[list[Any]]] = mapped_column(JSON)  # [[gateway_id, seq], ...]
    event_count: Mapped[int] = mapped_column(Integer)
    current: Mapped[bool] = mapped_column(Boolean)
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SessionWork(Base):
    """A (device, channel) whose sessions must be recomputed from `since` on (written by ingest
    in the batch's own transaction, consumed by the session refresh)."""

    __tablename__ = "session_work"

    device_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    since: Mapped[datetime] = mapped_column(UtcDateTime)


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
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    grace_until: Mapped[datetime] = mapped_column(UtcDateTime)
    finalized_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


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


BILLING_TABLES = (
    ApiKey,
    Plan,
    Account,
    DeviceProfile,
    Device,
    Binding,
    Metric,
    PlanVersionRow,
    SessionRow,
    SessionWork,
    InvoiceSeries,
    Invoice,
    InvoiceLine,
    InvoiceEvidence,
)
