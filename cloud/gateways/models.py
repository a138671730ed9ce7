"""The `gateways` table: one row per enrolled gateway, with the key its batches are signed by."""

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, UtcDateTime


class Gateway(Base):
    """An enrolled gateway and its Ed25519 public key (PEM, SubjectPublicKeyInfo)."""

    __tablename__ = "gateways"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    public_key_pem: Mapped[str] = mapped_column(Text)
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)
