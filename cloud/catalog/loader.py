"""`catalog load`: one TOML file declaring sites, profiles, combined session rules, metrics, plans
(with their versions), tax rates, accounts, devices and bindings, applied idempotently in the
caller's transaction (docs/catalog.md is the reference, generated from the models below).

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
identically is left alone; one that exists with other values is updated through the same
correction rules as the API (`cloud.invoices.corrections`): a metric, a profile's session rule or
a plan version a finalized invoice used is refused (409 `catalog_in_use` naming the object by id
and the invoice); what never changes (a plan's currency, an account's kind, currency, time zone
or series, a binding's account) is an error naming the object and the fields. Stored objects the
file does not mention are left alone. Plan versions are matched by `effective_from`, bindings by
(device_id, valid_from). On any error the caller's transaction rolls back, so a file is applied
entirely or not at all; a dry run (`tollgate-cloud catalog load --dry-run`) applies it in a
transaction that is rolled back, and reports each object's action with its changed fields.
Errors name objects by id ("plan basic version 2 (from ...), charge tv-hours: unit_price"), not
by their position in the file. Combined session rules (`cloud.catalog.combined_rules`) never
change: a declared rule that exists with other values is an error naming it.
"""

import tomllib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog import accounts, bindings, devices, metrics, plans
from cloud.catalog.checks import check_aware, check_labels, check_name
from cloud.catalog.combined_rules import CombinedRuleDecl, apply_combined_rule
from cloud.catalog.metric_warnings import charge_warnings, metric_warnings
from cloud.catalog.models import Account, Binding, Device, DeviceProfile, Metric, Plan
from cloud.catalog.plan_terms import PlanTerms
from cloud.catalog.schemas import MAX_TIMEOUT_SECONDS
from cloud.catalog.tax_rates import TaxRateDecl, apply_tax_rate
from cloud.domain import Aggregation, DurationUnit, MetricField, MetricSource, MetricSpec
from cloud.errors import AlreadyExists, CollectorError, InvalidBillingInput, error_locations
from cloud.gateways.enrollment import add_site
from cloud.gateways.models import Site


