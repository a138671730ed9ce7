"""The seller on every invoice (the operator), read from a TOML file named by $TOLLGATE_SELLER.

    [seller]
    name = "Tollgate Metering GmbH"
    street = ["Hauptstr. 1"]          # address lines
    postcode = "10115"
    city = "Berlin"
    country = "DE"                    # ISO 3166 alpha-2: the seller's tax country
    vat_id = "DE136695976"
    email = "billing@example.com"
    iban = "DE89370400440532013000"
    bic = "COBADEFFXXX"
    account_name = "Tollgate Metering GmbH"

Validated once at load: an unknown field, a bad country, an invalid VAT id (checksum of its
country, python-stdnum) or IBAN (mod 97) is `InvalidSettings` naming the file and the field.
Not configured: `Settings.seller` is None, invoices say `"seller": null`.
"""

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from stdnum import bic as stdnum_bic
from stdnum import iban as stdnum_iban
from stdnum.eu import vat as stdnum_vat
from stdnum.exceptions import ValidationError as NumberInvalid

from cloud.errors import InvalidSettings

SELLER_ENV = "TOLLGATE_SELLER"
MAX_SELLER_FILE_BYTES = 64 * 1024
Text = Annotated[str, Field(min_length=1, max_length=200)]


def valid_vat_id(value: str) -> str:
    """The VAT id compacted ("DE 136 695 976" -> "DE136695976") if its country's checksum holds
    (EU ids by python-stdnum); `ValueError` otherwise."""
    try:
        return str(stdnum_vat.validate(value))
    except NumberInvalid as exc:
        raise ValueError(f"invalid VAT id {value!r}: {exc}") from None


def valid_iban(value: str) -> str:
    """The IBAN compacted if its check digits hold; `ValueError` otherwise."""
    try:
        return str(stdnum_iban.validate(value))
    except NumberInvalid as exc:
        raise ValueError(f"invalid IBAN {value!r}: {exc}") from None


class Seller(BaseModel):
    """The operator as it appears on invoices (EN 16931 BG-4 seller, BG-16 payment account)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Text
    street: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(max_length=4)
    postcode: Annotated[str, Field(min_length=1, max_length=16)]
    city: Text
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    vat_id: Annotated[str, Field(min_length=4, max_length=32)]
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=200)]
    iban: Annotated[str, Field(min_length=5, max_length=42)]
    bic: Annotated[str, Field(min_length=8, max_length=11)] | None = None
    account_name: Text | None = None

    @field_validator("vat_id")
    @classmethod
    def _vat_id(cls, value: str) -> str:
        return valid_vat_id(value)

    @field_validator("iban")
    @classmethod
    def _iban(cls, value: str) -> str:
        return valid_iban(value)

    @field_validator("bic")
    @classmethod
    def _bic(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(stdnum_bic.validate(value))
        except NumberInvalid as exc:
            raise ValueError(f"invalid BIC {value!r}: {exc}") from None

    def document(self) -> dict[str, Any]:
        """The invoice document's `seller` (see the contract in cloud.invoices.exports)."""
        return {
            "name": self.name,
            "address": {
                "lines": list(self.street),
                "postcode": self.postcode,
                "city": self.city,
                "country": self.country,
            },
            "vat_id": self.vat_id,
            "email": self.email,
            "bank": {
                "iban": self.iban,
                "bic": self.bic,
                "account_name": self.account_name or self.name,
            },
        }


def load_seller(path: str) -> Seller:
    """The seller of the TOML file at `path`; `InvalidSettings` naming the file and the field."""
    file = Path(path)
    try:
        with file.open("rb") as handle:
            raw = handle.read(MAX_SELLER_FILE_BYTES + 1)
    except OSError as exc:
        raise InvalidSettings(f"${SELLER_ENV} {path}: cannot read it ({exc.strerror})") from None
    if len(raw) > MAX_SELLER_FILE_BYTES:
        raise InvalidSettings(f"${SELLER_ENV} {path}: larger than {MAX_SELLER_FILE_BYTES} bytes")
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidSettings(f"${SELLER_ENV} {path}: not TOML ({exc})") from None
    section = document.get("seller")
    if not isinstance(section, dict) or set(document) != {"seller"}:
        raise InvalidSettings(f"${SELLER_ENV} {path}: expected one [seller] table and nothing else")
    try:
        return Seller.model_validate(section)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "seller"
        message = re.sub(r"^Value error, ", "", first["msg"])
        raise InvalidSettings(
            f"${SELLER_ENV} {path}: field seller.{field}: {message}",
            detail={"file": path, "field": f"seller.{field}"},
        ) from None
