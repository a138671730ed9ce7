"""A plan version's diff, and a price change saved as a NEW version after a preview.

The diff compares two versions' terms field by field (charges matched by metric: added, removed,
changed with old -> new). A change sets the base fee or one standard charge's unit price of a
version (the latest) and takes an `effective_from` no version of the plan has: stored versions
are never edited here. The preview is `catalog load --dry-run` (`load_catalog_file` with
`dry_run`: the plan's drafts re-rated in a transaction rolled back); saving appends the version
(`plans.create_plan_version`, which refuses an `effective_from` taken meanwhile) and re-drafts
the plan's drafts (`corrections.redraft`), as a catalog load that appends a version does.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from cloud.catalog import plans
from cloud.catalog.loader import CatalogFile, PlanDecl
from cloud.catalog.metric_warnings import charge_warnings
from cloud.catalog.models import Plan, PlanVersionRow
from cloud.catalog.plan_terms import PlanTerms
from cloud.db import Database
from cloud.domain import PriceModel
from cloud.errors import InvalidParameters
from cloud.invoices.corrections import Redrafted, drafts_of_plan, load_catalog_file, redraft
from cloud.settings import Settings

BASE_FEE = "base_fee"
CHARGE = "charge:"  # a target "charge:<metric>": that standard charge's unit_price
INSTANT = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")  # as <input type="datetime-local"> sends, UTC
MAX_PRICE = 40
MISSING = "-"


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field of the terms: its value in the old and in the new version (`-`: none)."""

    field: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class ChargeDiff:
    """A charge added, removed or changed between two versions, field by field."""

    metric: str
    action: str  # added | removed | changed
    changes: list[FieldChange]


@dataclass(frozen=True, slots=True)
class VersionDiff:
    """What changed from version `old` to version `new` of a plan."""

    old: int
    new: int
    fields: list[FieldChange]
    charges: list[ChargeDiff]


@dataclass(frozen=True, slots=True)
class Target:
    """A price a change can set: the base fee or a standard charge's unit price."""

    value: str
    label: str
    current: Decimal


@dataclass(frozen=True, slots=True)
class PriceChange:
    """A price change as the form gives it."""

    from_version: int
    target: str
    price: Decimal
    effective_from: datetime


def version_diff(old: PlanVersionRow, new: PlanVersionRow) -> VersionDiff:
    """The field-by-field diff of two stored versions."""
    return terms_diff(plans.version_terms(old), plans.version_terms(new), old.version, new.version)


def terms_diff(old: PlanTerms, new: PlanTerms, old_number: int, new_number: int) -> VersionDiff:
    """The field-by-field diff of two versions' terms (charges matched by metric)."""
    before, after = old.model_dump(mode="json"), new.model_dump(mode="json")
    old_charges = {charge["metric"]: charge for charge in before.pop("charges")}
    new_charges = {charge["metric"]: charge for charge in after.pop("charges")}
    charges = []
    for metric in sorted(old_charges.keys() | new_charges.keys()):
        was, now = old_charges.get(metric), new_charges.get(metric)
        action = "added" if was is None else "removed" if now is None else "changed"
        changes = _changes(was or {}, now or {})
        if changes:
            charges.append(ChargeDiff(metric, action, changes))
    return VersionDiff(old_number, new_number, _changes(before, after), charges)


def targets(terms: PlanTerms) -> list[Target]:
    """What a change can set in these terms: the base fee, each standard charge's unit price."""
    found = [Target(BASE_FEE, "base fee", terms.base_fee)]
    for charge in terms.charges:
        if charge.model is PriceModel.STANDARD and charge.unit_price is not None:
            label = f"unit price of {charge.metric}"
            found.append(Target(CHARGE + charge.metric, label, charge.unit_price))
    return found