class _Declaration(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SiteDecl(_Declaration):
    """A site (as `tollgate-cloud site add`)."""

    id: str = Field(description="the site's id, named by devices' `site_id`")
    name: str = Field(description="display name (1 to 200 characters)")


class ProfileDecl(_Declaration):
    """A device profile and its session rule."""

    id: str = Field(description="the profile's id, named by devices and metrics")
    name: str = Field(description="display name (1 to 200 characters)")
    start_on: list[str] = Field(
        default_factory=list,
        description="event names that start a session, per (device, channel); empty: the "
        "profile's devices form no sessions",
    )
    end_on: list[str] = Field(default_factory=list, description="event names that end a session")
    timeout_seconds: int | None = Field(
        default=None,
        gt=0,
        le=MAX_TIMEOUT_SECONDS,
        description="close a session after this long without activity; omitted: never",
    )
    expected_interval_seconds: int | None = Field(
        default=None,
        gt=0,
        le=MAX_TIMEOUT_SECONDS,
        description="its devices report at least this often, else a silent_device incident; "
        "omitted: unchecked",
    )


class MetricDecl(_Declaration):
    """A metric."""

    id: str = Field(description="the metric's id, named by plan charges")
    name: str = Field(description="display name, shown on invoice lines")
    source: MetricSource = Field(description="what it aggregates: sessions or events")
    aggregation: Aggregation = Field(
        description="count (sessions begun or events), sum, max or latest of `field`, "
        "unique_count (distinct devices)"
    )
    field: MetricField | None = Field(
        default=None,
        description="what sum, max and latest read: duration (sessions) or quantity (events)",
    )
    profiles: list[str] = Field(
        default_factory=list,
        description="only these profiles' devices (or one combined rule's id); empty: all",
    )
    names: list[str] = Field(
        default_factory=list, description="only events of these names; empty: all"
    )
    unit: str | None = Field(
        default=None, description="only events in this unit (as the events say it, e.g. kWh)"
    )
    duration_unit: DurationUnit = Field(
        default=DurationUnit.HOUR, description="the unit durations are billed in"
    )


class PlanDecl(_Declaration):
    """A plan and its versions (each a `PlanTerms` document)."""

    id: str = Field(description="the plan's id, named by accounts' `plan_id`")
    name: str = Field(description="display name (1 to 200 characters)")
    currency: str = Field(description="ISO 4217, e.g. EUR; never changes")
    versions: list[PlanTerms] = Field(
        default_factory=list,
        description="its versions, matched by `effective_from`; each in force until the next",
    )


class AddressDecl(_Declaration):
    """A billing address (EN 16931 BG-8): 1 to 4 lines, postcode, city, ISO alpha-2 country."""

    lines: list[str] = Field(description="1 to 4 street lines")
    postcode: str = Field(description="postal code")
    city: str = Field(description="city")
    country: str = Field(description="ISO 3166 alpha-2, e.g. DE")


class AccountDecl(_Declaration):
    """An account."""

    id: str = Field(description="the account's id, named by bindings")
    name: str = Field(description="display name (1 to 200 characters)")
    kind: accounts.AccountKind = Field(description="household or company (never changes)")
    currency: str = Field(description="ISO 4217, e.g. EUR: its plan's currency (never changes)")
    time_zone: str = Field(
        description="IANA name, e.g. Europe/Berlin: billing periods are its local months "
        "(never changes)"
    )
    plan_id: str | None = Field(default=None, description="its plan; omitted: none")
    invoice_series: str = Field(
        default=accounts.DEFAULT_SERIES,
        description="the series its invoice numbers are drawn from (never changes)",
    )
    # The buyer on its invoices, as the API's account fields (cloud.catalog.accounts.set_billing
    # checks each); a field the file leaves out is left as stored.
    billing_name: str | None = Field(default=None, description="name on invoices (default: name)")
    address: AddressDecl | None = Field(
        default=None,
        description="postal address on invoices, a table {lines, postcode, city, country}",
    )
    country: str | None = Field(
        default=None, description="tax country, ISO 3166 alpha-2; omitted: no VAT is charged"
    )
    vat_id: str | None = Field(
        default=None, description="VAT id with its country prefix, checksum checked"
    )
    customer_number: str | None = Field(default=None, description="shown on invoices")
    payment_terms_days: int | None = Field(
        default=None, description="days from issue to due date, 0 to 365 (default 14)"
    )
    locale: str | None = Field(
        default=None, description="Babel locale of its documents, e.g. de_DE"
    )

    def billing_fields(self) -> dict[str, Any]:
        """The billing fields the file declares (JSON-ready)."""
        declared = self.model_dump(mode="json", include=set(accounts.BILLING_FIELDS))
        return {
            name: declared[name]
            for name in accounts.BILLING_FIELDS
            if name in self.model_fields_set
        }


class DeviceDecl(_Declaration):
    """A device."""

    id: str = Field(description="the `device_id` its events carry")
    name: str = Field(description="display name (1 to 200 characters)")
    profile_id: str = Field(description="its profile (session rule)")
    site_id: str | None = Field(default=None, description="its site; omitted: none")


class BindingDecl(_Declaration):
    """A binding of a device to an account over [valid_from, valid_to)."""

    device_id: str = Field(description="the device billed")
    account_id: str = Field(description="the account billed (never changes: end and bind anew)")
    valid_from: datetime = Field(description="billed from this instant on (matches the binding)")
    valid_to: datetime | None = Field(
        default=None, description="billed until this instant, exclusive; omitted: open-ended"
    )


class CatalogFile(_Declaration):
    """The whole file; each list is optional."""

    sites: list[SiteDecl] = Field(default_factory=list)
    profiles: list[ProfileDecl] = Field(default_factory=list)
    combined_rules: list[CombinedRuleDecl] = Field(default_factory=list)  # .combined_rules
    metrics: list[MetricDecl] = Field(default_factory=list)
    plans: list[PlanDecl] = Field(default_factory=list)
    accounts: list[AccountDecl] = Field(default_factory=list)
    devices: list[DeviceDecl] = Field(default_factory=list)
    bindings: list[BindingDecl] = Field(default_factory=list)
    tax_rates: list[TaxRateDecl] = Field(default_factory=list)  # cloud.catalog.tax_rates


KINDS = (
    "sites",
    "profiles",
    "combined rules",
    "metrics",
    "plans",
    "plan versions",
    "accounts",
    "devices",
    "bindings",
    "tax rates",
)

CREATE, UPDATE, UNCHANGED = "create", "update", "unchanged"

# The guard of what finalized invoices used, called before a metric, a profile's session rule
# or a plan version changes: guard(session, kind, key) with kind "metric" (key (id,)),
# "profile" ((id,)) or "version" ((plan id, number)); it raises to refuse. The catalog cannot
# see invoices: the caller passes `cloud.invoices.corrections.used_by`.
Guard = Callable[[AsyncSession, str, tuple[str, ...]], Awaitable[None]]


@dataclass(frozen=True)
class Change:
    """One field of a stored object the file changes: its stored and its declared value."""

    field: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.field}: {_shown(self.old)} -> {_shown(self.new)}"


