"""HTTP routes of the catalog: accounts, sites, profiles, devices, bindings, metrics, plans,
unbilled usage. Reads need a reading key (viewer, billing, admin), writes a billing or admin key.
Corrections of what invoices may have used (PATCH a metric, PUT a plan version or a profile
rule) are in `cloud.invoices.corrections_router`: they need to see invoices."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from cloud.api import MAX_ROW_ID, BillingDep, DatabaseDep, ReadDep, RowId, error_responses
from cloud.catalog import accounts, bindings, devices, metrics, plans
from cloud.catalog.listings import list_bindings, list_sites
from cloud.catalog.metric_warnings import charge_warnings, metric_warnings
from cloud.catalog.models import Plan, PlanVersionRow
from cloud.catalog.plan_terms import PlanTerms
from cloud.catalog.schemas import (
    AccountCreate,
    AccountOut,
    AccountUpdate,
    BindingCreate,
    BindingOut,
    BindingUpdate,
    DeviceCreate,
    DeviceOut,
    DeviceUpdate,
    MetricCreate,
    MetricCreatedOut,
    MetricOut,
    Page,
    PlanCreate,
    PlanOut,
    PlanVersionCreatedOut,
    PlanVersionOut,
    ProfileCreate,
    ProfileOut,
    SiteOut,
    UnbilledDeviceOut,
)
from cloud.catalog.unbilled import unbilled_usage

router = APIRouter(prefix="/v1", tags=["catalog"])

Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
After = Annotated[str | None, Query(description="the previous page's next_after")]
AUTH = (401, 403)


@router.post("/accounts", status_code=201, responses=error_responses(*AUTH, 404, 409, 422))
async def post_account(body: AccountCreate, db: DatabaseDep, _: BillingDep) -> AccountOut:
    """Create an account (its plan must exist and bill in its currency)."""
    async with db.transaction(write=True) as session:
        row = await accounts.create_account(
            session=session,
            account_id=body.id,
            name=body.name,
            kind=body.kind,
            currency=body.currency,
            time_zone=body.time_zone,
            plan_id=body.plan_id,
            invoice_series=body.invoice_series,
        )
        if body.billing_fields():  # the buyer on its invoices (cloud.catalog.accounts)
            row = await accounts.set_billing(
                session=session, account_id=body.id, fields=body.billing_fields()
            )
        return AccountOut.model_validate(row)


@router.get("/accounts", responses=error_responses(*AUTH, 422))
async def get_accounts(
    db: DatabaseDep, _: ReadDep, limit: Limit = 100, after: After = None
) -> Page[AccountOut]:
    """Accounts in id order, one page at a time."""
    async with db.transaction() as session:
        rows = await accounts.list_accounts(session=session, limit=limit, after=after)
    items = [AccountOut.model_validate(row) for row in rows]
    return Page(items=items, next_after=items[-1].id if len(items) == limit else None)


@router.get("/accounts/{account_id}", responses=error_responses(*AUTH, 404))
async def get_account(account_id: str, db: DatabaseDep, _: ReadDep) -> AccountOut:
    """One account."""
    async with db.transaction() as session:
        row = await accounts.get_account(session=session, account_id=account_id)
        return AccountOut.model_validate(row)


@router.patch("/accounts/{account_id}", responses=error_responses(*AUTH, 404, 422))
async def patch_account(
    account_id: str, body: AccountUpdate, db: DatabaseDep, _: BillingDep
) -> AccountOut:
    """Rename an account or change its plan (`plan_id: null` takes it off its plan)."""
    async with db.transaction(write=True) as session:
        row = await accounts.get_account(session=session, account_id=account_id)
        if body.name is not None:
            row = await accounts.rename_account(
                session=session, account_id=account_id, name=body.name
            )
        if "plan_id" in body.model_fields_set:
            row = await accounts.set_account_plan(
                session=session, account_id=account_id, plan_id=body.plan_id
            )
        if body.billing_fields():  # the buyer on its invoices (cloud.catalog.accounts)
            row = await accounts.set_billing(
                session=session, account_id=account_id, fields=body.billing_fields()
            )
        return AccountOut.model_validate(row)


@router.get("/accounts/{account_id}/bindings", responses=error_responses(*AUTH, 404))
async def get_account_bindings(account_id: str, db: DatabaseDep, _: ReadDep) -> list[BindingOut]:
    """The account's bindings by device, then time."""
    async with db.transaction() as session:
        rows = await bindings.account_bindings(session=session, account_id=account_id)
        return [BindingOut.model_validate(row) for row in rows]


