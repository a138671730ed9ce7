"""The collector's schema: every table's model, and the Alembic migrations that build it.

Alembic is configured here in code (no alembic.ini), with `script_location` pointing at the
`cloud/migrations` package folder, so migrations work the same from a checkout or an installed
wheel. Migrations run on the caller's async engine through `run_sync`.
"""

import re
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.archive.models import ArchivedMonth
from cloud.auth.models import ApiKey, ShareLink
from cloud.catalog.combined_rules import CombinedSessionRule
from cloud.catalog.models import (
    Account,
    Binding,
    Device,
    DeviceProfile,
    Metric,
    Plan,
    PlanVersionRow,
)
from cloud.catalog.tax_rates import TaxRate
from cloud.console.models import ConsoleSession, ConsoleUser
from cloud.db import Base
from cloud.direct.models import DirectEventKey, ImportRun, Source, SourceUri
from cloud.fleet.models import DeviceTwin, GatewayTwin
from cloud.gateways.models import EnrollmentCode, Gateway, GatewayKey, Site
from cloud.incidents.models import Incident
from cloud.ingest.archived_heads import ArchivedHead
from cloud.ingest.models import ReceivedBatch, StoredEvent
from cloud.invoices.credit_note_models import CreditNote, CreditNoteLine, CreditNoteSeries
from cloud.invoices.models import Invoice, InvoiceEvidence, InvoiceLine, InvoiceSeries
from cloud.invoices.run_queue import InvoiceRun, InvoiceRunChunk
from cloud.session_work import SessionWork
from cloud.sessions.models import SessionRow
from cloud.thresholds.models import ThresholdFiring, UsageThreshold
from cloud.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookMessage

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
TABLES = (
    Site,
    Gateway,
    GatewayKey,
    EnrollmentCode,
    ReceivedBatch,
    StoredEvent,
    Incident,
    ApiKey,
    ShareLink,
    Plan,
    Account,
    DeviceProfile,
    Device,
    Binding,
    Metric,
    CombinedSessionRule,
    PlanVersionRow,
    TaxRate,
    SessionRow,
    SessionWork,
    InvoiceSeries,
    Invoice,
    InvoiceLine,
    InvoiceEvidence,
    InvoiceRun,
    InvoiceRunChunk,
    CreditNoteSeries,
    CreditNote,
    CreditNoteLine,
    Source,
    SourceUri,
    DirectEventKey,
    ImportRun,
    UsageThreshold,
    ThresholdFiring,
    DeviceTwin,
    GatewayTwin,
    WebhookEndpoint,
    WebhookMessage,
    WebhookDelivery,
    WebhookAttempt,
    ArchivedMonth,
    ArchivedHead,
    ConsoleUser,
    ConsoleSession,
)


# PostgreSQL's monthly partitions of `events` (migration 0017, cloud/ingest/partitions.py)
EVENT_PARTITION = re.compile(r"events_\d{4}_\d{2}")


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Autogenerate compares the models with the parent tables only: a partition `events_YYYY_MM`
    is storage of the `events` model, not a table of its own (pass as `include_name`)."""
    return not (type_ == "table" and EVENT_PARTITION.fullmatch(name or ""))


def target_metadata() -> MetaData:
    """The metadata of every collector table (what the migrations must produce)."""
    return Base.metadata


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config for the packaged migrations, optionally bound to a database URL."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolation: a literal % in a URL (an encoded password) must be doubled.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest migration revision shipped with this code."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


async def migrate(engine: AsyncEngine) -> None:
    """Upgrade the database to the newest revision, in one transaction."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None if it was never migrated."""
    async with engine.connect() as connection:
        return await connection.run_sync(_revision_of)


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _revision_of(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
