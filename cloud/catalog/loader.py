"""`catalog load`: one TOML file declaring sites, profiles, metrics, plans (with their versions),
accounts, devices and bindings, applied idempotently in the caller's transaction.

    [[profiles]]
    id = "tv"
    name = "Television"
    start_on = ["power_on"]
    end_on = ["power_off"]
    timeout_seconds = 14400

    [[plans]]
    id = "basic"
    name = "Basic"
    currency = "EUR"
    [[plans.versions]]
    effective_from = 2026-11-01T00:00:00+01:00
    base_fee = "9.90"
    [[plans.versions.charges]]
    metric = "tv-hours"
    model = "standard"
    unit_price = "0.10"

    [[bindings]]
    device_id = "tv-1"
    account_id = "smith"
    valid_from = 2026-11-01T00:00:00+01:00

An object that does not exist is created through the same service as the API; one that exists
identically is left alone; one that exists with other values is an error naming it and the
differing fields (nothing is ever overwritten: a file is a declaration, not a patch). Stored
objects the file does not mention are left alone. Plan versions are matched by
`effective_from`, bindings by (device_id, valid_from). On any error the caller's transaction
rolls back, so a file is applied entirely or not at all.
"""

import tomllib
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog import accounts, bindings, devices, metrics, plans
from cloud.catalog.checks import check_aware, check_labels
from cloud.catalog.models import Account, Binding, Device, DeviceProfile, Metric, Plan
from cloud.catalog.plan_terms import PlanTerms
from cloud.catalog.schemas import MAX_TIMEOUT_SECONDS
from cloud.errors import AlreadyExists, CollectorError, InvalidBillingInput, error_locations
from cloud.gateways.enrollment import add_site
from cloud.gateways.models import Site


class _Declaration(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SiteDecl(_Declaration):
    """A site (as `tollgate-cloud site add`)."""

    id: str
    name: str


class ProfileDecl(_Declaration):
    """A device profile and its session rule."""

    id: str
    name: str
    start_on: list[str] = Field(default_factory=list)
    end_on: list[str] = Field(default_factory=list)
    timeout_seconds: int | None = Field(default=None, gt=0, le=MAX_TIMEOUT_SECONDS)
    expected_interval_seconds: int | None = Field(default=None, gt=0, le=MAX_TIMEOUT_SECONDS)


class MetricDecl(_Declaration):
    """A metric."""

    id: str
    name: str
    source: str
    aggregation: str
    field: str | None = None
    profiles: list[str] = Field(default_factory=list)
    names: list[str] = Field(default_factory=list)
    unit: str | None = None
    duration_unit: str = "hour"


class PlanDecl(_Declaration):
    """A plan and its versions (each a `PlanTerms` document)."""

    id: str
    name: str
    currency: str
    versions: list[PlanTerms] = Field(default_factory=list)


class AccountDecl(_Declaration):
    """An account."""

    id: str
    name: str
    kind: str
    currency: str
    time_zone: str
    plan_id: str | None = None
    invoice_series: str = accounts.DEFAULT_SERIES


class DeviceDecl(_Declaration):
    """A device."""

    id: str
    name: str
    profile_id: str
    site_id: str | None = None


class BindingDecl(_Declaration):
    """A binding of a device to an account over [valid_from, valid_to)."""

    device_id: str
    account_id: str
    valid_from: datetime
    valid_to: datetime | None = None


class CatalogFile(_Declaration):
    """The whole file; each list is optional."""

    sites: list[SiteDecl] = Field(default_factory=list)
    profiles: list[ProfileDecl] = Field(default_factory=list)
    metrics: list[MetricDecl] = Field(default_factory=list)
    plans: list[PlanDecl] = Field(default_factory=list)
    accounts: list[AccountDecl] = Field(default_factory=list)
    devices: list[DeviceDecl] = Field(default_factory=list)
    bindings: list[BindingDecl] = Field(default_factory=list)


KINDS = (
    "sites",
    "profiles",
    "metrics",
    "plans",
    "plan versions",
    "accounts",
    "devices",
    "bindings",
)


@dataclass
class LoadReport:
    """How many objects of each kind were created and how many were already there."""

    created: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    unchanged: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))

    def summary(self) -> str:
        """One line per kind that the file mentioned."""
        return "\n".join(
            f"{kind}: {self.created[kind]} created, {self.unchanged[kind]} unchanged"
            for kind in KINDS
            if self.created[kind] or self.unchanged[kind]
        )