@router.post("/profiles", status_code=201, responses=error_responses(*AUTH, 409, 422))
async def post_profile(body: ProfileCreate, db: DatabaseDep, _: BillingDep) -> ProfileOut:
    """Create a device profile with its session rule."""
    async with db.transaction(write=True) as session:
        row = await devices.create_profile(
            session=session,
            profile_id=body.id,
            name=body.name,
            start_on=body.start_on,
            end_on=body.end_on,
            timeout_seconds=body.timeout_seconds,
            expected_interval_seconds=body.expected_interval_seconds,
        )
        return ProfileOut.model_validate(row)


@router.get("/profiles", responses=error_responses(*AUTH))
async def get_profiles(db: DatabaseDep, _: ReadDep) -> list[ProfileOut]:
    """Every device profile."""
    async with db.transaction() as session:
        return [
            ProfileOut.model_validate(row) for row in await devices.list_profiles(session=session)
        ]


@router.get("/profiles/{profile_id}", responses=error_responses(*AUTH, 404))
async def get_profile(profile_id: str, db: DatabaseDep, _: ReadDep) -> ProfileOut:
    """One device profile."""
    async with db.transaction() as session:
        row = await devices.get_profile(session=session, profile_id=profile_id)
        return ProfileOut.model_validate(row)


@router.post("/devices", status_code=201, responses=error_responses(*AUTH, 404, 409, 422))
async def post_device(body: DeviceCreate, db: DatabaseDep, _: BillingDep) -> DeviceOut:
    """Register a device under a profile (and a site)."""
    async with db.transaction(write=True) as session:
        row = await devices.create_device(
            session=session,
            device_id=body.id,
            name=body.name,
            profile_id=body.profile_id,
            site_id=body.site_id,
        )
        return DeviceOut.model_validate(row)


@router.get("/devices", responses=error_responses(*AUTH, 422))
async def get_devices(
    db: DatabaseDep,
    _: ReadDep,
    site_id: str | None = None,
    profile_id: str | None = None,
    limit: Limit = 100,
    after: After = None,
) -> Page[DeviceOut]:
    """Devices in id order, optionally of one site and/or profile, one page at a time."""
    async with db.transaction() as session:
        rows = await devices.list_devices(
            session=session, site_id=site_id, profile_id=profile_id, limit=limit, after=after
        )
    items = [DeviceOut.model_validate(row) for row in rows]
    return Page(items=items, next_after=items[-1].id if len(items) == limit else None)


# Device ids may hold '/', so the bindings routes come before the plain device routes.
@router.post(
    "/devices/{device_id:path}/bindings",
    status_code=201,
    responses=error_responses(*AUTH, 404, 409, 422),
)
async def post_binding(
    device_id: str, body: BindingCreate, db: DatabaseDep, _: BillingDep
) -> BindingOut:
    """Bind the device to an account; `move: true` ends its open binding at `valid_from`."""
    async with db.transaction(write=True) as session:
        row = await bindings.create_binding(
            session=session,
            device_id=device_id,
            account_id=body.account_id,
            valid_from=body.valid_from,
            valid_to=body.valid_to,
            move=body.move,
        )
        return BindingOut.model_validate(row)


@router.get("/devices/{device_id:path}/bindings", responses=error_responses(*AUTH, 404))
async def get_device_bindings(device_id: str, db: DatabaseDep, _: ReadDep) -> list[BindingOut]:
    """The device's bindings in time order."""
    async with db.transaction() as session:
        rows = await bindings.device_bindings(session=session, device_id=device_id)
        return [BindingOut.model_validate(row) for row in rows]


