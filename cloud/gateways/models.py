"""Gateway tables: enrolled gateways, their key history, sites and single-use enrollment codes."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, SurrogateKey, UtcDateTime


class Site(Base):
    """A place where gateways are installed (the billing side extends it later)."""

    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Gateway(Base):
    """An enrolled gateway and its current Ed25519 public key (PEM, SubjectPublicKeyInfo).

    `site_id` names a site (no foreign key: the column was added to an existing table, which
    SQLite cannot alter); gateways registered by hand with `gateway add` have none.
    """

    __tablename__ = "gateways"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    public_key_pem: Mapped[str] = mapped_column(Text)
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    site_id: Mapped[str | None] = mapped_column(String(64))
    hostname: Mapped[str | None] = mapped_column(String(255))
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoke_reason: Mapped[str | None] = mapped_column(Text)


class GatewayKey(Base):
    """Every key a gateway has had; the current one has no `valid_to`."""

    __tablename__ = "gateway_keys"
    __table_args__ = (Index(None, "gateway_id", "valid_from"),)

    id: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"))
    public_key_pem: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime)


class EnrollmentCode(Base):
    """A single-use enrollment code for a site; only the SHA-256 of the code is stored."""

    __tablename__ = "enrollment_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    gateway_id: Mapped[str | None] = mapped_column(String(128))