@dataclass(frozen=True)
class Outcome:
    """What loading did (or, in a dry run, would do) with one declared object."""

    kind: str
    key: str
    action: str  # create | update | unchanged
    changes: tuple[Change, ...] = ()

    def __str__(self) -> str:
        changed = "".join(f"\n    {change}" for change in self.changes)
        return f"{self.action} {self.key}{changed}"


@dataclass
class LoadReport:
    """Each declared object's outcome, warnings, and the ids whose billing may have changed."""

    outcomes: list[Outcome] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    metrics: set[str] = field(default_factory=set)  # created or updated
    plans: set[str] = field(default_factory=set)  # a version created or replaced
    profiles: set[str] = field(default_factory=set)  # session rule changed
    accounts: set[str] = field(default_factory=set)  # plan changed, or a binding changed

    def count(self, kind: str, action: str) -> int:
        """How many objects of `kind` got `action`."""
        return sum(1 for o in self.outcomes if o.kind == kind and o.action == action)

    @property
    def created(self) -> dict[str, int]:
        """Objects created, per kind."""
        return {kind: self.count(kind, CREATE) for kind in self._kinds()}

    @property
    def unchanged(self) -> dict[str, int]:
        """Objects already as declared, per kind."""
        return {kind: self.count(kind, UNCHANGED) for kind in self._kinds()}

    def summary(self) -> str:
        """One line per kind that the file mentioned."""
        return "\n".join(
            f"{kind}: {self.count(kind, CREATE)} created, {self.count(kind, UPDATE)} updated, "
            f"{self.count(kind, UNCHANGED)} unchanged"
            for kind in self._kinds()
        )

    def plan(self) -> str:
        """Every declared object's action, with each changed field old -> new."""
        return "\n".join(str(outcome) for outcome in self.outcomes)

    def _kinds(self) -> list[str]:
        seen = dict.fromkeys(o.kind for o in self.outcomes)
        return [k for k in KINDS if k in seen] + [k for k in seen if k not in KINDS]