def parse_catalog(text: str) -> CatalogFile:
    """The declarations of a TOML catalog file; `InvalidBillingInput` naming what is wrong."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidBillingInput(f"not a valid TOML catalog: {exc}") from exc
    return validate_catalog(document)


def validate_catalog(document: Mapping[str, Any]) -> CatalogFile:
    """The declarations of an already parsed document."""
    try:
        return CatalogFile.model_validate(document)
    except ValidationError as exc:
        errors = error_locations(exc.errors())
        first = errors[0]
        where = ".".join(map(str, first["loc"]))
        raise InvalidBillingInput(
            f"catalog file: {where}: {first['msg']}", detail={"errors": errors}
        ) from exc


async def load_catalog(*, session: AsyncSession, catalog: CatalogFile) -> LoadReport:
    """Create what the catalog declares and is missing; refuse what differs from it."""
    report = LoadReport()
    for decl in catalog.sites:
        await _apply(report, "sites", decl.id, _site(session, decl))
    for profile in catalog.profiles:
        await _apply(report, "profiles", profile.id, _profile(session, profile))
    for metric in catalog.metrics:
        await _apply(report, "metrics", metric.id, _metric(session, metric))
    for plan in catalog.plans:
        await _apply(report, "plans", plan.id, _plan(session, plan))
        for terms in plan.versions:
            where = f"{plan.id} from {terms.effective_from.isoformat()}"
            await _apply(report, "plan versions", where, _version(session, plan.id, terms))
    for account in catalog.accounts:
        await _apply(report, "accounts", account.id, _account(session, account))
    for device in catalog.devices:
        await _apply(report, "devices", device.id, _device(session, device))
    for binding in catalog.bindings:
        where = f"{binding.device_id} from {binding.valid_from.isoformat()}"
        await _apply(report, "bindings", where, _binding(session, binding))
    return report


async def _apply(report: LoadReport, kind: str, where: str, step: Awaitable[bool]) -> None:
    """Run one declaration's step (True: created); errors are re-raised naming the object."""
    try:
        created = await step
    except CollectorError as exc:
        raise type(exc)(
            f"{kind} {where!r}: {exc.message}", detail={**exc.detail, "object": f"{kind} {where}"}
        ) from exc
    (report.created if created else report.unchanged)[kind] += 1


def _require_same(
    kind: str, key: str, stored: Mapping[str, Any], declared: Mapping[str, Any]
) -> None:
    differing = [name for name in declared if stored[name] != declared[name]]
    if differing:
        changes = "; ".join(
            f"{name}: stored {stored[name]!r}, file {declared[name]!r}" for name in differing
        )
        raise AlreadyExists(
            f"{kind} {key!r} already exists with other values ({changes}); "
            "the catalog loader never overwrites: change it through the API or CLI",
            detail={"fields": differing},
        )


async def _site(session: AsyncSession, decl: SiteDecl) -> bool:
    stored = await session.get(Site, decl.id)
    if stored is None:
        await add_site(session=session, site_id=decl.id, name=decl.name)
        return True
    _require_same("site", decl.id, {"name": stored.name}, {"name": decl.name.strip()})
    return False


async def _profile(session: AsyncSession, decl: ProfileDecl) -> bool:
    stored = await session.get(DeviceProfile, decl.id)
    if stored is None:
        await devices.create_profile(
            session=session,
            profile_id=decl.id,
            name=decl.name,
            start_on=decl.start_on,
            end_on=decl.end_on,
            timeout_seconds=decl.timeout_seconds,
            expected_interval_seconds=decl.expected_interval_seconds,
        )
        return True
    _require_same(
        "profile",
        decl.id,
        _fields(
            stored, "name", "start_on", "end_on", "timeout_seconds", "expected_interval_seconds"
        ),
        {
            "name": decl.name.strip(),
            "start_on": check_labels(decl.start_on, field="start_on"),
            "end_on": check_labels(decl.end_on, field="end_on"),
            "timeout_seconds": decl.timeout_seconds,
            "expected_interval_seconds": decl.expected_interval_seconds,
        },
    )
    return False


async def _metric(session: AsyncSession, decl: MetricDecl) -> bool:
    values = decl.model_dump(exclude={"id", "name"})
    stored = await session.get(Metric, decl.id)
    if stored is None:
        await metrics.create_metric(session=session, metric_id=decl.id, name=decl.name, **values)
        return True
    declared = metrics.build_spec(metric_id=decl.id, **values)
    stored_spec = metrics.metric_spec(stored)
    _require_same(
        "metric",
        decl.id,
        {"name": stored.name, "spec": stored_spec},
        {"name": decl.name.strip(), "spec": declared},
    )
    return False


async def _plan(session: AsyncSession, decl: PlanDecl) -> bool:
    stored = await session.get(Plan, decl.id)
    if stored is None:
        await plans.create_plan(
            session=session, plan_id=decl.id, name=decl.name, currency=decl.currency
        )
        return True
    _require_same(
        "plan",
        decl.id,
        _fields(stored, "name", "currency"),
        {"name": decl.name.strip(), "currency": decl.currency},
    )
    return False


async def _version(session: AsyncSession, plan_id: str, terms: PlanTerms) -> bool:
    effective_from = terms.effective_from.astimezone(UTC)
    rows = await plans.version_rows(session=session, plan_id=plan_id)
    stored = next((row for row in rows if row.effective_from == effective_from), None)
    if stored is None:
        await plans.create_plan_version(session=session, plan_id=plan_id, terms=terms)
        return True
    declared = terms.model_copy(update={"effective_from": effective_from})
    _require_same(
        f"plan {plan_id!r} version",
        str(stored.version),
        {"terms": plans.version_terms(stored).model_dump()},
        {"terms": declared.model_dump()},
    )
    return False


async def _account(session: AsyncSession, decl: AccountDecl) -> bool:
    stored = await session.get(Account, decl.id)
    if stored is None:
        await accounts.create_account(
            session=session,
            account_id=decl.id,
            name=decl.name,
            kind=decl.kind,
            currency=decl.currency,
            time_zone=decl.time_zone,
            plan_id=decl.plan_id,
            invoice_series=decl.invoice_series,
        )
        return True
    declared = decl.model_dump(exclude={"id"}) | {"name": decl.name.strip()}
    _require_same("account", decl.id, _fields(stored, *declared), declared)
    return False


async def _device(session: AsyncSession, decl: DeviceDecl) -> bool:
    stored = await session.get(Device, decl.id)
    if stored is None:
        await devices.create_device(
            session=session,
            device_id=decl.id,
            name=decl.name,
            profile_id=decl.profile_id,
            site_id=decl.site_id,
        )
        return True
    declared = decl.model_dump(exclude={"id"}) | {"name": decl.name.strip()}
    _require_same("device", decl.id, _fields(stored, *declared), declared)
    return False


async def _binding(session: AsyncSession, decl: BindingDecl) -> bool:
    valid_from = check_aware(decl.valid_from, field="valid_from")
    valid_to = None if decl.valid_to is None else check_aware(decl.valid_to, field="valid_to")
    stored = await session.scalar(
        select(Binding).where(Binding.device_id == decl.device_id, Binding.valid_from == valid_from)
    )
    if stored is None:
        await bindings.create_binding(
            session=session,
            device_id=decl.device_id,
            account_id=decl.account_id,
            valid_from=valid_from,
            valid_to=valid_to,
        )
        return True
    _require_same(
        "binding",
        str(stored.id),
        _fields(stored, "account_id", "valid_to"),
        {"account_id": decl.account_id, "valid_to": valid_to},
    )
    return False


def _fields(row: object, *names: str) -> dict[str, Any]:
    return {name: getattr(row, name) for name in names}
