"""What billing is about: accounts, device profiles, devices, bindings, metrics and plans.

A device's `id` is the `device_id` its events carry (unique across the collector). Times are UTC;
plan terms are a JSON document (see `cloud.catalog.plan_terms`).
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, SurrogateKey, UtcDateTime


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
    # The buyer on its invoices (migration 0013; NULL on older rows, see cloud.invoices.parties):
    # address {"lines", "postcode", "city", "country"}, country the tax country (ISO alpha-2,
    # NULL: no VAT charged), customer_number NULL: the id, payment terms NULL: 14 days.
    billing_name: Mapped[str | None] = mapped_column(String(200))
    address: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    country: Mapped[str | None] = mapped_column(String(2))
    vat_id: Mapped[str | None] = mapped_column(String(32))
    customer_number: Mapped[str | None] = mapped_column(String(64))
    payment_terms_days: Mapped[int | None] = mapped_column(Integer)
    locale: Mapped[str | None] = mapped_column(String(32))


class DeviceProfile(Base):
    """A kind of device and how its events form sessions (no `start_on`: no sessions)."""

    __tablename__ = "device_profiles"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    start_on: Mapped[list[str]] = mapped_column(JSON)
    end_on: Mapped[list[str]] = mapped_column(JSON)
    timeout_seconds: Mapped[int | None] = mapped_column(Integer)
    # How often its devices report at least (the fleet's silence sweep); None: never checked.
    expected_interval_seconds: Mapped[int | None] = mapped_column(Integer)
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
    # When valid_to last changed (ended, or closed by a move); None: never since created.
    # Invoicing re-checks finalized invoices of an account whose bindings changed after them.
    changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Metric(Base):
    """A billable metric (see `cloud.domain.MetricSpec`)."""

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