def parse_catalog(text: str) -> CatalogFile:
    """The declarations of a TOML catalog file; `InvalidBillingInput` naming what is wrong."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidBillingInput(f"not a valid TOML catalog: {exc}") from exc
    return validate_catalog(document)


def validate_catalog(document: Mapping[str, Any]) -> CatalogFile:
    """The declarations of an already parsed document; an error names the object by its id
    ("plan depot-basic version 2, charge door_opens: unit_price: ..."), not its position."""
    try:
        return CatalogFile.model_validate(document)
    except ValidationError as exc:
        errors = error_locations(exc.errors())
        for error in errors:
            error["object"] = object_path(document, error["loc"])
        first = errors[0]
        raise InvalidBillingInput(
            f"catalog file: {first['object']}: {first['msg']}", detail={"errors": errors}
        ) from exc


_SINGULAR = {"versions": "version", "charges": "charge", "tiers": "tier"}


def object_path(document: Any, loc: Sequence[Any]) -> str:
    """A pydantic location in the document named by ids: ("plans", 0, "versions", 1,
    "charges", 0, "unit_price") -> "plan basic version 2 (from 2026-11-01T00:00:00+01:00),
    charge tv-hours: unit_price"."""
    parts: list[str] = []
    fields: list[str] = []
    node: Any = document
    index = 0
    while index < len(loc):
        name = loc[index]
        child = node.get(name) if isinstance(node, Mapping) else None
        position = loc[index + 1] if index + 1 < len(loc) else None
        if isinstance(child, list) and isinstance(position, int) and position < len(child):
            parts.append(_item_label(str(name), position, child[position]))
            node, index = child[position], index + 2
            continue
        fields.append(str(name))
        node, index = child, index + 1
    where = ", ".join(parts) or "document"
    return f"{where}: {'.'.join(fields)}" if fields else where


def _item_label(kind: str, position: int, item: Any) -> str:
    singular = _SINGULAR.get(kind, kind.removesuffix("s").replace("_", " "))
    values = item if isinstance(item, Mapping) else {}
    if kind == "versions":
        since = values.get("effective_from")
        return f"version {position + 1}" + (f" (from {_shown(since)})" if since else "")
    if kind == "charges" and "metric" in values:
        return f"charge {values['metric']}"
    if kind == "members" and "profile" in values:
        return f"member {values['profile']}"
    if kind == "bindings" and "device_id" in values:
        return f"binding {values['device_id']} from {_shown(values.get('valid_from'))}"
    if "id" in values:
        return f"{singular} {values['id']}"
    return f"{singular} {position + 1}"


async def load_catalog(
    *,
    session: AsyncSession,
    catalog: CatalogFile,
    guard: Guard | None = None,
    now: datetime | None = None,
) -> LoadReport:
    """Create what the catalog declares and is missing, update what differs (through the same
    correction rules as the API: `guard` refuses a metric, rule or version an invoice used),
    leave the rest; warnings for metrics and charges that match none of their devices' events.

    Without a `guard` nothing is ever updated: an object that exists with other values is an
    error naming it and the fields (a file as a pure declaration, for callers below invoices).
    """
    report = LoadReport()
    loader = _Loader(session=session, report=report, guard=guard, now=now or datetime.now(UTC))
    for decl in catalog.sites:
        await _apply(report, "sites", f"site {decl.id}", loader.site(decl))
    for profile in catalog.profiles:
        await _apply(report, "profiles", f"profile {profile.id}", loader.profile(profile))
    for rule in catalog.combined_rules:
        step = apply_combined_rule(session=session, decl=rule)
        await _apply(report, "combined rules", f"combined rule {rule.id}", step)
    for metric in catalog.metrics:
        await _apply(report, "metrics", f"metric {metric.id}", loader.metric(metric))
    for plan in catalog.plans:
        await _apply(report, "plans", f"plan {plan.id}", loader.plan(plan))
        for terms in plan.versions:
            where = f"plan {plan.id} version from {terms.effective_from.isoformat()}"
            await _apply(report, "plan versions", where, loader.version(plan.id, terms))
    for rate in catalog.tax_rates:
        where = f"tax rate {rate.country} {rate.category} from {rate.valid_from.isoformat()}"
        await _apply(report, "tax rates", where, apply_tax_rate(session=session, decl=rate))
    for account in catalog.accounts:
        await _apply(report, "accounts", f"account {account.id}", loader.account(account))
    for device in catalog.devices:
        await _apply(report, "devices", f"device {device.id}", loader.device(device))
    for binding in catalog.bindings:
        where = f"binding {binding.device_id} from {binding.valid_from.isoformat()}"
        await _apply(report, "bindings", where, loader.binding(binding))
    return report