def parse_change(form: dict[str, str]) -> PriceChange:
    """The change the form describes; `InvalidParameters` naming the field otherwise."""
    version = form.get("from_version", "")
    if not version.isdigit() or not 1 <= int(version) <= 2_147_483_647:
        raise _invalid("from_version", "the version the change starts from is missing")
    try:
        price = Decimal(form.get("price", "").strip())
    except InvalidOperation:
        raise _invalid("price", "the price is not a decimal number, e.g. 0.25") from None
    if not price.is_finite() or price < 0:
        raise _invalid("price", "the price is a decimal number of at least 0")
    return PriceChange(
        from_version=int(version),
        target=form.get("target", ""),
        price=price,
        effective_from=_instant(form.get("effective_from", "").strip()),
    )


def changed_terms(base: PlanTerms, change: PriceChange) -> PlanTerms:
    """`base` with the change applied, effective from the change's instant (validated)."""
    if change.target not in {target.value for target in targets(base)}:
        raise _invalid("target", f"{change.target!r} is not a price of this version")
    document = base.model_dump(mode="json")
    document["effective_from"] = change.effective_from.isoformat()
    if change.target == BASE_FEE:
        document[BASE_FEE] = str(change.price)
    for charge in document["charges"]:
        if CHARGE + charge["metric"] == change.target:
            charge["unit_price"] = str(change.price)
    try:
        return PlanTerms.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _invalid("price", f"the new terms are refused: {first['msg']}") from None


def check_new_instant(rows: list[PlanVersionRow], effective_from: datetime) -> None:
    """`InvalidParameters` if a version of the plan is already effective from that instant."""
    clash = next((row for row in rows if row.effective_from == effective_from), None)
    if clash is not None:
        raise _invalid(
            "effective_from",
            f"version {clash.version} is already effective from "
            f"{effective_from:%Y-%m-%d %H:%M} UTC: a change is a new version, choose another "
            "instant",
        )


async def preview(
    *, db: Database, plan: Plan, terms: PlanTerms, settings: Settings, now: datetime
) -> list[Redrafted]:
    """Each affected draft's total old -> new if `terms` were appended; nothing is written."""
    declared = PlanDecl(id=plan.id, name=plan.name, currency=plan.currency, versions=[terms])
    _, redrafted = await load_catalog_file(
        db=db,
        catalog=CatalogFile(plans=[declared]),
        now=now,
        grace=settings.invoice_grace,
        seller=settings.seller,
        dry_run=True,
    )
    return redrafted


async def save(
    *, db: Database, plan_id: str, terms: PlanTerms, settings: Settings, now: datetime
) -> tuple[PlanVersionRow, list[str], list[Redrafted]]:
    """Append `terms` as the plan's next version, then re-draft the plan's drafts."""
    async with db.transaction(write=True) as session:
        row = await plans.create_plan_version(session=session, plan_id=plan_id, terms=terms)
        where = f"plan {plan_id} version {row.version}"
        warnings = await charge_warnings(session=session, terms=terms, where=where, now=now)
        affected = await drafts_of_plan(session=session, plan_id=plan_id)
    redrafted = await redraft(
        db=db, drafts=affected, now=now, grace=settings.invoice_grace, seller=settings.seller
    )
    return row, warnings, redrafted


def next_month(now: datetime) -> datetime:
    """The start of the month after `now` (UTC): the form's default `effective_from`."""
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


def form_instant(moment: datetime) -> str:
    """An instant as the form's datetime-local field shows it (UTC)."""
    return moment.astimezone(UTC).strftime(INSTANT[0])


def _instant(text: str) -> datetime:
    for pattern in INSTANT:
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise _invalid("effective_from", "effective from is a UTC date and time, YYYY-MM-DDTHH:MM")


def _changes(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    found = []
    for name in [*old, *(key for key in new if key not in old)]:
        was, now = old.get(name, MISSING), new.get(name, MISSING)
        if was != now:
            found.append(FieldChange(name, _shown(was), _shown(now)))
    return found


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(", ", ": "))


def _invalid(name: str, message: str) -> InvalidParameters:
    return InvalidParameters(message, detail={"field": name})