@router.get("/devices/{device_id:path}", responses=error_responses(*AUTH, 404))
async def get_device(device_id: str, db: DatabaseDep, _: ReadDep) -> DeviceOut:
    """One device."""
    async with db.transaction() as session:
        row = await devices.get_device(session=session, device_id=device_id)
        return DeviceOut.model_validate(row)


@router.patch("/devices/{device_id:path}", responses=error_responses(*AUTH, 404, 422))
async def patch_device(
    device_id: str, body: DeviceUpdate, db: DatabaseDep, _: BillingDep
) -> DeviceOut:
    """Rename a device, move it to another profile (recomputing its sessions) or site."""
    async with db.transaction(write=True) as session:
        row = await devices.update_device(
            session=session, device_id=device_id, name=body.name, profile_id=body.profile_id
        )
        if "site_id" in body.model_fields_set:
            row = await devices.set_device_site(
                session=session, device_id=device_id, site_id=body.site_id
            )
        return DeviceOut.model_validate(row)


@router.patch("/bindings/{binding_id}", responses=error_responses(*AUTH, 404, 409, 422))
async def patch_binding(
    binding_id: RowId, body: BindingUpdate, db: DatabaseDep, _: BillingDep
) -> BindingOut:
    """End a binding (or change its end); it may not come to overlap another binding."""
    async with db.transaction(write=True) as session:
        row = await bindings.end_binding(
            session=session, binding_id=binding_id, valid_to=body.valid_to
        )
        return BindingOut.model_validate(row)


@router.post("/metrics", status_code=201, responses=error_responses(*AUTH, 404, 409, 422))
async def post_metric(body: MetricCreate, db: DatabaseDep, _: BillingDep) -> MetricCreatedOut:
    """Create a metric; `warnings` says if it matches none of its devices' recent events."""
    async with db.transaction(write=True) as session:
        row = await metrics.create_metric(
            session=session,
            metric_id=body.id,
            name=body.name,
            source=body.source,
            aggregation=body.aggregation,
            field=body.field,
            profiles=body.profiles,
            names=body.names,
            unit=body.unit,
            duration_unit=body.duration_unit,
        )
        warnings = await metric_warnings(
            session=session, spec=metrics.metric_spec(row), now=datetime.now(UTC)
        )
        return MetricCreatedOut.model_validate(row).model_copy(update={"warnings": warnings})


@router.get("/metrics", responses=error_responses(*AUTH))
async def get_metrics(db: DatabaseDep, _: ReadDep) -> list[MetricOut]:
    """Every metric."""
    async with db.transaction() as session:
        return [
            MetricOut.model_validate(row) for row in await metrics.list_metrics(session=session)
        ]


@router.get("/metrics/{metric_id}", responses=error_responses(*AUTH, 404))
async def get_metric(metric_id: str, db: DatabaseDep, _: ReadDep) -> MetricOut:
    """One metric."""
    async with db.transaction() as session:
        row = await metrics.get_metric(session=session, metric_id=metric_id)
        return MetricOut.model_validate(row)


@router.post("/plans", status_code=201, responses=error_responses(*AUTH, 409, 422))
async def post_plan(body: PlanCreate, db: DatabaseDep, _: BillingDep) -> PlanOut:
    """Create a plan (without versions)."""
    async with db.transaction(write=True) as session:
        row = await plans.create_plan(
            session=session, plan_id=body.id, name=body.name, currency=body.currency
        )
        return _plan_out(row, [])


@router.get("/plans", responses=error_responses(*AUTH))
async def get_plans(db: DatabaseDep, _: ReadDep) -> list[PlanOut]:
    """Every plan with its versions."""
    async with db.transaction() as session:
        return [
            _plan_out(row, await plans.version_rows(session=session, plan_id=row.id))
            for row in await plans.list_plans(session=session)
        ]


