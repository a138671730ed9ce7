"""Catalog: plans with versions and diffs, metrics with their matches, profiles; changes previewed,
saved as new versions.

Plans, metrics and profiles are read with the catalog's own services (what GET /v1/plans,
/v1/metrics and /v1/profiles answer); a metric's events matched in the last 30 days come from
`cloud.console.catalog_metrics`. A price change (`cloud.console.catalog_change`) is previewed
with `catalog load --dry-run`'s machinery and saved as a new version; a form error shows the
plan page again with the message (422).
"""

import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from cloud.api import DatabaseDep
from cloud.catalog import devices, plans
from cloud.catalog.models import Plan, PlanVersionRow
from cloud.catalog.plan_terms import PlanTerms
from cloud.console import catalog_change as change
from cloud.console.access import ConsoleBillingDep, ConsoleReadDep
from cloud.console.catalog_metrics import metric_matches
from cloud.console.forms import field, read_form
from cloud.console.logins import LiveSession
from cloud.console.pages import api_link, render
from cloud.errors import InvalidParameters
from cloud.settings import Settings

router = APIRouter(prefix="/console/catalog", include_in_schema=False)

CHANGERS = frozenset({"billing", "admin"})
DIFF = re.compile(r"^(\d{1,9})\.\.(\d{1,9})$")
FORM_FIELDS = {"from_version": 12, "target": 80, "price": change.MAX_PRICE, "effective_from": 32}


@router.get("")
async def get_catalog(request: Request, db: DatabaseDep, live: ConsoleReadDep) -> Response:
    """Plans with their versions, metrics with their recent matches, profiles with their rules."""
    now = datetime.now(UTC)
    async with db.transaction() as session:
        plan_rows = await plans.list_plans(session=session)
        versions = {
            plan.id: await plans.version_rows(session=session, plan_id=plan.id)
            for plan in plan_rows
        }
        matches = await metric_matches(session=session, now=now)
        profiles = await devices.list_profiles(session=session)
    app = request.app
    return render(
        request,
        "catalog/overview.html",
        user=live,
        plans=plan_rows,
        versions=versions,
        matches=matches,
        profiles=profiles,
        now=now,
        links={
            "plans": api_link(app, "GET", "/v1/plans"),
            "metrics": api_link(app, "GET", "/v1/metrics"),
            "profiles": api_link(app, "GET", "/v1/profiles"),
            "events": api_link(app, "GET", "/v1/events"),
        },
    )


@router.get("/plans/{plan_id}")
async def get_plan_page(
    request: Request,
    plan_id: str,
    db: DatabaseDep,
    live: ConsoleReadDep,
    diff: Annotated[str | None, Query(max_length=21, description="a..b")] = None,
) -> Response:
    """A plan's versions; `?diff=a..b` the field-by-field diff of versions a and b."""
    pair = _diff_pair(diff)
    async with db.transaction() as session:
        plan = await plans.get_plan(session=session, plan_id=_plan_id(plan_id))
        rows = await plans.version_rows(session=session, plan_id=plan.id)
    return _plan_page(request, live, plan, rows, pair=pair)


@router.post("/plans/{plan_id}/preview")
async def post_preview(
    request: Request, plan_id: str, db: DatabaseDep, live: ConsoleBillingDep
) -> Response:
    """The change's drafts old -> new total per account, written nowhere; Save on the page."""
    form = await _change_form(request)
    now = datetime.now(UTC)
    async with db.transaction() as session:
        plan = await plans.get_plan(session=session, plan_id=_plan_id(plan_id))
        rows = await plans.version_rows(session=session, plan_id=plan.id)
    try:
        parsed, base, terms = _change(form, rows)
    except InvalidParameters as refused:
        return _plan_page(request, live, plan, rows, form=form, error=refused.message)
    redrafted = await change.preview(
        db=db, plan=plan, terms=terms, settings=_settings(request), now=now
    )
    return render(
        request,
        "catalog/preview.html",
        user=live,
        plan=plan,
        base=base,
        diff=change.terms_diff(
            plans.version_terms(base), terms, base.version, max(r.version for r in rows) + 1
        ),
        effective_from=parsed.effective_from,
        redrafted=redrafted,
        form=form,
    )


