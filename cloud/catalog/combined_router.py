"""HTTP routes of combined session rules: POST /v1/combined-rules (billing or admin key), GET
/v1/combined-rules and /v1/combined-rules/{id} (a reading key)."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from cloud.api import BillingDep, DatabaseDep, ReadDep, error_responses
from cloud.catalog.combined_rules import (
    MAX_CHANNELS,
    CombinedSessionRule,
    create_combined_rule,
    get_combined_rule,
    list_combined_rules,
)
from cloud.catalog.models import DeviceProfile
from cloud.catalog.schemas import EventName, Name, Request, Slug
from cloud.rating.combine import MAX_MEMBERS

router = APIRouter(prefix="/v1", tags=["catalog"])
AUTH = (401, 403)


class MemberIn(Request):
    """A member group: a profile's devices' sessions, of these channels only (empty: all)."""

    profile: Slug
    channels: list[EventName] = Field(default_factory=list, max_length=MAX_CHANNELS)


class CombinedRuleCreate(Request):
    """A combined session rule; its id becomes a profile id that session metrics can name."""

    id: Slug
    name: Name
    scope: Literal["site", "account"]
    combine: Literal["union", "intersection"]
    members: Annotated[list[MemberIn], Field(max_length=MAX_MEMBERS)]


class MemberOut(BaseModel):
    """A member group as stored."""

    profile: str
    channels: list[str]


class CombinedRuleOut(BaseModel):
    """A combined session rule."""

    id: str
    name: str
    scope: str
    combine: str
    members: list[MemberOut]
    created_at: datetime


def _answer(row: CombinedSessionRule, profile: DeviceProfile | None) -> CombinedRuleOut:
    return CombinedRuleOut(
        id=row.id,
        name=profile.name if profile is not None else row.id,
        scope=row.scope,
        combine=row.combine,
        members=[MemberOut.model_validate(m) for m in row.members],
        created_at=row.created_at,
    )


@router.post("/combined-rules", status_code=201, responses=error_responses(*AUTH, 404, 409, 422))
async def post_combined_rule(
    body: CombinedRuleCreate, db: DatabaseDep, _: BillingDep
) -> CombinedRuleOut:
    """Create a combined session rule (and its profile) from existing member profiles."""
    async with db.transaction(write=True) as session:
        row = await create_combined_rule(
            session=session,
            rule_id=body.id,
            name=body.name,
            scope=body.scope,
            combine=body.combine,
            members=[(m.profile, m.channels) for m in body.members],
        )
        return _answer(row, await session.get(DeviceProfile, row.id))


@router.get("/combined-rules", responses=error_responses(*AUTH))
async def get_combined_rules(db: DatabaseDep, _: ReadDep) -> list[CombinedRuleOut]:
    """Every combined session rule, in id order."""
    async with db.transaction() as session:
        rows = await list_combined_rules(session=session)
        return [_answer(row, await session.get(DeviceProfile, row.id)) for row in rows]


@router.get("/combined-rules/{rule_id}", responses=error_responses(*AUTH, 404))
async def get_one_combined_rule(rule_id: str, db: DatabaseDep, _: ReadDep) -> CombinedRuleOut:
    """One combined session rule."""
    async with db.transaction() as session:
        row = await get_combined_rule(session=session, rule_id=rule_id)
        return _answer(row, await session.get(DeviceProfile, row.id))