async def _apply(
    report: LoadReport, kind: str, where: str, step: Awaitable[bool | Outcome]
) -> None:
    """Run one declaration's step (True: created, False: unchanged, or its `Outcome`); errors
    are re-raised naming the object by id."""
    try:
        done = await step
    except CollectorError as exc:
        raise type(exc)(f"{where}: {exc.message}", detail={**exc.detail, "object": where}) from exc
    if isinstance(done, bool):
        done = Outcome(kind, where, CREATE if done else UNCHANGED)
    report.outcomes.append(Outcome(kind, where, done.action, done.changes))


def _differences(stored: Mapping[str, Any], declared: Mapping[str, Any]) -> tuple[Change, ...]:
    return tuple(
        Change(name, stored[name], declared[name])
        for name in declared
        if stored[name] != declared[name]
    )


def _refuse_changes(kind: str, key: str, changes: Sequence[Change], why: str) -> None:
    """`AlreadyExists` naming fields the loader cannot change."""
    if changes:
        listed = "; ".join(str(change) for change in changes)
        raise AlreadyExists(
            f"{kind} {key!r} already exists with other values ({listed}): {why}",
            detail={"fields": [change.field for change in changes]},
        )


async def _no_guard(session: AsyncSession, kind: str, key: tuple[str, ...]) -> None:
    """Never called with changes: `_may_update` refused them first."""


def _outcome(kind: str, changes: Sequence[Change]) -> Outcome:
    return Outcome(kind, "", UPDATE if changes else UNCHANGED, tuple(changes))


@dataclass
class _Loader:
    """The steps of one load: each creates, updates or leaves one declared object."""

    session: AsyncSession
    report: LoadReport
    guard: Guard | None
    now: datetime

    def _may_update(self, kind: str, key: str, changes: Sequence[Change]) -> Guard:
        """The guard, if updates are allowed; without one, a change is an error naming it."""
        if self.guard is None:
            _refuse_changes(kind, key, changes, "this load never overwrites (no invoice guard)")
        return self.guard or _no_guard

    async def site(self, decl: SiteDecl) -> bool | Outcome:
        """A site: created, or renamed."""
        stored = await self.session.get(Site, decl.id)
        if stored is None:
            await add_site(session=self.session, site_id=decl.id, name=decl.name)
            return True
        changes = _differences({"name": stored.name}, {"name": decl.name.strip()})
        self._may_update("site", decl.id, changes)
        if changes:
            stored.name = check_name(decl.name)
            await self.session.flush()
        return _outcome("sites", changes)

    async def profile(self, decl: ProfileDecl) -> bool | Outcome:
        """A profile: created; renamed or its silence interval changed; its session rule
        changed (guarded: a rule an invoice used stays) and its devices' sessions queued."""
        stored = await self.session.get(DeviceProfile, decl.id)
        if stored is None:
            await devices.create_profile(
                session=self.session,
                profile_id=decl.id,
                name=decl.name,
                start_on=decl.start_on,
                end_on=decl.end_on,
                timeout_seconds=decl.timeout_seconds,
                expected_interval_seconds=decl.expected_interval_seconds,
            )
            return True
        rule_fields = ("start_on", "end_on", "timeout_seconds")
        declared = {
            "name": decl.name.strip(),
            "start_on": check_labels(decl.start_on, field="start_on"),
            "end_on": check_labels(decl.end_on, field="end_on"),
            "timeout_seconds": decl.timeout_seconds,
            "expected_interval_seconds": decl.expected_interval_seconds,
        }
        changes = _differences(_fields(stored, *declared), declared)
        guard = self._may_update("profile", decl.id, changes)
        if any(change.field in rule_fields for change in changes):
            await guard(self.session, "profile", (decl.id,))
            await devices.set_profile_rule(
                session=self.session,
                profile_id=decl.id,
                start_on=decl.start_on,
                end_on=decl.end_on,
                timeout_seconds=decl.timeout_seconds,
            )
            self.report.profiles.add(decl.id)
        stored.name = check_name(decl.name)
        stored.expected_interval_seconds = devices.check_expected_interval(
            decl.expected_interval_seconds
        )
        await self.session.flush()
        return _outcome("profiles", changes)

    async def metric(self, decl: MetricDecl) -> bool | Outcome:
        """A metric: created, or changed (guarded: a metric an invoice used stays)."""
        values = decl.model_dump(mode="json", exclude={"id", "name"})
        stored = await self.session.get(Metric, decl.id)
        if stored is None:
            row = await metrics.create_metric(
                session=self.session, metric_id=decl.id, name=decl.name, **values
            )
            await self._warn_metric(row)
            return True
        declared = metrics.build_spec(metric_id=decl.id, **values)
        before = {"name": stored.name, **_spec_fields(metrics.metric_spec(stored))}
        changes = _differences(before, {"name": decl.name.strip(), **_spec_fields(declared)})
        guard = self._may_update("metric", decl.id, changes)
        if changes:
            await guard(self.session, "metric", (decl.id,))
            row = await metrics.update_metric(
                session=self.session, metric_id=decl.id, changes={"name": decl.name, **values}
            )
            await self._warn_metric(row)
        return _outcome("metrics", changes)

    async def plan(self, decl: PlanDecl) -> bool | Outcome:
        """A plan: created, or renamed (its currency cannot change: accounts bill in it)."""
        stored = await self.session.get(Plan, decl.id)
        if stored is None:
            await plans.create_plan(
                session=self.session, plan_id=decl.id, name=decl.name, currency=decl.currency
            )
            return True
        changes = _differences(
            _fields(stored, "name", "currency"),
            {"name": decl.name.strip(), "currency": decl.currency},
        )
        fixed = [change for change in changes if change.field == "currency"]
        _refuse_changes("plan", decl.id, fixed, "a plan's currency never changes")
        self._may_update("plan", decl.id, changes)
        stored.name = check_name(decl.name)
        await self.session.flush()
        return _outcome("plans", changes)

    async def version(self, plan_id: str, terms: PlanTerms) -> bool | Outcome:
        """A plan version (matched by `effective_from`): appended, or its terms replaced
        (guarded: a version an invoice used stays)."""
        effective_from = terms.effective_from.astimezone(UTC)
        rows = await plans.version_rows(session=self.session, plan_id=plan_id)
        stored = next((row for row in rows if row.effective_from == effective_from), None)
        if stored is None:
            row = await plans.create_plan_version(
                session=self.session, plan_id=plan_id, terms=terms
            )
            await self._warn_charges(plan_id, row.version, terms)
            return True
        declared = terms.model_copy(update={"effective_from": effective_from}).model_dump()
        old = plans.version_terms(stored).model_dump()
        changes = _differences(old, declared)
        guard = self._may_update(f"plan {plan_id!r} version", str(stored.version), changes)
        if changes:
            await guard(self.session, "version", (plan_id, str(stored.version)))
            await plans.replace_plan_version(
                session=self.session, plan_id=plan_id, version=stored.version, terms=terms
            )
            await self._warn_charges(plan_id, stored.version, terms)
        return _outcome("plan versions", changes)

    async def account(self, decl: AccountDecl) -> bool | Outcome:
        """An account: created, renamed or put on another plan (kind, currency, time zone and
        series cannot change: invoices were issued under them)."""
        stored = await self.session.get(Account, decl.id)
        if stored is None:
            await accounts.create_account(
                session=self.session,
                account_id=decl.id,
                name=decl.name,
                kind=decl.kind,
                currency=decl.currency,
                time_zone=decl.time_zone,
                plan_id=decl.plan_id,
                invoice_series=decl.invoice_series,
            )
            await self._account_billing(decl, None)
            return True
        declared = decl.model_dump(exclude={"id", *accounts.BILLING_FIELDS})
        declared |= {"name": decl.name.strip()}
        changes = _differences(_fields(stored, *declared), declared)
        fixed = [change for change in changes if change.field not in ("name", "plan_id")]
        _refuse_changes("account", decl.id, fixed, "only its name and plan can change")
        self._may_update("account", decl.id, changes)
        for change in changes:
            if change.field == "name":
                await accounts.rename_account(
                    session=self.session, account_id=decl.id, name=decl.name
                )
            else:
                await accounts.set_account_plan(
                    session=self.session, account_id=decl.id, plan_id=decl.plan_id
                )
                self.report.accounts.add(decl.id)
        return _outcome("accounts", changes + await self._account_billing(decl, stored))

    async def _account_billing(
        self, decl: AccountDecl, stored: Account | None
    ) -> tuple[Change, ...]:
        """Set the billing fields the file declares on a new account (`stored` None), or on a
        stored one where they differ (an update: refused without an invoice guard)."""
        fields = decl.billing_fields()
        changes = () if stored is None else _differences(_fields(stored, *fields), fields)
        self._may_update("account", decl.id, changes)
        if (stored is None and fields) or changes:
            await accounts.set_billing(session=self.session, account_id=decl.id, fields=fields)
        return changes

    async def device(self, decl: DeviceDecl) -> bool | Outcome:
        """A device: created, renamed, moved to another profile (sessions recomputed) or site."""
        stored = await self.session.get(Device, decl.id)
        if stored is None:
            await devices.create_device(
                session=self.session,
                device_id=decl.id,
                name=decl.name,
                profile_id=decl.profile_id,
                site_id=decl.site_id,
            )
            return True
        declared = decl.model_dump(exclude={"id"}) | {"name": decl.name.strip()}
        changes = _differences(_fields(stored, *declared), declared)
        self._may_update("device", decl.id, changes)
        if changes:
            await devices.update_device(
                session=self.session,
                device_id=decl.id,
                name=decl.name,
                profile_id=decl.profile_id,
            )
            await devices.set_device_site(
                session=self.session, device_id=decl.id, site_id=decl.site_id
            )
            self.report.profiles.add(decl.profile_id)
        return _outcome("devices", changes)

    async def binding(self, decl: BindingDecl) -> bool | Outcome:
        """A binding (matched by device and `valid_from`): created, or its end changed (its
        account cannot change: end it and bind anew)."""
        valid_from = check_aware(decl.valid_from, field="valid_from")
        valid_to = None if decl.valid_to is None else check_aware(decl.valid_to, field="valid_to")
        stored = await self.session.scalar(
            select(Binding).where(
                Binding.device_id == decl.device_id, Binding.valid_from == valid_from
            )
        )
        if stored is None:
            await bindings.create_binding(
                session=self.session,
                device_id=decl.device_id,
                account_id=decl.account_id,
                valid_from=valid_from,
                valid_to=valid_to,
            )
            self.report.accounts.add(decl.account_id)
            return True
        changes = _differences(
            _fields(stored, "account_id", "valid_to"),
            {"account_id": decl.account_id, "valid_to": valid_to},
        )
        fixed = [change for change in changes if change.field == "account_id"]
        _refuse_changes(
            "binding", str(stored.id), fixed, "end it and bind the device to the other account"
        )
        self._may_update("binding", str(stored.id), changes)
        if changes:
            await bindings.end_binding(
                session=self.session, binding_id=stored.id, valid_to=valid_to
            )
            self.report.accounts.add(decl.account_id)
        return _outcome("bindings", changes)

    async def _warn_metric(self, row: Metric) -> None:
        self.report.metrics.add(row.id)
        spec = metrics.metric_spec(row)
        self.report.warnings.extend(
            await metric_warnings(session=self.session, spec=spec, now=self.now)
        )

    async def _warn_charges(self, plan_id: str, version: int, terms: PlanTerms) -> None:
        self.report.plans.add(plan_id)
        where = f"plan {plan_id} version {version}"
        self.report.warnings.extend(
            await charge_warnings(session=self.session, terms=terms, where=where, now=self.now)
        )


def _spec_fields(spec: MetricSpec) -> dict[str, Any]:
    return {
        "source": spec.source.value,
        "aggregation": spec.aggregation.value,
        "field": None if spec.field is None else spec.field.value,
        "profiles": sorted(spec.profiles),
        "names": sorted(spec.names),
        "unit": spec.unit,
        "duration_unit": spec.duration_unit.value,
    }


def _shown(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value)


def _fields(row: object, *names: str) -> dict[str, Any]:
    return {name: getattr(row, name) for name in names}