@router.post("/plans/{plan_id}/versions")
async def post_version(
    request: Request, plan_id: str, db: DatabaseDep, live: ConsoleBillingDep
) -> Response:
    """Save the previewed change as the plan's next version; its drafts are re-drafted."""
    form = await _change_form(request)
    async with db.transaction() as session:
        plan = await plans.get_plan(session=session, plan_id=_plan_id(plan_id))
        rows = await plans.version_rows(session=session, plan_id=plan.id)
    try:
        _, base, terms = _change(form, rows)
    except InvalidParameters as refused:
        return _plan_page(request, live, plan, rows, form=form, error=refused.message)
    row, _, _ = await change.save(
        db=db, plan_id=plan.id, terms=terms, settings=_settings(request), now=datetime.now(UTC)
    )
    root = str(request.scope.get("root_path", "")).rstrip("/")
    return RedirectResponse(
        f"{root}/console/catalog/plans/{plan.id}?diff={base.version}..{row.version}",
        status_code=303,
    )


def _plan_page(
    request: Request,
    live: LiveSession,
    plan: Plan,
    rows: list[PlanVersionRow],
    *,
    pair: tuple[int, int] | None = None,
    form: dict[str, str] | None = None,
    error: str | None = None,
) -> Response:
    by_number = {row.version: row for row in rows}
    if pair is not None and not set(pair) <= by_number.keys():
        raise InvalidParameters(
            f"plan {plan.id} has versions {sorted(by_number)}; diff names {pair[0]}..{pair[1]}",
            detail={"errors": [{"loc": ["query", "diff"], "msg": "no such version"}]},
        )
    diff = pair and change.version_diff(by_number[pair[0]], by_number[pair[1]])
    latest = rows[-1] if rows else None
    terms = latest and plans.version_terms(latest)
    default = change.form_instant(change.next_month(datetime.now(UTC)))
    return render(
        request,
        "catalog/plan.html",
        status_code=422 if error else 200,
        user=live,
        plan=plan,
        rows=rows,
        terms_of={row.version: plans.version_terms(row) for row in rows},
        diff=diff,
        latest=latest,
        targets=change.targets(terms) if terms else [],
        may_change=live.role in CHANGERS and latest is not None,
        form=form or {"effective_from": default},
        error=error,
        versions_link=api_link(
            request.app,
            "GET",
            "/v1/plans/{plan_id}/versions",
            shown=f"/v1/plans/{plan.id}/versions",
        ),
    )


def _change(
    form: dict[str, str], rows: list[PlanVersionRow]
) -> tuple[change.PriceChange, PlanVersionRow, PlanTerms]:
    parsed = change.parse_change(form)
    base = next((row for row in rows if row.version == parsed.from_version), None)
    if base is None:
        raise InvalidParameters(
            f"the plan has no version {parsed.from_version}", detail={"field": "from_version"}
        )
    change.check_new_instant(rows, parsed.effective_from)
    return parsed, base, change.changed_terms(plans.version_terms(base), parsed)


async def _change_form(request: Request) -> dict[str, str]:
    form = await read_form(request)
    return {name: field(form, name, max_length=bound) for name, bound in FORM_FIELDS.items()}


def _diff_pair(text: str | None) -> tuple[int, int] | None:
    if text is None or text == "":
        return None
    found = DIFF.match(text)
    if found is None:
        raise InvalidParameters(
            "diff is two version numbers, e.g. 1..2",
            detail={"errors": [{"loc": ["query", "diff"], "msg": "expected a..b"}]},
        )
    return int(found[1]), int(found[2])


def _plan_id(text: str) -> str:
    if len(text) > 64:
        raise InvalidParameters(
            "a plan id has at most 64 characters",
            detail={"errors": [{"loc": ["path", "plan_id"], "msg": "too long"}]},
        )
    return text


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings
