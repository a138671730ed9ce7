"""HTTP routes that correct the catalog (billing key): a metric, a plan version, a profile's
session rule. Each is refused with 409 `catalog_in_use` naming the finalized invoice that used
the object; otherwise it is changed and the drafts it affects are re-drafted right after
(`cloud.invoices.corrections`). The answers list what was re-drafted, total before and after."""

import enum
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from cloud.api import BillingDep, DatabaseDep, SettingsDep, error_responses
from cloud.catalog import plans
from cloud.catalog.plan_terms import PlanTerms
from cloud.catalog.schemas import (
    MetricCreatedOut,
    MetricUpdate,
    PlanVersionOut,
    ProfileOut,
    ProfileRule,
)
from cloud.invoices.corrections import (
    Redrafted,
    change_profile_rule,
    correct_metric,
    replace_version,
)

router = APIRouter(prefix="/v1", tags=["catalog"])
AUTH = (401, 403)
VersionNumber = Annotated[int, Path(ge=1, le=2_147_483_647)]


class RedraftedOut(BaseModel):
    """A draft re-rated after the correction; totals as decimal strings ("" when it had none)."""

    account_id: str
    period: str
    invoice_id: int | None
    old_total: str
    new_total: str | None
    outcome: str = Field(description="updated, drafted, failed, ... as in an invoice run")

    @classmethod
    def of(cls, item: Redrafted) -> "RedraftedOut":
        """The answer of one re-drafted draft."""
        return cls(**{name: getattr(item, name) for name in cls.model_fields})


class MetricCorrectedOut(MetricCreatedOut):
    """The metric as changed, its warnings and the drafts re-drafted."""

    redrafted: list[RedraftedOut]


class PlanVersionCorrectedOut(PlanVersionOut):
    """The version as replaced, warnings about its charges and the drafts re-drafted."""

    warnings: list[str]
    redrafted: list[RedraftedOut]


class ProfileCorrectedOut(ProfileOut):
    """The profile with its new rule and the drafts re-drafted."""

    warnings: list[str]
    redrafted: list[RedraftedOut]


@router.patch("/metrics/{metric_id}", responses=error_responses(*AUTH, 404, 409, 422))
async def patch_metric(
    metric_id: str, body: MetricUpdate, db: DatabaseDep, settings: SettingsDep, _: BillingDep
) -> MetricCorrectedOut:
    """Change a metric no finalized invoice used (409 naming the invoice otherwise: create a
    new metric); the drafts of accounts whose plan charges it are re-drafted."""
    changes = {name: _plain(getattr(body, name)) for name in body.model_fields_set}
    for name in ("profiles", "names"):
        if name in changes and changes[name] is None:
            changes[name] = []
    done = await correct_metric(
        db=db,
        metric_id=metric_id,
        changes=changes,
        now=datetime.now(UTC),
        grace=settings.invoice_grace,
        seller=settings.seller,
    )
    out = MetricCreatedOut.model_validate(done.row)
    return MetricCorrectedOut(
        **out.model_dump(exclude={"warnings"}),
        warnings=done.warnings,
        redrafted=[RedraftedOut.of(item) for item in done.redrafted],
    )


@router.put("/plans/{plan_id}/versions/{version}", responses=error_responses(*AUTH, 404, 409, 422))
async def put_plan_version(
    plan_id: str,
    version: VersionNumber,
    body: PlanTerms,
    db: DatabaseDep,
    settings: SettingsDep,
    _: BillingDep,
) -> PlanVersionCorrectedOut:
    """Replace a plan version no finalized invoice used (409 naming the invoice otherwise:
    append a new version); drafts do not count and are re-drafted."""
    done = await replace_version(
        db=db,
        plan_id=plan_id,
        version=version,
        terms=body,
        now=datetime.now(UTC),
        grace=settings.invoice_grace,
        seller=settings.seller,
    )
    row = done.row
    return PlanVersionCorrectedOut(
        version=row.version,  # type: ignore[union-attr]
        effective_from=row.effective_from,  # type: ignore[union-attr]
        terms=plans.version_terms(row),  # type: ignore[arg-type]
        created_at=row.created_at,
        warnings=done.warnings,
        redrafted=[RedraftedOut.of(item) for item in done.redrafted],
    )


@router.put("/profiles/{profile_id}/rule", responses=error_responses(*AUTH, 404, 409, 422))
async def put_profile_rule(
    profile_id: str, body: ProfileRule, db: DatabaseDep, settings: SettingsDep, _: BillingDep
) -> ProfileCorrectedOut:
    """Replace the profile's session rule while no finalized invoice used it (409 naming the
    invoice otherwise); its devices' sessions are recomputed and affected drafts re-drafted."""
    done = await change_profile_rule(
        db=db,
        profile_id=profile_id,
        start_on=body.start_on,
        end_on=body.end_on,
        timeout_seconds=body.timeout_seconds,
        now=datetime.now(UTC),
        grace=settings.invoice_grace,
        seller=settings.seller,
    )
    out = ProfileOut.model_validate(done.row)
    return ProfileCorrectedOut(
        **out.model_dump(),
        warnings=done.warnings,
        redrafted=[RedraftedOut.of(item) for item in done.redrafted],
    )


def _plain(value: object) -> object:
    return value.value if isinstance(value, enum.Enum) else value
