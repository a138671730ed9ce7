"""The enums and limits that the command line's help names as well as the domain modules.

Plain values (stdlib `enum` only): `tollgate-cloud ... --help` builds its parser from these
without importing SQLAlchemy models, pydantic schemas or the document renderers (issue 18).
The modules that own each idea import them from here, so there is one definition of each.
"""

import enum

BILLING_FIELDS = (
    "billing_name",
    "address",
    "country",
    "vat_id",
    "customer_number",
    "payment_terms_days",
    "locale",
)
"""The buyer's fields of an account (migration 0013), each nullable (cloud.catalog.accounts)."""
CHUNK_ACCOUNTS = 500  # accounts per transaction of an invoice run (cloud.invoices.service)
MAX_NOTE = 1000  # characters of an incident note (cloud.quality.schemas)
MAX_REASON = 500  # characters of a credit note's reason (cloud.invoices.credit_notes)
DEFAULT_SERIES = "INV"  # an account's invoice number series unless told (cloud.catalog.accounts)


class AccountKind(enum.StrEnum):
    """Who an account bills."""

    HOUSEHOLD = "household"
    COMPANY = "company"


class IncidentState(enum.StrEnum):
    """Where an incident is in its lifecycle."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class DeliveryState(enum.StrEnum):
    """Where a delivery is: waiting (or retrying), done, or out of attempts."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class FileFormat(enum.StrEnum):
    """The file formats `import` reads."""

    CSV = "csv"
    JSONL = "jsonl"


class ExportFormat(enum.StrEnum):
    """The formats an invoice exports to."""

    JSON = "json"
    CSV = "csv"
    HTML = "html"
    PDF = "pdf"
    FACTURX = "facturx"
    CII = "cii"


class NoteFormat(enum.StrEnum):
    """The formats a credit note exports to."""

    JSON = "json"
    HTML = "html"
    PDF = "pdf"
    FACTURX = "facturx"
    CII = "cii"