@router.get("/plans/{plan_id}", responses=error_responses(*AUTH, 404))
async def get_plan(plan_id: str, db: DatabaseDep, _: ReadDep) -> PlanOut:
    """One plan with its versions, by `effective_from`."""
    async with db.transaction() as session:
        row = await plans.get_plan(session=session, plan_id=plan_id)
        return _plan_out(row, await plans.version_rows(session=session, plan_id=plan_id))


@router.post(
    "/plans/{plan_id}/versions",
    status_code=201,
    responses=error_responses(*AUTH, 404, 409, 422),
)
async def post_plan_version(
    plan_id: str, body: PlanTerms, db: DatabaseDep, _: BillingDep
) -> PlanVersionCreatedOut:
    """Append a version of the plan's terms (PUT replaces one no finalized invoice used);
    `warnings` names each charge whose metric matches none of its devices' recent events."""
    async with db.transaction(write=True) as session:
        row = await plans.create_plan_version(session=session, plan_id=plan_id, terms=body)
        where = f"plan {plan_id} version {row.version}"
        warnings = await charge_warnings(
            session=session, terms=body, where=where, now=datetime.now(UTC)
        )
        return PlanVersionCreatedOut(**_version_out(row).model_dump(), warnings=warnings)


@router.get("/plans/{plan_id}/versions", responses=error_responses(*AUTH, 404))
async def get_plan_versions(plan_id: str, db: DatabaseDep, _: ReadDep) -> list[PlanVersionOut]:
    """The plan's versions by `effective_from`."""
    async with db.transaction() as session:
        await plans.get_plan(session=session, plan_id=plan_id)
        rows = await plans.version_rows(session=session, plan_id=plan_id)
        return [_version_out(row) for row in rows]


@router.get("/sites", responses=error_responses(*AUTH, 422))
async def get_sites(
    db: DatabaseDep, _: ReadDep, limit: Limit = 100, after: After = None
) -> Page[SiteOut]:
    """Sites in id order, one page at a time."""
    async with db.transaction() as session:
        rows = await list_sites(session=session, limit=limit, after=after)
    items = [SiteOut.model_validate(row) for row in rows]
    return Page(items=items, next_after=items[-1].id if len(items) == limit else None)


@router.get("/bindings", responses=error_responses(*AUTH, 422))
async def get_bindings(
    db: DatabaseDep,
    _: ReadDep,
    account_id: Annotated[str | None, Query(max_length=64)] = None,
    device_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Limit = 100,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_ROW_ID, description="the previous page's next_after")
    ] = None,
) -> Page[BindingOut]:
    """Bindings in id order (optionally of one account or device), one page at a time."""
    async with db.transaction() as session:
        rows = await list_bindings(
            session=session, limit=limit, after=after, account_id=account_id, device_id=device_id
        )
    items = [BindingOut.model_validate(row) for row in rows]
    return Page(items=items, next_after=str(items[-1].id) if len(items) == limit else None)


@router.get("/unbilled", responses=error_responses(*AUTH, 422))
async def get_unbilled(
    db: DatabaseDep,
    _: ReadDep,
    start: Annotated[datetime | None, Query(description="from (inclusive), with offset")] = None,
    end: Annotated[datetime | None, Query(description="until (exclusive), with offset")] = None,
) -> list[UnbilledDeviceOut]:
    """Per device, the events no binding covers (devices unknown to the catalog included)."""
    async with db.transaction() as session:
        found = await unbilled_usage(session=session, start=start, end=end)
    return [UnbilledDeviceOut.model_validate(item) for item in found]


def _plan_out(row: Plan, versions: list[PlanVersionRow]) -> PlanOut:
    return PlanOut(
        id=row.id,
        name=row.name,
        currency=row.currency,
        created_at=row.created_at,
        versions=[_version_out(version) for version in versions],
    )


def _version_out(row: PlanVersionRow) -> PlanVersionOut:
    return PlanVersionOut(
        version=row.version,
        effective_from=row.effective_from,
        terms=plans.version_terms(row),
        created_at=row.created_at,
    )
